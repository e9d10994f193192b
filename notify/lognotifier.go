package notify

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
)

// LogNotifier is the default receiver: one structured line per incident
// event, with the routing decision the other receivers would act on.
type LogNotifier struct {
	Log *slog.Logger
	// Routes gives a service's routing; nil means the SPEC's default table.
	Routes func(service string) rules.Route
	// Off names the receivers that do not run ("pagerduty", "slack",
	// "grafana", and "pagerduty_escalation" for the escalation page) with
	// why, e.g. "not configured": the line must say what happens, not what
	// would.
	Off map[string]string
}

// Name implements Notifier.
func (n *LogNotifier) Name() string { return "log" }

var eventMessages = map[incident.EventKind]string{
	incident.Opened:          "incident opened",
	incident.SeverityChanged: "incident severity changed",
	incident.ResolvedEvent:   "incident resolved",
	incident.StatusUpdate:    "incident status update",
	incident.Escalated:       "incident escalated",
	incident.VerifyPending:   "incident alerts resolved, recovery not verified",
	incident.Reopened:        "incident reopened",
	incident.Closed:          "incident closed",
}

// Notify implements Notifier. Writing a log line cannot usefully be retried.
func (n *LogNotifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	inc := &ev.Incident
	attrs := []slog.Attr{
		slog.String("event", string(ev.Kind)),
		slog.String("incident", inc.ID),
		slog.String("service", inc.Service),
		slog.String("title", inc.Title),
		slog.Int("severity", int(inc.Severity)),
		slog.Int("rule", inc.Rule),
		slog.Any("reasons", inc.Reasons),
		slog.Int("alerts_firing", inc.Firing),
		slog.Int("alerts_total", ev.AlertsTotal),
		slog.Time("started", inc.StartedAt),
		slog.Any("route", n.routeOf(ev)),
	}
	if ev.Kind == incident.SeverityChanged {
		attrs = append(attrs, slog.Int("previous_severity", int(ev.PreviousSeverity)))
	}
	if d := inc.Diagnosis; d != nil && ev.Kind != incident.ResolvedEvent {
		diag := []any{slog.String("category", string(d.Category)), slog.String("summary", d.Summary)}
		if d.Command != "" {
			diag = append(diag, slog.String("command", d.Command))
		}
		attrs = append(attrs, slog.Group("diagnosis", diag...))
	}
	if ev.Kind == incident.ResolvedEvent {
		attrs = append(attrs, slog.Time("resolved", inc.ResolvedAt),
			slog.String("duration", inc.Duration(inc.ResolvedAt).Round(time.Second).String()))
	}
	n.Log.LogAttrs(ctx, slog.LevelInfo, eventMessages[ev.Kind], attrs...)
	return false, nil
}

func (n *LogNotifier) routeOf(ev *incident.Event) Route {
	r := RouteFor(ev, n.route(ev.Incident.Service))
	for name, field := range map[string]*string{"pagerduty": &r.PagerDuty, "slack": &r.Slack, "grafana": &r.Grafana} {
		if why, off := n.Off[name]; off && !strings.HasPrefix(*field, "none") {
			*field = "none (" + why + ")"
		}
	}
	if why, off := n.Off["pagerduty_escalation"]; off && ev.Kind == incident.Escalated && !strings.HasPrefix(r.PagerDuty, "none") {
		r.PagerDuty = "none (PagerDuty escalation is " + why + ")"
	}
	return r
}

func (n *LogNotifier) route(service string) rules.Route {
	if n.Routes == nil {
		return (&rules.Config{}).RouteFor(service)
	}
	return n.Routes(service)
}
