package incident

import (
	"testing"
	"time"
)

func verifyOp(now time.Time, v Verification) op { return op{verify: &v, now: now} }

// kinds lists the timeline's entry kinds in order.
func kinds(inc *Incident) []string {
	out := []string{}
	for _, e := range inc.Timeline {
		out = append(out, e.Kind)
	}
	return out
}

// TestLifecycle walks one incident through open → verifying → open again
// (a recurrence) → verifying → monitoring → open again → … → closed: the
// same incident all along, receivers told on monitoring, reopening, closing.
func TestLifecycle(t *testing.T) {
	id := newID("api", occKey("a", t0))
	b := NewBook()
	b.Verifies = func(*Incident) bool { return true }
	state := func(want string, recurrences int) func(t *testing.T, b *Book, ch *Changes) {
		return func(t *testing.T, b *Book, ch *Changes) {
			t.Helper()
			inc := b.Get(id)
			equal(t, "state", inc.State, want)
			equal(t, "recurrences", inc.Recurrences, recurrences)
			open := 0
			if want == StateOpen {
				open = 1
			}
			equal(t, "open count", b.OpenCount(), open)
			equal(t, "open", len(b.Open()), open)
			equal(t, "active", b.open["api"] == inc, want != StateClosed)
		}
	}
	runSteps(t, b, []stepCase{
		{name: "a fires", op: apply(batch(t0, "g", false, fire("api", "a", t0, 1))),
			events: []string{"opened api sev1 firing=1 alerts=1"}, check: state(StateOpen, 0)},
		{name: "a resolves: verifying, receivers not told yet", op: apply(batch(at(time.Minute), "g", false, resolve("api", "a", t0, at(time.Minute), 1))),
			check: state(StateVerifying, 0)},
		{name: "b fires while verifying: the same incident reopens", op: apply(batch(at(2*time.Minute), "g", false, fire("api", "b", at(2*time.Minute), 2))),
			events: []string{"reopened api sev2 from sev1 firing=1 alerts=1"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				state(StateOpen, 1)(t, b, ch)
				equal(t, "previous state", ch.Events[0].PreviousState, StateVerifying)
				equal(t, "status", b.Get(id).Status, Firing)
				equal(t, "resolved at", b.Get(id).ResolvedAt, time.Time{})
			}},
		{name: "b resolves", op: apply(batch(at(3*time.Minute), "g", false, resolve("api", "b", at(2*time.Minute), at(3*time.Minute), 2))),
			check: state(StateVerifying, 1)},
		{name: "not verified: announced once", op: verifyOp(at(4*time.Minute), Verification{IncidentID: id, Checks: []string{"pods: 1/3 ready"}, Pending: "1/3 pods ready"}),
			events: []string{"verify_pending api sev2 firing=0 alerts=0"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				state(StateVerifying, 1)(t, b, ch)
				equal(t, "verification", b.Get(id).Verification, "alerts resolved, recovery not verified: 1/3 pods ready")
			}},
		{name: "still not verified: not announced again, the record follows", op: verifyOp(at(5*time.Minute), Verification{IncidentID: id, Checks: []string{"pods: 2/3 ready"}, Pending: "2/3 pods ready"}),
			check: func(t *testing.T, b *Book, ch *Changes) {
				state(StateVerifying, 1)(t, b, ch)
				equal(t, "verification", b.Get(id).Verification, "alerts resolved, recovery not verified: 2/3 pods ready")
			}},
		{name: "verified: monitoring, resolved for receivers", op: verifyOp(at(6*time.Minute), Verification{IncidentID: id, Checks: []string{"pods: 3/3 ready"}, Done: true, Result: "resolved, verified"}),
			events: []string{"resolved api sev2 firing=0 alerts=0"}, check: state(StateMonitoring, 1)},
		{name: "monitor_for not yet over", op: closeQuiet(at(20*time.Minute), 15*time.Minute), empty: true, check: state(StateMonitoring, 1)},
		{name: "a fires again while monitoring: reopens", op: apply(batch(at(21*time.Minute), "g", false, fire("api", "a", at(21*time.Minute), 1))),
			events: []string{"reopened api sev1 from sev2 firing=1 alerts=1"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				state(StateOpen, 2)(t, b, ch)
				equal(t, "previous state", ch.Events[0].PreviousState, StateMonitoring)
				equal(t, "closure cleared", b.Get(id).Verification, "")
			}},
		{name: "resolves", op: apply(batch(at(22*time.Minute), "g", false, resolve("api", "a", at(21*time.Minute), at(22*time.Minute), 1))),
			check: state(StateVerifying, 2)},
		{name: "verified", op: verifyOp(at(23*time.Minute), Verification{IncidentID: id, Done: true, Result: "resolved, verified"}),
			events: []string{"resolved api sev1 firing=0 alerts=0"}, check: state(StateMonitoring, 2)},
		{name: "monitor_for passes quietly: closed", op: closeQuiet(at(38*time.Minute), 15*time.Minute),
			events: []string{"closed api sev1 firing=0 alerts=0"}, check: state(StateClosed, 2)},
		{name: "after closing, a new incident", op: apply(batch(at(40*time.Minute), "g", false, fire("api", "c", at(40*time.Minute), 3))),
			events: []string{"opened api sev3 firing=1 alerts=1"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				if only(t, b).ID == id {
					t.Error("a closed incident reopened")
				}
				equal(t, "timeline", kinds(b.Get(id)), []string{"detected", "declared", "resolved", "reopened", "resolved",
					"check", "verification", "check", "check", "monitoring", "reopened", "resolved", "monitoring", "closed"})
			}},
	})
}

