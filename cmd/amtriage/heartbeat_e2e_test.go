package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/amtest"
)

// Two real Alertmanagers with the same routing tree send to one amtriage:
// their groups of one alertname and service have the same groupKey. A
// complete notification from one never resolves the other's alerts.
func TestTwoAlertmanagersDoNotResolveEachOthersAlerts(t *testing.T) {
	amtest.Binary(t)
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+filepath.Join(dir, "data")+"\n")
	d := startDaemon(t, cfg, freeAddr(t))
	am1 := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	am2 := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	base := time.Now().Add(-time.Minute).Truncate(time.Second) // older than group_wait: flushed at once
	alert := func(pod string, startsAt time.Time) amtest.Alert {
		return amtest.Alert{Labels: map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "warning", "pod": pod},
			Annotations: map[string]string{"summary": "api errors"}, StartsAt: startsAt}
	}
	firing := func() map[string]bool { // by startsAt: each alert has its own
		out := map[string]bool{}
		for _, inc := range d.incidents() {
			for _, a := range inc.Alerts {
				if a.Status == "firing" {
					t, _ := time.Parse(time.RFC3339Nano, a.StartsAt)
					out[fmt.Sprint(t.Sub(base).Seconds())] = true
				}
			}
		}
		return out
	}
	if err := am1.PostAlerts(ctx, []amtest.Alert{alert("a1", base)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a1 from the first Alertmanager", func() bool { return firing()["0"] })
	if err := am2.PostAlerts(ctx, []amtest.Alert{alert("b1", base.Add(time.Second))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "b1 from the second Alertmanager", func() bool { return firing()["1"] })
	if got := firing(); !got["0"] {
		t.Fatalf("the second Alertmanager's notification resolved the first's alert: firing %v", got)
	}
	// The first sends its group again, complete, with a2 and without b1.
	if err := am1.PostAlerts(ctx, []amtest.Alert{alert("a2", base.Add(2*time.Second))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a2 from the first Alertmanager", func() bool { return firing()["2"] })
	if got := firing(); !got["0"] || !got["1"] || len(got) != 3 {
		t.Fatalf("firing %v, want a1, b1 and a2: the first Alertmanager resolved the second's alert", got)
	}
	if open := d.incidents(); len(open) != 1 || open[0].Service != "api" {
		t.Errorf("incidents %+v, want the one of api", open)
	}
}

// The Watchdog heartbeat through a real Alertmanager forms no incident;
// stopping that Alertmanager opens the dead man's switch's Sev 1 incident.
func TestHeartbeatThroughAlertmanagerAndItsSilence(t *testing.T) {
	amtest.Binary(t)
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), `
store:
  path: `+filepath.Join(dir, "data")+`
heartbeat:
  missing_after: 10s
`)
	d := startDaemon(t, cfg, freeAddr(t))
	// Resent every second or two: well within missing_after.
	am := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook"), GroupInterval: time.Second, RepeatInterval: time.Second})
	// A second Alertmanager with the same routing tree keeps sending: each
	// has its own switch, and its heartbeats say nothing of the first's.
	am2 := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook"), GroupInterval: time.Second, RepeatInterval: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	watchdog := []amtest.Alert{
		{Labels: map[string]string{"alertname": "Watchdog", "severity": "none"},
			Annotations: map[string]string{"summary": "An alert that should always be firing"}, StartsAt: time.Now().Add(-time.Minute)},
		{Labels: map[string]string{"alertname": "InfoInhibitor", "severity": "none"}, StartsAt: time.Now().Add(-time.Minute)},
	}
	for _, a := range []*amtest.Alertmanager{am, am2} {
		if err := a.PostAlerts(ctx, watchdog); err != nil {
			t.Fatal(err)
		}
	}
	sample := fmt.Sprintf("amtriage_heartbeat_last_seen_timestamp_seconds{alertmanager=%q}", am.URL())
	waitFor(t, 20*time.Second, "the first heartbeat", func() bool { _, ok := d.metric(sample); return ok })
	first, _ := d.metric(sample)
	// Heartbeats for longer than missing_after: each keeps the switch quiet.
	waitFor(t, 30*time.Second, "heartbeats for longer than missing_after", func() bool {
		last, _ := d.metric(sample)
		return last-first > 11
	})
	if open := d.incidents(); len(open) != 0 {
		t.Fatalf("heartbeats formed incidents: %+v", open)
	}
	am.Stop(t)
	var open []incidentJSON
	waitFor(t, 30*time.Second, "the dead man's switch", func() bool { open = d.incidents(); return len(open) > 0 })
	last, _ := d.metric(sample) // read now: the last heartbeat sent may have been processed after the stop
	since := time.Unix(0, int64(last*1e9)).UTC().Format("15:04")
	want := "INCIDENT: alerting-pipeline - no heartbeat from " + am.URL() + " since " + since + " UTC"
	if len(open) != 1 || open[0].Severity != 1 || open[0].Service != "alerting-pipeline" || open[0].Title != want {
		t.Fatalf("incidents %+v, want one Sev 1 %q", open, want)
	}
	sample2 := fmt.Sprintf("amtriage_heartbeat_last_seen_timestamp_seconds{alertmanager=%q}", am2.URL())
	seen2, _ := d.metric(sample2)
	waitFor(t, 20*time.Second, "the second Alertmanager's heartbeats going on", func() bool {
		now2, _ := d.metric(sample2)
		return now2 > seen2+2
	})
	if open := d.incidents(); len(open) != 1 {
		t.Errorf("incidents %+v, want only the first Alertmanager's silence", open)
	}
}

// Alerts of upstream sum() rules carry no service, job or namespace label:
// sent through two real Alertmanagers with the same routing tree, each
// Alertmanager group is its own incident, named after its alertname; none
// merges into a catch-all.
func TestAlertsWithoutServiceGroupByAlertmanagerGroup(t *testing.T) {
	amtest.Binary(t)
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+filepath.Join(dir, "data")+"\n")
	d := startDaemon(t, cfg, freeAddr(t))
	am1 := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	am2 := amtest.Start(t, amtest.Config{WebhookURL: d.url("/webhook")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now().Add(-time.Minute)
	// One cluster each: their Prometheus servers label what they send
	// (kube-prometheus' external label), so the alerts are distinct. An
	// alert both send alike is one occurrence (an HA pair), by design.
	outage := func(prom string) amtest.Alert {
		return amtest.Alert{Labels: map[string]string{"alertname": "High5xxRatio", "severity": "critical", "prometheus": prom},
			Annotations: map[string]string{"summary": "30% of requests fail", "error_ratio": "0.3"}, StartsAt: start}
	}
	disk := amtest.Alert{Labels: map[string]string{"alertname": "DiskAlmostFull", "severity": "warning", "prometheus": "a/k8s"}, StartsAt: start}
	if err := am1.PostAlerts(ctx, []amtest.Alert{outage("a/k8s"), disk}); err != nil {
		t.Fatal(err)
	}
	if err := am2.PostAlerts(ctx, []amtest.Alert{outage("b/k8s")}); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(20*time.Second, func() bool { return len(d.incidents()) == 3 }) {
		for _, inc := range d.incidents() {
			t.Logf("incident %q service %q alerts %d", inc.Title, inc.Service, len(inc.Alerts))
		}
		t.Fatal("timed out waiting for three incidents")
	}
	byService := map[string]int{}
	for _, inc := range d.incidents() {
		byService[inc.Service]++
		if inc.Service == "unknown" || len(inc.Alerts) != 1 {
			t.Errorf("incident %q (%s) has %d alerts, want one group each", inc.Title, inc.Service, len(inc.Alerts))
		}
		if inc.Service == "High5xxRatio" && inc.Severity != 2 {
			t.Errorf("the outage is Sev %d, want 2 (30%% errors)", inc.Severity)
		}
	}
	if byService["High5xxRatio"] != 2 || byService["DiskAlmostFull"] != 1 {
		t.Errorf("incidents by service %v, want High5xxRatio twice (one per Alertmanager) and DiskAlmostFull once", byService)
	}
}
