package rules

// Severities is a set of severities 1..4.
type Severities [5]bool

// Has reports whether sev is in the set.
func (s Severities) Has(sev int) bool { return sev >= 1 && sev <= 4 && s[sev] }

func severities(list []int) Severities {
	var s Severities
	for _, v := range list {
		if v >= 1 && v <= 4 {
			s[v] = true
		}
	}
	return s
}

// Route is the effective routing of one service: the SPEC's table, then the
// global `routing:` section, then the service profile's.
type Route struct {
	PagerDuty, Slack, Grafana Severities
	SlackChannel              string
	SlackIncidentsChannel     string
	PagerDutyRoutingKey       Secret
}

// RouteFor returns the routing of a service by its incident name (a profile
// name, or a label-derived name that falls back to the global routing).
func (c *Config) RouteFor(service string) Route {
	r := Route{
		PagerDuty:             severities([]int{1, 2}),
		Slack:                 severities([]int{1, 2, 3, 4}),
		Grafana:               severities([]int{1, 2, 3, 4}),
		SlackChannel:          c.Slack.Channel,
		SlackIncidentsChannel: c.Slack.IncidentsChannel,
		PagerDutyRoutingKey:   c.PagerDuty.RoutingKey,
	}
	r.apply(c.Routing)
	for i := range c.Services {
		if c.Services[i].Name == service {
			r.apply(c.Services[i].Routing)
			break
		}
	}
	if c.Shadow {
		r.PagerDuty, r.Slack = Severities{}, Severities{}
	}
	return r
}

func (r *Route) apply(o RoutingConfig) {
	if o.PagerDuty != nil {
		r.PagerDuty = severities(o.PagerDuty)
	}
	if o.Slack != nil {
		r.Slack = severities(o.Slack)
	}
	if o.Grafana != nil {
		r.Grafana = severities(o.Grafana)
	}
	if o.SlackChannel != "" {
		r.SlackChannel = o.SlackChannel
	}
	if o.SlackIncidentsChannel != "" {
		r.SlackIncidentsChannel = o.SlackIncidentsChannel
	}
	if o.PagerDutyRoutingKey != "" {
		r.PagerDutyRoutingKey = o.PagerDutyRoutingKey
	}
}
