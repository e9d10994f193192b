package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/webhook"
)

// fixedEnricher diagnoses every alert the same way.
type fixedEnricher struct{ d diagnosis.Diagnosis }

func (e fixedEnricher) Diagnose(context.Context, *signal.Evaluation, *template.Alert, *rules.Service, severity.Decision) *diagnosis.Diagnosis {
	d := e.d
	return &d
}

// openEscalationPipeline is a pipeline on a real store in dir with one
// receiver ("pager"), escalation.after of after, and the test's clock.
func openEscalationPipeline(t *testing.T, dir string, now func() time.Time, after time.Duration, e Enricher) *switchPipeline {
	t.Helper()
	s, err := boltstore.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := NewPipeline(PipelineOptions{
		Store: s, Triager: &Triager{Config: rules.Default()}, Enricher: e, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(reg), Receivers: []string{"pager"}, StaleAfter: 12 * time.Hour, Retention: 168 * time.Hour,
		EscalateAfter: after, Now: now,
	})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return &switchPipeline{t: t, store: s, p: p, reg: reg}
}

// sev1Payload is one alert of service failing 62% of requests (rule 2: Sev 1).
func sev1Payload(service, status string, startsAt time.Time) []byte {
	labels := map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "service": service, "severity": "critical"}
	endsAt := "0001-01-01T00:00:00Z"
	if status == "resolved" {
		endsAt = startsAt.Add(10 * time.Minute).UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(map[string]any{
		"receiver": "triage", "status": status, "version": "4", "truncatedAlerts": 0,
		"alerts": []map[string]any{{
			"status": status, "labels": labels, "annotations": map[string]string{"summary": service + " is failing", "error_ratio": "62%"},
			"startsAt": startsAt.UTC().Format(time.RFC3339Nano), "endsAt": endsAt, "fingerprint": webhook.Fingerprint(labels),
		}},
		"groupLabels": map[string]string{"service": service}, "commonLabels": labels, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager:9093", "groupKey": fmt.Sprintf(`{}:{service=%q}`, service),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// kinds reads and acknowledges what the receiver was sent, but status updates.
func (sp *switchPipeline) kinds(now time.Time) []incident.Event {
	sp.t.Helper()
	var out []incident.Event
	for {
		env, _, _, err := sp.store.Next("pager", now, nil)
		if err != nil {
			sp.t.Fatal(err)
		}
		if env == nil {
			return out
		}
		if env.Event.Kind != incident.StatusUpdate {
			out = append(out, env.Event)
		}
		if err := sp.store.Ack("pager", env.Seq); err != nil {
			sp.t.Fatal(err)
		}
	}
}

func eventKinds(evs []incident.Event) []incident.EventKind {
	out := make([]incident.EventKind, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kind
	}
	return out
}

// The runbook's escalation rule on the pipeline's clock: a Sev 1 whose cause
// is not identified (no diagnosis, a skipped one, "what changed") is
// escalated once escalation.after has passed since its declaration, through
// the outbox, exactly once across restarts; one whose diagnosis named a
// cause is not.
func TestSev1WithoutCauseIsEscalatedOnce(t *testing.T) {
	cases := []struct {
		name     string
		enricher Enricher
		escalate bool
	}{
		{"no diagnosis", nil, true},
		{"skipped: no cluster", fixedEnricher{diagnosis.Diagnosis{Category: diagnosis.Skipped, Summary: "no Kubernetes diagnosis: no cluster configured"}}, true},
		{"what changed", fixedEnricher{diagnosis.Diagnosis{Category: diagnosis.WhatChanged, Summary: "what changed recently: nothing clear"}}, true},
		{"crash loop after a rollout", fixedEnricher{diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment,
			Summary: "pods not starting (CrashLoopBackOff) after the rollout to revision 2: roll back",
			Command: "kubectl rollout undo deployment/api -n shop --to-revision=1"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t0 := time.Date(2026, 11, 23, 3, 4, 0, 0, time.UTC)
			clock := t0
			now := func() time.Time { return clock }
			const after = 5 * time.Minute
			sp := openEscalationPipeline(t, dir, now, after, tc.enricher)
			sp.receive(sev1Payload("api", "firing", t0.Add(-time.Minute)), t0)
			if err := sp.p.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			clock = t0.Add(after - time.Second)
			if err := sp.p.Sweep(); err != nil {
				t.Fatal(err)
			}
			if got := eventKinds(sp.kinds(clock)); len(got) != 1 || got[0] != incident.Opened {
				t.Fatalf("before escalation.after: %v, want [opened]", got)
			}

			clock = t0.Add(after)
			if err := sp.p.Sweep(); err != nil {
				t.Fatal(err)
			}
			got := sp.kinds(clock)
			if !tc.escalate {
				if len(got) != 0 {
					t.Fatalf("a Sev 1 whose cause is identified was sent %v", eventKinds(got))
				}
			} else {
				if len(got) != 1 || got[0].Kind != incident.Escalated {
					t.Fatalf("at escalation.after: %v, want [escalated]", eventKinds(got))
				}
				if ev := got[0]; !ev.Incident.EscalatedAt.Equal(clock) || !ev.Incident.Sev1At.Equal(t0) || ev.Incident.Severity != 1 {
					t.Errorf("escalated event: escalated %v, sev1 at %v, severity %d", ev.Incident.EscalatedAt, ev.Incident.Sev1At, ev.Incident.Severity)
				}
			}
			sp.close()

			// A restart neither escalates again nor forgets it did.
			clock = t0.Add(3 * after)
			sp = openEscalationPipeline(t, dir, now, after, tc.enricher)
			if err := sp.p.Sweep(); err != nil {
				t.Fatal(err)
			}
			if got := sp.kinds(clock); len(got) != 0 {
				t.Fatalf("after a restart: %v, want nothing more", eventKinds(got))
			}
			sp.receive(sev1Payload("api", "resolved", t0.Add(-time.Minute)), clock)
			if err := sp.p.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			got = sp.kinds(clock)
			if len(got) != 1 || got[0].Kind != incident.ResolvedEvent || got[0].Incident.EscalatedAt.IsZero() != !tc.escalate {
				t.Fatalf("resolve: %v, want [resolved] carrying whether it was escalated (%v)", eventKinds(got), tc.escalate)
			}
			sp.close()
		})
	}
}

// A restart before escalation.after has passed does not forget the
// declaration: the escalation comes on time, once.
func TestEscalationDueAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 23, 3, 4, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	sp := openEscalationPipeline(t, dir, now, time.Minute, nil)
	sp.receive(sev1Payload("api", "firing", t0), t0)
	if err := sp.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	sp.kinds(clock)
	sp.close()

	clock = t0.Add(time.Minute)
	sp = openEscalationPipeline(t, dir, now, time.Minute, nil)
	defer sp.close()
	for range 2 {
		if err := sp.p.Sweep(); err != nil {
			t.Fatal(err)
		}
	}
	if got := eventKinds(sp.kinds(clock)); len(got) != 1 || got[0] != incident.Escalated {
		t.Fatalf("escalation.after passed across a restart: %v, want [escalated]", got)
	}
}

// escalation.after paces the periodic work: an escalation is at most a
// quarter of it late.
func TestTickFollowsEscalationAfter(t *testing.T) {
	p := &Pipeline{staleAfter: 12 * time.Hour, missingAfter: 15 * time.Minute, escalate: 20 * time.Second}
	if got := p.tick(); got != 5*time.Second {
		t.Errorf("tick with escalation.after 20s: %v, want 5s", got)
	}
}

// The dead man's switch's Sev 1 has no diagnosis, but its cause is stated
// (an Alertmanager is silent): it is not escalated to the senior on call.
func TestDeadMansSwitchIsNotEscalated(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 3, 4, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	sp := openEscalationPipeline(t, t.TempDir(), now, time.Minute, nil)
	defer sp.close()
	sp.receive(watchdogs(t, heartbeatAM), t0)
	if err := sp.p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock = t0.Add(20 * time.Minute)
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	if open := sp.p.OpenIncidents(); len(open) != 1 || open[0].Service != "alerting-pipeline" {
		t.Fatalf("after 20 minutes of silence: %+v, want the switch's incident", open)
	}
	clock = clock.Add(10 * time.Minute)
	if err := sp.p.Sweep(); err != nil {
		t.Fatal(err)
	}
	for _, k := range eventKinds(sp.kinds(clock)) {
		if k == incident.Escalated {
			t.Fatal("the dead man's switch's incident was escalated")
		}
	}
}
