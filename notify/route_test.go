package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

func event(kind incident.EventKind, sev, peak severity.Level) *incident.Event {
	start := time.Date(2026, 1, 12, 14, 30, 0, 0, time.UTC)
	return &incident.Event{Kind: kind, Incident: incident.Incident{
		ID: "api-1", Service: "API Gateway", Severity: sev, PeakSeverity: peak,
		StartedAt: start, ResolvedAt: start.Add(42 * time.Minute), Status: incident.Firing,
	}}
}

func TestRouteForFollowsTheSPECTable(t *testing.T) {
	cfg := (&rules.Config{Slack: rules.SlackConfig{Channel: "#team", IncidentsChannel: "#inc"}}).RouteFor("api")
	tests := []struct {
		name string
		ev   *incident.Event
		want Route
	}{
		{"sev1", event(incident.Opened, 1, 1), Route{PagerDuty: "trigger critical",
			Slack: "#incident-20260112-api-gateway (on-call invited), announced in #inc, updates every 2m", Grafana: "region annotation"}},
		{"sev2", event(incident.Opened, 2, 2), Route{PagerDuty: "trigger error", Slack: "#inc, updates every 5m", Grafana: "region annotation"}},
		{"sev3", event(incident.Opened, 3, 3), Route{PagerDuty: "none", Slack: "#team", Grafana: "region annotation"}},
		{"sev4", event(incident.Opened, 4, 4), Route{PagerDuty: "none", Slack: "#team, held until business hours", Grafana: "annotation"}},
		{"escalation re-triggers", func() *incident.Event {
			ev := event(incident.SeverityChanged, 1, 1)
			ev.PreviousSeverity = 2
			return ev
		}(), Route{PagerDuty: "trigger critical",
			Slack: "#incident-20260112-api-gateway (on-call invited), announced in #inc, updates every 2m", Grafana: "region annotation"}},
		{"a drop does not un-page", func() *incident.Event {
			ev := event(incident.SeverityChanged, 2, 1)
			ev.PreviousSeverity = 1
			return ev
		}(), Route{PagerDuty: "none (severity dropped; the page stands)", Slack: "#inc, updates every 5m", Grafana: "region annotation"}},
		{"status update", event(incident.StatusUpdate, 1, 1), Route{PagerDuty: "none", Slack: "status update in the incident's thread", Grafana: "none"}},
		{"resolve of a paged incident", event(incident.ResolvedEvent, 3, 2), Route{PagerDuty: "resolve", Slack: "update message: resolved after 42m0s", Grafana: "close region"}},
		{"resolve of an unpaged incident", event(incident.ResolvedEvent, 3, 3), Route{PagerDuty: "none", Slack: "update message: resolved after 42m0s", Grafana: "close region"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ev.Kind == incident.ResolvedEvent {
				tt.ev.Incident.Status = incident.Resolved
			}
			if got := RouteFor(tt.ev, cfg); got != tt.want {
				t.Errorf("RouteFor = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}

func TestIncidentChannelNameIsValidForSlack(t *testing.T) {
	ev := event(incident.Opened, 1, 1)
	ev.Incident.Service = "Payments.API/EU " + strings.Repeat("x", 100)
	name := IncidentChannelName(&ev.Incident)
	if len(name) > 80 || !strings.HasPrefix(name, "incident-20260112-payments-api-eu-") {
		t.Fatalf("channel name %q", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			t.Fatalf("channel name %q has %q, not allowed by Slack", name, r)
		}
	}
	for _, svc := range []string{"Диск", "😀", "---"} {
		ev.Incident.Service = svc
		if name := IncidentChannelName(&ev.Incident); name != "incident-20260112-service" {
			t.Errorf("service %q: channel name %q, want incident-20260112-service (not an empty service part)", svc, name)
		}
	}
}

func TestLogNotifierWritesOneStructuredLine(t *testing.T) {
	var buf bytes.Buffer
	n := &LogNotifier{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Routes: (&rules.Config{Slack: rules.SlackConfig{IncidentsChannel: "#inc"}}).RouteFor}
	ev := event(incident.SeverityChanged, 1, 1)
	ev.PreviousSeverity = 3
	ev.Incident.Title, ev.Incident.Rule, ev.Incident.Reasons = "INCIDENT: API Gateway - down since 14:30 UTC", 1, []string{"Q1: no user can reach the service (reachable=false) [annotation]"}
	ev.Incident.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment, Summary: "3/3 pods CrashLoopBackOff",
		Command: "kubectl rollout undo deployment/api -n shop --to-revision=6"}
	if retry, err := n.Notify(context.Background(), ev); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %d: %q", len(lines), buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "incident severity changed", "event": "severity_changed", "incident": "api-1",
		"severity": 1.0, "previous_severity": 3.0, "rule": 1.0, "title": ev.Incident.Title}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if route, _ := got["route"].(map[string]any); route["pagerduty"] != "trigger critical" {
		t.Errorf("route = %v", got["route"])
	}
	if reasons, _ := got["reasons"].([]any); len(reasons) != 1 {
		t.Errorf("reasons = %v", got["reasons"])
	}
	if d, _ := got["diagnosis"].(map[string]any); d["command"] != "kubectl rollout undo deployment/api -n shop --to-revision=6" || d["category"] != "config_or_deployment" {
		t.Errorf("diagnosis = %v", got["diagnosis"])
	}
}

// The log line reports the routing actually configured: overrides per
// service and shadow mode, not just the SPEC's default table.
func TestRouteForFollowsConfiguredRouting(t *testing.T) {
	cfg := &rules.Config{Services: []rules.Service{{Name: "quiet", Routing: rules.RoutingConfig{PagerDuty: []int{1}, SlackChannel: "#quiet"}}}}
	if got := RouteFor(event(incident.Opened, 2, 2), cfg.RouteFor("quiet")).PagerDuty; got != "none (not routed)" {
		t.Errorf("Sev 2 for a service paging only Sev 1: pagerduty %q", got)
	}
	ev := event(incident.Opened, 3, 3)
	ev.Incident.Service = "quiet"
	if got := RouteFor(ev, cfg.RouteFor("quiet")).Slack; got != "#quiet" {
		t.Errorf("per-service channel: slack %q", got)
	}
	cfg.Shadow = true
	r := RouteFor(event(incident.Opened, 1, 1), cfg.RouteFor("api"))
	if r.PagerDuty != "none (not routed)" || r.Slack != "none (not routed)" || r.Grafana != "region annotation" {
		t.Errorf("shadow mode: %+v", r)
	}
}

// The log line says what happens: a receiver that does not run is "none",
// with why, not the action it would take.
func TestLogNotifierNamesReceiversThatDoNotRun(t *testing.T) {
	var buf bytes.Buffer
	n := &LogNotifier{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Off: map[string]string{"pagerduty": "not configured", "grafana": "shadow mode"}}
	if _, err := n.Notify(context.Background(), event(incident.Opened, 1, 1)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Route Route `json:"route"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Route.PagerDuty != "none (not configured)" || got.Route.Grafana != "none (shadow mode)" || !strings.HasPrefix(got.Route.Slack, "#incident-") {
		t.Errorf("route = %+v, want pagerduty and grafana off with why, slack as routed", got.Route)
	}
}
