package rules

import "strings"

// receivers checks, once secrets are resolved, that every receiver the
// configuration mentions can work: a receiver configured but unusable is an
// error, never a receiver silently off. serve builds exactly the receivers
// this lets through.
func (v *validator) receivers(c *Config) {
	written := func(section string, keys ...string) string {
		for _, k := range keys {
			if v.t.set(section + "." + k) {
				return section + "." + k
			}
		}
		return ""
	}
	// The key to set is usually not in the file: point at the one that
	// configured the receiver.
	failBy := func(key, by, format string, args ...any) {
		n := len(v.errs)
		v.failf(key, format, args...) // unless suppressed
		if len(v.errs) > n {
			v.errs[n].(*KeyError).Line = v.t.line(by)
		}
	}

	serviceKeys := 0
	for _, s := range c.Services {
		if s.Routing.PagerDutyRoutingKey != "" {
			serviceKeys++
		}
	}
	if by := written("pagerduty", "url", "routing_key_file", "events_per_minute", "escalation_routing_key_file"); by != "" && c.PagerDuty.RoutingKey == "" && serviceKeys == 0 {
		failBy("pagerduty.routing_key_file", by, "PagerDuty is configured (%s) but has no routing key: set pagerduty.routing_key_file, $%s, or a service's routing.pagerduty_routing_key_file",
			by, EnvPagerDutyKey)
	}

	by := written("grafana", "url", "token_file", "dashboard_uid", "panel_id")
	if by == "" && c.Grafana.Token != "" {
		by = "$" + EnvGrafanaToken
	}
	switch {
	case by == "":
	case c.Grafana.URL == "":
		failBy("grafana.url", by, "Grafana is configured (%s) but has no url", by)
	case c.Grafana.Token == "":
		failBy("grafana.token_file", by, "Grafana is configured (%s) but has no token: set grafana.token_file or $%s", by, EnvGrafanaToken)
	}

	by = written("slack", "api_url", "token_file", "channel", "incidents_channel", "oncall_users")
	switch {
	case by == "" && c.Slack.Token == "":
	case c.Slack.Token == "":
		failBy("slack.token_file", by, "Slack is configured (%s) but has no token: set slack.token_file or $%s", by, EnvSlackToken)
	case strings.TrimSpace(c.Slack.Channel) == "" && strings.TrimSpace(c.Slack.IncidentsChannel) == "":
		// Either serves for both when the other is left out.
		failBy("slack.channel", "slack.token_file", "Slack has a token but no channel: set slack.channel (Sev 3 and 4) and/or slack.incidents_channel (Sev 1 and 2)")
	}
}
