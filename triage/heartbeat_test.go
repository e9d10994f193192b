package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/triage/heartbeat"
	"github.com/amtriage/amtriage/webhook"
)

const heartbeatAM = "http://am1.example:9093"

// watchdogs is the notification of kube-prometheus' severity="none" group
// as an Alertmanager sends it: the Watchdog heartbeat and InfoInhibitor.
func watchdogs(t *testing.T, externalURL string) []byte {
	t.Helper()
	var alerts []map[string]any
	for _, name := range []string{"Watchdog", "InfoInhibitor"} {
		labels := map[string]string{"alertname": name, "severity": "none", "prometheus": "monitoring/k8s"}
		alerts = append(alerts, map[string]any{
			"status": "firing", "labels": labels, "annotations": map[string]string{"summary": "An alert that should always be firing"},
			"startsAt": "2000-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": webhook.Fingerprint(labels),
		})
	}
	b, err := json.Marshal(map[string]any{
		"version": "4", "status": "firing", "receiver": "amtriage", "groupKey": `{}/{severity="none"}:{}`, "truncatedAlerts": 0,
		"externalURL": externalURL, "commonLabels": map[string]string{"severity": "none"}, "alerts": alerts,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// switchPipeline is a pipeline on a real store in dir, with one receiver
// ("pager") whose outbox the test reads, and a clock the test sets.
type switchPipeline struct {
	t     *testing.T
	store *boltstore.Store
	p     *Pipeline
	reg   *prometheus.Registry
}

func openSwitchPipeline(t *testing.T, dir string, now func() time.Time) *switchPipeline {
	t.Helper()
	s, err := boltstore.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := NewPipeline(PipelineOptions{
		Store: s, Triager: &Triager{Config: rules.Default()}, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(reg), Receivers: []string{"pager"}, StaleAfter: 12 * time.Hour, Retention: 168 * time.Hour,
		StatusEvery: map[severity.Level]time.Duration{1: 2 * time.Minute}, Now: now,
	})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return &switchPipeline{t: t, store: s, p: p, reg: reg}
}

func (sp *switchPipeline) close() {
	if err := sp.store.Close(); err != nil {
		sp.t.Fatal(err)
	}
}

// receive acknowledges a notification as intake does, at at.
func (sp *switchPipeline) receive(body []byte, at time.Time) {
	sp.t.Helper()
	entries := []*store.InboxEntry{{ReceivedAt: at, Body: body}}
	if err := sp.store.AppendInbox(entries); err != nil {
		sp.t.Fatal(err)
	}
	sp.p.Committed(entries, []*webhook.Message{nil})
}

// events reads and acknowledges what the receiver was sent, as "kind sevN title".
func (sp *switchPipeline) events(now time.Time) []string {
	sp.t.Helper()
	var out []string
	for {
		env, _, _, err := sp.store.Next("pager", now, nil)
		if err != nil {
			sp.t.Fatal(err)
		}
		if env == nil {
			return out
		}
		if env.Event.Kind != "status_update" {
			out = append(out, fmt.Sprintf("%s sev%d %s", env.Event.Kind, env.Event.Incident.Severity, env.Event.Incident.Title))
		}
		if err := sp.store.Ack("pager", env.Seq); err != nil {
			sp.t.Fatal(err)
		}
	}
}

// lastSeen is amtriage_heartbeat_last_seen_timestamp_seconds of externalURL.
func (sp *switchPipeline) lastSeen(externalURL string) (float64, bool) {
	sp.t.Helper()
	mfs, err := sp.reg.Gather()
	if err != nil {
		sp.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "amtriage_heartbeat_last_seen_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "alertmanager" && l.GetValue() == externalURL {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func missingTitle(since time.Time) string {
	return "INCIDENT: alerting-pipeline - no heartbeat from " + heartbeatAM + " since " + since.UTC().Format("15:04") + " UTC"
}

// The dead man's switch on the pipeline's own clock: heartbeats form no
// incident; silence longer than missing_after (15m by default) opens one
// Sev 1 incident, sent to the receivers; the next heartbeat resolves it.
func TestDeadMansSwitchOpensAndResolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := openSwitchPipeline(t, t.TempDir(), nil)
		defer sp.close()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { sp.p.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		time.Sleep(3*time.Hour + 4*time.Minute) // 03:04 of the bubble's day
		sp.receive(watchdogs(t, heartbeatAM), time.Now())
		synctest.Wait()
		if open := sp.p.OpenIncidents(); len(open) != 0 {
			t.Fatalf("heartbeats formed incidents: %+v", open)
		}
		if got, ok := sp.lastSeen(heartbeatAM); !ok || got != float64(time.Now().Unix()) {
			t.Errorf("last seen metric %v %v, want %d", got, ok, time.Now().Unix())
		}
		time.Sleep(14 * time.Minute)
		beat := time.Now()
		sp.receive(watchdogs(t, heartbeatAM), beat) // in time: the clock starts again
		time.Sleep(14 * time.Minute)
		if open := sp.p.OpenIncidents(); len(open) != 0 {
			t.Fatalf("28 minutes after the first heartbeat, 14 after the last: %+v", open)
		}
		time.Sleep(2 * time.Minute)
		open := sp.p.OpenIncidents()
		if len(open) != 1 || open[0].Title != missingTitle(beat) || open[0].Severity != 1 || open[0].Service != "alerting-pipeline" {
			t.Fatalf("16 minutes of silence: %+v, want one Sev 1 %q", open, missingTitle(beat))
		}
		time.Sleep(30 * time.Minute) // still silent: the same incident, not another
		if got := sp.events(time.Now()); len(got) != 1 || got[0] != "opened sev1 "+missingTitle(beat) {
			t.Fatalf("sent %q, want the one opening", got)
		}
		sp.receive(watchdogs(t, heartbeatAM), time.Now())
		synctest.Wait()
		if open := sp.p.OpenIncidents(); len(open) != 0 {
			t.Fatalf("after the heartbeat came back: %+v", open)
		}
		if got := sp.events(time.Now()); len(got) != 1 || !strings.HasPrefix(got[0], "resolved sev1 "+missingTitle(beat)) {
			t.Fatalf("sent %q, want the resolution", got)
		}
	})
}

// The last heartbeat's time is in the store: a restart neither forgets it
// nor starts the silence anew, and an incident it opened is resolved by the
// heartbeat after another restart.
func TestDeadMansSwitchSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 23, 3, 4, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	sp := openSwitchPipeline(t, dir, now)
	sp.receive(watchdogs(t, heartbeatAM), t0)
	if err := sp.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	sp.close()

	clock = t0.Add(10 * time.Minute)
	sp = openSwitchPipeline(t, dir, now)
	if got, ok := sp.lastSeen(heartbeatAM); !ok || got != float64(t0.Unix()) {
		t.Errorf("after a restart the last seen metric is %v %v, want %d", got, ok, t0.Unix())
	}
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 0 {
		t.Fatalf("10 minutes of silence: %+v", open)
	}
	clock = t0.Add(16 * time.Minute) // 16 since the heartbeat, 6 since the restart
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 1 || open[0].Title != missingTitle(t0) {
		t.Fatalf("16 minutes of silence across a restart: %+v, want %q", open, missingTitle(t0))
	}
	sp.close()

	clock = t0.Add(20 * time.Minute)
	back := clock
	sp = openSwitchPipeline(t, dir, now)
	if open := sp.p.OpenIncidents(); len(open) != 1 {
		t.Fatalf("after a restart: %+v, want the incident still open", open)
	}
	sp.receive(watchdogs(t, heartbeatAM), back)
	if err := sp.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 0 {
		t.Fatalf("the heartbeat after a restart left %+v open", open)
	}
	if got := sp.events(clock); len(got) != 2 || got[0] != "opened sev1 "+missingTitle(t0) || !strings.HasPrefix(got[1], "resolved sev1") {
		t.Errorf("sent %q, want the opening and the resolution", got)
	}
	sp.close()

	// Down for 40 minutes: Alertmanager could not deliver meanwhile, so its
	// silence waits the start grace for a heartbeat, then counts from its start.
	clock = back.Add(40 * time.Minute)
	sp = openSwitchPipeline(t, dir, now)
	defer sp.close()
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 0 {
		t.Fatalf("at once after a long downtime: %+v", open)
	}
	clock = clock.Add(heartbeat.StartGrace)
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 1 || open[0].Title != missingTitle(back) {
		t.Fatalf("the start grace over: %+v, want %q", open, missingTitle(back))
	}
}

// An Alertmanager silent for longer than incidents.retention (retired, or
// renamed) is forgotten: its incident resolves, its state is deleted (a
// restart does not bring it back), and the switch's state follows the
// Alertmanagers that exist, not history. URLs differing only in case or a
// trailing slash are one Alertmanager.
func TestSilentAlertmanagerIsForgottenAfterRetention(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 23, 3, 4, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	sp := openSwitchPipeline(t, dir, now)
	sp.receive(watchdogs(t, heartbeatAM), t0)
	sp.receive(watchdogs(t, strings.ToUpper(heartbeatAM)+"/"), t0.Add(time.Second))
	if err := sp.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ls, _ := sp.store.LoadState(); len(ls.Heartbeats) != 1 {
		t.Fatalf("heartbeat state %v, want one Alertmanager", ls.Heartbeats)
	}
	clock = t0.Add(time.Hour)
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 1 {
		t.Fatalf("after an hour of silence: %d incidents, want 1", len(open))
	}
	clock = t0.Add(168*time.Hour + time.Minute) // past the retention
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 0 {
		t.Fatalf("past the retention: %+v open, want the silence resolved", open)
	}
	sp.close()
	sp = openSwitchPipeline(t, dir, now)
	defer sp.close()
	if ls, _ := sp.store.LoadState(); len(ls.Heartbeats) != 0 {
		t.Errorf("forgotten Alertmanager still stored: %v", ls.Heartbeats)
	}
	clock = clock.Add(time.Hour)
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 0 {
		t.Errorf("a forgotten Alertmanager paged again: %+v", open)
	}
}
