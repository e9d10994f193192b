package pagerduty

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	"github.com/amtriage/amtriage/rules"
)

const escalationKey = "ESCsecretKeyDoNotLeak0123456789q" // 32 characters

// escalated is a Sev 1 of api escalated 5 minutes after it was declared,
// with a diagnosis that found nothing (no cluster).
func escalated(kind incident.EventKind) *incident.Event {
	ev := event(kind, "api", 1, 0, 1)
	ev.Incident.Sev1At = started.Add(time.Minute)
	ev.Incident.EscalatedAt = started.Add(6 * time.Minute)
	ev.Incident.Reasons = append(ev.Incident.Reasons, "error_ratio=62% [annotation]", "reachable unknown")
	ev.Incident.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.Skipped, Summary: "no Kubernetes diagnosis: no cluster configured"}
	if kind == incident.Escalated {
		ev.At = ev.Incident.EscalatedAt
	}
	return ev
}

// An escalation pages the escalation key with its own dedup key, carrying
// the runbook's escalation message; the incident's resolve resolves it too.
// Without an escalation key nothing of it is sent.
func TestEscalationPagesAndResolvesWithTheIncident(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, func(c *Config) { c.EscalationRoutingKey = rules.Secret(escalationKey) })

	for _, ev := range []*incident.Event{escalated(incident.Opened), escalated(incident.Escalated)} {
		if _, err := notify1(t, n, ev); err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
	}
	dedup := "api-0123456789ab/escalation"
	trig := fake.Triggers(dedup)
	if len(trig) != 1 || trig[0].RoutingKey != escalationKey || trig[0].Payload.Severity != "critical" {
		t.Fatalf("escalation triggers: %+v, want one, critical, on the escalation key", trig)
	}
	p := trig[0].Payload
	if !strings.HasPrefix(p.Summary, "ESCALATION: Sev 1 api, cause not identified after 5m0s") {
		t.Errorf("summary %q", p.Summary)
	}
	d := p.CustomDetails
	if d["service"] != "api" || d["duration_so_far"] != "6m0s" || !strings.Contains(d["why_stuck"].(string), "no cluster configured") {
		t.Errorf("details: %v", d)
	}
	checked, _ := d["checked"].([]any)
	if !slices.Contains(checked, any("error_ratio=62% [annotation]")) || !slices.Contains(checked, any("quick diagnosis: no Kubernetes diagnosis: no cluster configured")) {
		t.Errorf("checked: %v, want the diagnosis and the signals", checked)
	}
	if sym, _ := d["current_symptoms"].([]any); len(sym) != 1 || sym[0] != "Q2: 62% of requests failing (> 50%) [prometheus]" {
		t.Errorf("symptoms: %v", sym)
	}
	if len(fake.Triggers("api-0123456789ab")) != 1 {
		t.Errorf("the incident's own page was triggered %d times, want once (the escalation is another alert)", len(fake.Triggers("api-0123456789ab")))
	}
	if got, _ := n.Methods(escalated(incident.Escalated)); !slices.Equal(got, []string{escalationMethod}) {
		t.Errorf("methods of an escalation: %v", got)
	}

	if _, err := notify1(t, n, escalated(incident.ResolvedEvent)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"api-0123456789ab", dedup} {
		if a, ok := fake.Alert(key); !ok || a.Status != fakepd.Resolved {
			t.Errorf("%s after the incident resolved: %+v, want resolved", key, a)
		}
	}
	if got, _ := n.Methods(escalated(incident.ResolvedEvent)); !slices.Equal(got, []string{"enqueue", escalationMethod}) {
		t.Errorf("methods of an escalated incident's resolve: %v", got)
	}

	// An incident never escalated resolves its own page only.
	plain := event(incident.ResolvedEvent, "web", 1, 0, 1)
	before := len(fake.Events())
	if _, err := notify1(t, n, plain); err != nil {
		t.Fatal(err)
	}
	if evs := fake.Events()[before:]; len(evs) != 1 || evs[0].DedupKey != "web-0123456789ab" {
		t.Errorf("resolve of an incident never escalated sent %+v", evs)
	}
}

func TestEscalationWithoutAnEscalationKeySendsNothing(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, nil)
	for _, ev := range []*incident.Event{escalated(incident.Escalated), escalated(incident.ResolvedEvent)} {
		if _, err := notify1(t, n, ev); err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
	}
	for _, e := range fake.Events() {
		if strings.HasSuffix(e.DedupKey, "/escalation") {
			t.Errorf("sent %s for %s without an escalation key", e.Action, e.DedupKey)
		}
	}
	if got, _ := n.Methods(escalated(incident.Escalated)); len(got) != 0 {
		t.Errorf("methods of an escalation without a key: %v, want none", got)
	}
}

// An escalated incident that reopens from monitoring (both pages resolved
// on entering it) pages the senior engineer again: the cause is still
// not identified.
func TestReopenedEscalatedIncidentIsEscalatedAgain(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, func(c *Config) { c.EscalationRoutingKey = rules.Secret(escalationKey) })
	reopen := escalated(incident.Reopened)
	reopen.PreviousState = incident.StateMonitoring
	for _, ev := range []*incident.Event{escalated(incident.Opened), escalated(incident.Escalated), escalated(incident.ResolvedEvent), reopen} {
		if _, err := notify1(t, n, ev); err != nil {
			t.Fatalf("%s: %v", ev.Kind, err)
		}
	}
	dedup := "api-0123456789ab/escalation"
	if a, ok := fake.Alert(dedup); !ok || a.Status != fakepd.Triggered || len(fake.Triggers(dedup)) != 2 {
		t.Fatalf("escalation page after the reopening: %+v, %d triggers; want triggered again", a, len(fake.Triggers(dedup)))
	}
	if got, _ := n.Methods(reopen); !slices.Contains(got, escalationMethod) {
		t.Errorf("methods of the reopening: %v, want the escalation key's too", got)
	}
}
