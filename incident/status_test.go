package incident

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/severity"
)

func TestStatusDueFollowsTheRunbookCadence(t *testing.T) {
	b := NewBook()
	every := map[severity.Level]time.Duration{1: 2 * time.Minute, 2: 5 * time.Minute}
	b.Apply(batch(at(0), "g1", false, fire("crit", "a", at(0), 1)))
	b.Apply(batch(at(0), "g2", false, fire("major", "b", at(0), 2)))
	b.Apply(batch(at(0), "g3", false, fire("minor", "c", at(0), 3)))
	kinds := func(ch *Changes) map[string]EventKind {
		out := map[string]EventKind{}
		for _, ev := range ch.Events {
			out[ev.Incident.Service] = ev.Kind
		}
		return out
	}
	if got := kinds(b.StatusDue(at(time.Minute), every)); len(got) != 0 {
		t.Fatalf("after 1m: %v, want none", got)
	}
	got := kinds(b.StatusDue(at(2*time.Minute), every))
	if len(got) != 1 || got["crit"] != StatusUpdate {
		t.Fatalf("after 2m: %v, want a Sev 1 update only", got)
	}
	if got := kinds(b.StatusDue(at(3*time.Minute), every)); len(got) != 0 {
		t.Fatalf("after 3m: %v, want none (Sev 1 updated at 2m)", got)
	}
	got = kinds(b.StatusDue(at(5*time.Minute), every))
	if len(got) != 2 || got["crit"] != StatusUpdate || got["major"] != StatusUpdate {
		t.Fatalf("after 5m: %v, want Sev 1 and Sev 2 updates", got)
	}
	// A severity change is itself an update: the clock restarts from it.
	b.Apply(batch(at(6*time.Minute), "g2", false, fire("major", "d", at(6*time.Minute), 1)))
	if got := kinds(b.StatusDue(at(7*time.Minute), every)); got["major"] != "" {
		t.Fatalf("1m after escalating: %v, want no update for it yet", got)
	}
	ch := b.StatusDue(at(9*time.Minute), every)
	if len(ch.Incidents) != len(ch.Events) || len(ch.Events) != 2 {
		t.Fatalf("status updates must persist the incidents they touch: %d incidents, %d events", len(ch.Incidents), len(ch.Events))
	}
}
