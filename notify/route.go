package notify

import (
	"fmt"
	"strings"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

// Route is what each receiver does with one event, per the SPEC's table.
type Route struct {
	PagerDuty string `json:"pagerduty"`
	Slack     string `json:"slack"`
	Grafana   string `json:"grafana"`
}

// PagerDutySeverity maps an incident severity to the Events API's enum; only
// Sev 1 and 2 page.
func PagerDutySeverity(l severity.Level) (string, bool) {
	switch l {
	case 1:
		return "critical", true
	case 2:
		return "error", true
	}
	return "", false
}

// IncidentChannelName is the runbook's dedicated Sev 1 channel,
// incident-YYYYMMDD-<service>, within Slack's naming rules.
func IncidentChannelName(inc *incident.Incident) string {
	var b strings.Builder
	for _, r := range strings.ToLower(inc.Service) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	svc := strings.Trim(b.String(), "-")
	if svc == "" {
		// A service named in another script (or in emoji) leaves nothing
		// Slack accepts: "incident-20250101-" would read as no service.
		svc = "service"
	}
	name := "incident-" + inc.StartedAt.UTC().Format("20060102") + "-" + svc
	if len(name) > 80 {
		name = name[:80]
	}
	return name
}

// RouteFor describes what each receiver does with an event under a
// service's routing (the SPEC's table, the configured overrides, shadow
// mode): the log notifier's account of the routing decision.
func RouteFor(ev *incident.Event, rt rules.Route) Route {
	inc := &ev.Incident
	r := describe(ev)
	if !rt.PagerDuty.Has(int(routedSeverity(ev))) && r.PagerDuty != "none" {
		r.PagerDuty = "none (not routed)"
	}
	if !rt.Slack.Has(int(routedSeverity(ev))) {
		r.Slack = "none (not routed)"
	} else if ev.Kind == incident.Opened || ev.Kind == incident.SeverityChanged {
		switch inc.Severity {
		case 1:
			r.Slack = fmt.Sprintf("#%s (on-call invited), announced in %s, updates every 2m", IncidentChannelName(inc), orDefault(rt.SlackIncidentsChannel, "#incidents"))
		case 2:
			r.Slack = orDefault(rt.SlackIncidentsChannel, "#incidents") + ", updates every 5m"
		case 3:
			r.Slack = orDefault(rt.SlackChannel, "#alerts")
		default:
			r.Slack = orDefault(rt.SlackChannel, "#alerts") + ", held until business hours"
		}
	}
	if !rt.Grafana.Has(int(routedSeverity(ev))) && r.Grafana != "none" {
		r.Grafana = "none (not routed)"
	}
	return r
}

// routedSeverity is the severity routing is decided on: a resolve goes where
// the incident's peak went.
func routedSeverity(ev *incident.Event) severity.Level {
	if ev.Kind == incident.ResolvedEvent {
		return ev.Incident.PeakSeverity
	}
	return ev.Incident.Severity
}

// describe is the SPEC's table for an event, before routing restricts it.
func describe(ev *incident.Event) Route {
	inc := &ev.Incident
	switch ev.Kind {
	case incident.StatusUpdate:
		return Route{PagerDuty: "none", Slack: "status update in the incident's thread", Grafana: "none"}
	case incident.Escalated:
		return Route{PagerDuty: "trigger critical (escalation routing key, dedup key " + inc.ID + "/escalation)",
			Slack: "escalation message in the incident's thread", Grafana: "none"}
	case incident.VerifyPending, incident.Closed:
		return Route{PagerDuty: "none", Slack: "note in the incident's thread", Grafana: "none"}
	case incident.ResolvedEvent:
		r := Route{PagerDuty: "none", Grafana: "close region",
			Slack: "update message: resolved after " + inc.Duration(inc.ResolvedAt).Round(1e9).String()}
		if _, paged := PagerDutySeverity(inc.PeakSeverity); paged {
			r.PagerDuty = "resolve"
		}
		return r
	}
	r := Route{Grafana: "region annotation", PagerDuty: "none"}
	if inc.Severity == 4 {
		r.Grafana = "annotation"
	}
	if sev, pages := PagerDutySeverity(inc.Severity); pages {
		r.PagerDuty = "trigger " + sev
		if ev.Kind == incident.SeverityChanged && inc.Severity > ev.PreviousSeverity {
			// A drop is announced but does not un-page while alerts still fire.
			r.PagerDuty = "none (severity dropped; the page stands)"
		}
	}
	return r
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