// TestNoVerificationSource: without any check that could look at the
// incident, it moves on to monitoring at once, "not verified: no source".
func TestNoVerificationSource(t *testing.T) {
	b := NewBook()
	b.Apply(batch(t0, "g", false, fire("api", "a", t0, 2)))
	ch := b.Apply(batch(at(time.Minute), "g", false, resolve("api", "a", t0, at(time.Minute), 2)))
	equal(t, "events", evSummaries(ch), []string{"resolved api sev2 firing=0 alerts=1"})
	inc := b.Get(newID("api", occKey("a", t0)))
	equal(t, "state", inc.State, StateMonitoring)
	equal(t, "verification", inc.Verification, NoSource)
}

// TestTimelineBounded: a flapping incident keeps the last MaxTimeline
// entries and counts the ones it dropped.
func TestTimelineBounded(t *testing.T) {
	b := NewBook()
	for i := range 300 {
		start := at(time.Duration(i) * time.Minute)
		b.Apply(batch(start, "g", false, fire("api", "a", start, 2)))
		b.Apply(batch(start.Add(30*time.Second), "g", false, resolve("api", "a", start, start.Add(30*time.Second), 2)))
	}
	inc := b.Get(newID("api", occKey("a", t0)))
	equal(t, "recurrences", inc.Recurrences, 299)
	equal(t, "timeline", len(inc.Timeline), MaxTimeline)
	if inc.TimelineDropped == 0 || inc.TimelineDropped+len(inc.Timeline) < 3*300 {
		t.Errorf("dropped = %d", inc.TimelineDropped)
	}
	equal(t, "last", inc.Timeline[len(inc.Timeline)-1].Kind, "monitoring")
}

// TestRestoreLegacyState: incidents stored before the lifecycle get a
// state from their status; verifying ones are active again after a restart.
func TestRestoreLegacyState(t *testing.T) {
	firing := &Incident{ID: "f", Service: "a", Status: Firing, Severity: 2}
	resolved := &Incident{ID: "r", Service: "b", Status: Resolved, Severity: 2}
	verifying := &Incident{ID: "v", Service: "c", Status: Resolved, State: StateVerifying, Severity: 1}
	b := NewBook()
	b.Restore([]*Incident{firing, resolved, verifying}, nil, nil)
	equal(t, "firing", firing.State, StateOpen)
	equal(t, "resolved", resolved.State, StateClosed)
	equal(t, "verifying kept", b.Verifying(), []*Incident{verifying})
	equal(t, "count", b.CountOpen(), [5]int{0, 0, 1, 0, 0})
	equal(t, "active", b.open["c"] == verifying && b.open["b"] == nil, true)
}

// TestCloseAtOnce: incidents marked so close as their alerts resolve, and
// the next occurrence opens a new one.
func TestCloseAtOnce(t *testing.T) {
	b := NewBook()
	b.CloseAtOnce = func(inc *Incident) bool { return inc.Service == "hb" }
	b.Apply(batch(t0, "g", false, fire("hb", "a", t0, 1)))
	ch := b.Apply(batch(at(time.Minute), "g", false, resolve("hb", "a", t0, at(time.Minute), 1)))
	equal(t, "events", evSummaries(ch), []string{"resolved hb sev1 firing=0 alerts=1"})
	id := newID("hb", occKey("a", t0))
	equal(t, "state", b.Get(id).State, StateClosed)
	ch = b.Apply(batch(at(2*time.Minute), "g", false, fire("hb", "b", at(2*time.Minute), 1)))
	equal(t, "events", evSummaries(ch), []string{"opened hb sev1 firing=1 alerts=1"})
	if only(t, b).ID == id {
		t.Error("reopened")
	}
}
