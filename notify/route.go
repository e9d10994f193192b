package notify

import (
	"fmt"
	"strings"

	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/incident"
)

// RouteConfig is what the routing table needs from the configuration.
type RouteConfig struct {
	Channel          string // team channel: Sev 3 and 4
	IncidentsChannel string // Sev 2, and where Sev 1 channels are announced
}

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
	name := "incident-" + inc.StartedAt.UTC().Format("20060102") + "-" + strings.Trim(b.String(), "-")
	if len(name) > 80 {
		name = name[:80]
	}
	return name
}

// RouteFor applies the SPEC's default routing table to an event.
func RouteFor(ev *incident.Event, cfg RouteConfig) Route {
	inc := &ev.Incident
	if ev.Kind == incident.StatusUpdate {
		return Route{PagerDuty: "none", Slack: "status update in the incident's thread", Grafana: "none"}
	}
	if ev.Kind == incident.ResolvedEvent {
		r := Route{Grafana: "close region"}
		r.PagerDuty = "none"
		if _, paged := PagerDutySeverity(inc.PeakSeverity); paged {
			r.PagerDuty = "resolve"
		}
		r.Slack = "update message: resolved after " + inc.Duration(inc.ResolvedAt).Round(1e9).String()
		return r
	}
	r := Route{Grafana: "region annotation"}
	sev, pages := PagerDutySeverity(inc.Severity)
	switch {
	case ev.Kind == incident.SeverityChanged && inc.Severity > ev.PreviousSeverity:
		// A drop is announced but does not un-page while alerts still fire.
		r.PagerDuty = "none (severity dropped; the page stands)"
	case pages:
		r.PagerDuty = "trigger " + sev
	default:
		r.PagerDuty = "none"
	}
	switch inc.Severity {
	case 1:
		r.Slack = fmt.Sprintf("#%s (on-call invited), announced in %s, updates every 2m", IncidentChannelName(inc), orDefault(cfg.IncidentsChannel, "#incidents"))
	case 2:
		r.Slack = orDefault(cfg.IncidentsChannel, "#incidents") + ", updates every 5m"
	case 3:
		r.Slack = orDefault(cfg.Channel, "#alerts")
	default:
		r.Slack = orDefault(cfg.Channel, "#alerts") + ", held until business hours"
		r.Grafana = "annotation"
	}
	return r
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
