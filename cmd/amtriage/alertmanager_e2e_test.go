package main

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/amtest"
)

// TestRealAlertmanagerDelivers runs the real Alertmanager binary with a
// webhook receiver and bearer token pointing at the amtriage binary, posts
// alerts to Alertmanager's API and follows them to incidents and back.
func TestRealAlertmanagerDelivers(t *testing.T) {
	amtest.Binary(t) // skips locally / fails in CI when Alertmanager is missing
	dir := t.TempDir()
	const token = "e2e-token-7f3a"
	writeFile(t, filepath.Join(dir, "token"), token+"\n")
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), `
listen: 127.0.0.1:9095
auth:
  bearer_token_file: token
store:
  path: `+filepath.Join(dir, "data")+`
services:
  - name: api
    match: ['service="api"']
    latency_baseline: 250ms
`)
	d := startDaemon(t, cfg, freeAddr(t))
	d.token = token
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook"), BearerToken: token})

	started := time.Now().Add(-time.Minute).Truncate(time.Millisecond) // older than group_wait: flushed at once
	api := []amtest.Alert{
		{Labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "warning"},
			Annotations: map[string]string{"error_ratio": "62%", "summary": "api 5xx ratio above 50%"}, StartsAt: started},
		{Labels: map[string]string{"alertname": "HighLatency", "service": "api", "severity": "warning"},
			Annotations: map[string]string{"p99_latency": "3s"}, StartsAt: started},
	}
	others := []amtest.Alert{
		{Labels: map[string]string{"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
			Annotations: map[string]string{"error_ratio": "0.07"}, StartsAt: started},
		{Labels: map[string]string{"alertname": "DiskFilling", "service": "cache", "severity": "critical"},
			Annotations: map[string]string{"impact": "none"}, StartsAt: started},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, append(append([]amtest.Alert{}, api...), others...)); err != nil {
		t.Fatal(err)
	}

	byService := func() map[string]incidentJSON {
		out := map[string]incidentJSON{}
		for _, inc := range d.incidents() {
			out[inc.Service] = inc
		}
		return out
	}
	waitFor(t, 20*time.Second, "three incidents with both api alerts", func() bool {
		m := byService()
		return len(m) == 3 && m["api"].AlertsFiring == 2
	})
	m := byService()
	want := map[string]struct{ severity, rule, alerts int }{
		"api":      {1, 2, 2}, // 62% errors (rule 2) outranks 3s ÷ 250ms = 12× (rule 4)
		"checkout": {3, 5, 1},
		"cache":    {4, 7, 1},
	}
	for svc, w := range want {
		got := m[svc]
		if got.Severity != w.severity || got.Rule != w.rule || len(got.Alerts) != w.alerts {
			t.Errorf("%s: severity %d rule %d alerts %d, want %d %d %d (reasons %q)",
				svc, got.Severity, got.Rule, len(got.Alerts), w.severity, w.rule, w.alerts, got.Reasons)
		}
	}
	if got, want := m["api"].Title, "INCIDENT: api - api 5xx ratio above 50% since "+started.UTC().Format("15:04")+" UTC"; got != want {
		t.Errorf("api title %q, want %q", got, want)
	}
	for _, a := range m["api"].Alerts {
		if a.Alertname == "HighLatency" && (a.Severity != 2 || a.Rule != 4) {
			t.Errorf("HighLatency alert: severity %d rule %d, want 2 4 (12× latency)", a.Severity, a.Rule)
		}
	}

	// Resolve api in Alertmanager: its incident closes, the others stay.
	if err := am.PostAlerts(ctx, amtest.Resolve(api)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "api incident resolved", func() bool {
		m := byService()
		_, open := m["api"]
		return !open && len(m) == 2
	})

	// The log notifier is a receiver like any other: its lines follow the
	// state change through the outbox, a moment later.
	waitFor(t, 10*time.Second, "the log notifier's resolved line", func() bool {
		return len(eventLines(t, d.stdout.String(), "incident resolved")) > 0
	})
	opened := eventLines(t, d.stdout.String(), "incident opened")
	resolved := eventLines(t, d.stdout.String(), "incident resolved")
	var apiOpened, apiResolved int
	for _, e := range opened {
		if e["service"] == "api" {
			apiOpened++
		}
	}
	for _, e := range resolved {
		if e["service"] == "api" {
			apiResolved++
			// No PagerDuty is configured here: the line says so instead
			// of claiming a resolve that nobody sends.
			if route, _ := e["route"].(map[string]any); route["pagerduty"] != "none (not configured)" {
				t.Errorf("api resolved route %v, want pagerduty none (not configured)", e["route"])
			}
		}
	}
	if apiOpened != 1 || apiResolved != 1 || len(opened) != 3 {
		t.Errorf("log notifier: %d opened (api %d), api resolved %d; want 3, 1, 1\n%s", len(opened), apiOpened, apiResolved, d.stdout.String())
	}
	if err := d.kill(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: exit %v, want clean exit", err)
	}
}
