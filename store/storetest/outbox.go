package storetest

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// next is one Next call.
func next(t testing.TB, s store.Store, receiver string, now time.Time, busy func(string) bool) (*notify.Envelope, time.Time, notify.QueueStats) {
	t.Helper()
	env, wake, stats, err := s.Next(receiver, now, busy)
	if err != nil {
		t.Fatalf("Next(%s): %v", receiver, err)
	}
	return env, wake, stats
}

func ack(t testing.TB, s store.Store, env *notify.Envelope) {
	t.Helper()
	if err := s.Ack(env.Receiver, env.Seq); err != nil {
		t.Fatalf("Ack(%s, %d): %v", env.Receiver, env.Seq, err)
	}
}

func depth(t testing.TB, s store.Store) map[string]int {
	t.Helper()
	d, err := s.OutboxDepth()
	if err != nil {
		t.Fatalf("OutboxDepth: %v", err)
	}
	maps.DeleteFunc(d, func(_ string, n int) bool { return n == 0 })
	return d
}

// drain acknowledges every due envelope of receiver, in the order Next
// hands them out, and returns their incidents and kinds.
func drain(t testing.TB, s store.Store, receiver string, now time.Time) []string {
	t.Helper()
	var out []string
	for range 100 {
		env, _, _ := next(t, s, receiver, now, nil)
		if env == nil {
			return out
		}
		out = append(out, env.Event.Incident.ID+":"+string(env.Event.Kind))
		ack(t, s, env)
	}
	t.Fatalf("%s: Next keeps handing out envelopes: %v", receiver, out)
	return nil
}

func testOutboxFanOut(t *testing.T, b Backend) {
	s, _ := b(t)
	receivers := []string{"pagerduty", "slack", "grafana"}
	commit, incs := opened(1, receivers, "api-1")
	apply(t, s, commit)
	if got, want := depth(t, s), map[string]int{"pagerduty": 1, "slack": 1, "grafana": 1}; !maps.Equal(got, want) {
		t.Errorf("OutboxDepth = %v, want %v", got, want)
	}
	for _, r := range receivers {
		env, _, stats := next(t, s, r, t0.Add(time.Hour), nil)
		if env == nil {
			t.Fatalf("%s: nothing queued", r)
		}
		if env.Receiver != r || env.Event.Kind != incident.Opened || env.Event.Incident.ID != "api-1" {
			t.Errorf("%s: envelope %s %s %s", r, env.Receiver, env.Event.Kind, env.Event.Incident.ID)
		}
		if stats.Depth != 1 || !stats.Oldest.Equal(commit.Changes[0].Events[0].At) {
			t.Errorf("%s: stats %+v, want depth 1, oldest %v", r, stats, commit.Changes[0].Events[0].At)
		}
		if !env.Enqueued.Equal(commit.Changes[0].Events[0].At) {
			t.Errorf("%s: enqueued %v, want the event's time %v", r, env.Enqueued, commit.Changes[0].Events[0].At)
		}
		// The event comes back whole: the incident's reasons (left out of
		// the record, as its decisive alert's) and its alerts' fields.
		want := commit.Changes[0].Events[0]
		if got := jsonOf(t, env.Event); got != jsonOf(t, want) {
			t.Errorf("%s: event\n got %s\nwant %s", r, got, jsonOf(t, want))
		}
		if !slices.Equal(env.Event.Incident.Reasons, incs[0].Reasons) {
			t.Errorf("%s: reasons %q, want %q", r, env.Event.Incident.Reasons, incs[0].Reasons)
		}
	}
}

// testOutboxFanOutTakes: an event is queued only for the receivers that
// take its kind (action events for the action receivers).
func testOutboxFanOutTakes(t *testing.T, b Backend) {
	s, _ := b(t)
	commit, incs := opened(1, []string{"pagerduty", "slack", "alertmanager"}, "api-1")
	ch := commit.Changes[0]
	ch.Events = append(ch.Events, event(incident.SilenceRequested, t0.Add(time.Second), incs[0]))
	commit.Takes = func(r string, k incident.EventKind) bool {
		if r == "alertmanager" {
			return k == incident.SilenceRequested
		}
		return k != incident.SilenceRequested
	}
	apply(t, s, commit)
	if got, want := depth(t, s), map[string]int{"pagerduty": 1, "slack": 1, "alertmanager": 1}; !maps.Equal(got, want) {
		t.Errorf("OutboxDepth = %v, want %v", got, want)
	}
	for r, kind := range map[string]incident.EventKind{"pagerduty": incident.Opened, "alertmanager": incident.SilenceRequested} {
		if env, _, _ := next(t, s, r, t0.Add(time.Hour), nil); env == nil || env.Event.Kind != kind {
			t.Errorf("%s: head %+v, want its %s", r, env, kind)
		}
	}
}

func testOutboxHeads(t *testing.T, b Backend) {
	s, _ := b(t)
	commit, incs := opened(1, []string{"r"}, "api-1", "api-2", "api-3")
	// A second event of api-1, queued after the others.
	commit.Changes = append(commit.Changes, &incident.Changes{Events: []incident.Event{event(incident.SeverityChanged, t0.Add(time.Second), incs[0])}})
	apply(t, s, commit)
	now := t0.Add(time.Hour)

	env, _, stats := next(t, s, "r", now, nil)
	if env == nil || env.Event.Incident.ID != "api-1" || env.Event.Kind != incident.Opened {
		t.Fatalf("first Next = %+v, want api-1 opened (the oldest)", env)
	}
	if stats.Depth != 4 {
		t.Errorf("depth %d, want 4", stats.Depth)
	}
	// api-1 is in flight: the next is another incident's, never api-1's
	// second event.
	busy := func(id string) bool { return id == "api-1" }
	if env2, _, _ := next(t, s, "r", now, busy); env2 == nil || env2.Event.Incident.ID != "api-2" {
		t.Fatalf("Next with api-1 busy = %+v, want api-2", env2)
	}
	// Not busy but not acknowledged either: api-1's head is still its first.
	if again, _, _ := next(t, s, "r", now, nil); again == nil || again.Seq != env.Seq {
		t.Fatalf("Next before the ack = %+v, want api-1's first event again", again)
	}
	busyAll := func(string) bool { return true }
	if none, wake, _ := next(t, s, "r", now, busyAll); none != nil || !wake.IsZero() {
		t.Errorf("Next with every incident busy = %+v (wake %v), want nothing", none, wake)
	}
	ack(t, s, env)
	// api-1's second event heads it now, behind the older heads of the others.
	if got, want := drain(t, s, "r", now), []string{"api-2:opened", "api-3:opened", "api-1:severity_changed"}; !slices.Equal(got, want) {
		t.Errorf("after the ack Next hands out %v, want %v", got, want)
	}
	if got := depth(t, s); len(got) != 0 {
		t.Errorf("OutboxDepth after draining = %v, want empty", got)
	}
	if env, wake, stats := next(t, s, "r", now, nil); env != nil || !wake.IsZero() || stats.Depth != 0 || !stats.Oldest.IsZero() {
		t.Errorf("empty queue: Next = %+v, wake %v, stats %+v", env, wake, stats)
	}
}

func testOutboxRetry(t *testing.T, b Backend) {
	s, reopen := b(t)
	commit, incs := opened(1, []string{"r"}, "api-1", "api-2")
	// api-1's second event, due, must not overtake its first while that waits.
	commit.Changes = append(commit.Changes, &incident.Changes{Events: []incident.Event{event(incident.SeverityChanged, t0.Add(time.Second), incs[0])}})
	apply(t, s, commit)
	now := t0.Add(time.Hour)
	env, _, _ := next(t, s, "r", now, nil)
	if env == nil || env.Event.Incident.ID != "api-1" {
		t.Fatalf("Next = %+v, want api-1", env)
	}
	later := now.Add(time.Minute + 3)
	env.Attempts, env.FirstFailure, env.NextAttempt, env.LastError = 2, now, later, "503 from PagerDuty"
	if err := s.Retry(env); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	// api-1 waits: the next due is api-2's, and wake says when api-1 is.
	other, wake, _ := next(t, s, "r", now, nil)
	if other == nil || other.Event.Incident.ID != "api-2" {
		t.Fatalf("Next after a retry = %+v, want api-2", other)
	}
	if !wake.Equal(later) {
		t.Errorf("wake %v, want %v", wake, later)
	}
	ack(t, s, other)
	if none, wake, _ := next(t, s, "r", now, nil); none != nil || !wake.Equal(later) {
		t.Errorf("Next before api-1 is due = %+v, wake %v; want nothing until %v", none, wake, later)
	}
	s = reopen()
	got, _, _ := next(t, s, "r", later, nil)
	if got == nil || got.Seq != env.Seq {
		t.Fatalf("Next once due, after reopen = %+v, want api-1's envelope", got)
	}
	ack(t, s, got)
	ack(t, s, got) // again: harmless
	if second, _, stats := next(t, s, "r", later, nil); second == nil || second.Event.Kind != incident.SeverityChanged || stats.Depth != 1 {
		t.Errorf("after the ack Next = %+v (depth %d), want api-1's second event, the last", second, stats.Depth)
	}
	if got.Attempts != 2 || !got.FirstFailure.Equal(now) || !got.NextAttempt.Equal(later) || got.LastError != "503 from PagerDuty" ||
		got.Receiver != "r" || !got.Enqueued.Equal(env.Enqueued) {
		t.Errorf("retried envelope = attempts %d first %v next %v error %q receiver %q enqueued %v",
			got.Attempts, got.FirstFailure, got.NextAttempt, got.LastError, got.Receiver, got.Enqueued)
	}
}

func testOutboxDeadLetter(t *testing.T, b Backend) {
	s, _ := b(t)
	var told []*store.DeadLetter
	s.OnDeadLetter(func(d *store.DeadLetter) { told = append(told, d) })
	commit, _ := opened(1, []string{"r", "other"}, "api-1")
	apply(t, s, commit)
	env, _, _ := next(t, s, "r", t0.Add(time.Hour), nil)
	env.Attempts, env.LastError = 9, "400 Bad Request"
	if err := s.DeadLetter(env); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	if got := depth(t, s); !maps.Equal(got, map[string]int{"other": 1}) {
		t.Errorf("OutboxDepth = %v, want only other's", got)
	}
	if none, _, _ := next(t, s, "r", t0.Add(time.Hour), nil); none != nil {
		t.Errorf("Next after DeadLetter = %+v, want nothing", none)
	}
	list, total, err := s.DeadLetters(10)
	if err != nil || total != 1 || len(list) != 1 {
		t.Fatalf("DeadLetters = %v, %d, %v; want one", list, total, err)
	}
	d := list[0]
	if d.Kind != store.DeadEvent || d.Queue != "r" || d.Incident != "api-1" || d.EventKind != incident.Opened ||
		d.Attempts != 9 || d.Error != "400 Bad Request" || d.At.IsZero() {
		t.Errorf("dead letter %+v", d)
	}
	if len(told) != 1 || told[0].ID != d.ID || told[0].Queue != "r" {
		t.Errorf("OnDeadLetter told %+v, want dead letter %d", told, d.ID)
	}
	full, err := s.ReadDeadLetter(d.ID)
	if err != nil {
		t.Fatalf("ReadDeadLetter: %v", err)
	}
	var payload notify.Envelope
	if err := json.Unmarshal(full.Payload, &payload); err != nil {
		t.Fatalf("payload is not an envelope: %v: %s", err, full.Payload)
	}
	if payload.Receiver != "r" || payload.Event.Incident.ID != "api-1" || payload.Attempts != 9 || full.Bytes != len(full.Payload) {
		t.Errorf("payload %s (bytes %d)", full.Payload, full.Bytes)
	}
	if got := s.DeadLetterCounts(); !maps.Equal(got, map[string]int{"r": 1}) {
		t.Errorf("DeadLetterCounts = %v", got)
	}
	// OnDeadLetter(nil) stops the telling.
	s.OnDeadLetter(nil)
	otherEnv, _, _ := next(t, s, "other", t0.Add(time.Hour), nil)
	if err := s.DeadLetter(otherEnv); err != nil {
		t.Fatalf("DeadLetter with no one to tell: %v", err)
	}
	if len(told) != 1 {
		t.Errorf("told %d dead letters after OnDeadLetter(nil), want still 1", len(told))
	}
}

// An acknowledgement is durable once Ack returns and the store is closed
// (bbolt writes them in batches, and at Close).
func testOutboxReopen(t *testing.T, b Backend) {
	s, reopen := b(t)
	commit, _ := opened(1, []string{"r", "q"}, "api-1", "api-2", "api-3")
	apply(t, s, commit)
	env, _, _ := next(t, s, "r", t0.Add(time.Hour), nil)
	ack(t, s, env)
	s = reopen()
	if got, want := depth(t, s), map[string]int{"r": 2, "q": 3}; !maps.Equal(got, want) {
		t.Errorf("OutboxDepth after reopen = %v, want %v", got, want)
	}
	if got, want := drain(t, s, "r", t0.Add(time.Hour)), []string{"api-2:opened", "api-3:opened"}; !slices.Equal(got, want) {
		t.Errorf("r after reopen hands out %v, want %v", got, want)
	}
	_, _, stats := next(t, s, "q", t0.Add(time.Hour), nil)
	if stats.Depth != 3 {
		t.Errorf("q's depth after reopen %d, want 3", stats.Depth)
	}
	s = reopen()
	if got, want := depth(t, s), map[string]int{"q": 3}; !maps.Equal(got, want) {
		t.Errorf("OutboxDepth after the second reopen = %v, want %v", got, want)
	}
}

func testReceiverState(t *testing.T, b Backend) {
	s, reopen := b(t)
	type slackState struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	var v slackState
	if found, err := s.LoadReceiverState("slack", "api-1", &v); err != nil || found {
		t.Fatalf("unsaved state: found %v, %v", found, err)
	}
	if err := s.SaveReceiverState("slack", "api-1", slackState{"C1", "1.0"}); err != nil {
		t.Fatalf("SaveReceiverState: %v", err)
	}
	if err := s.SaveReceiverState("slack", "api-1", slackState{"C1", "2.0"}); err != nil { // replaces
		t.Fatalf("SaveReceiverState: %v", err)
	}
	s = reopen()
	if found, err := s.LoadReceiverState("slack", "api-1", &v); err != nil || !found || v != (slackState{"C1", "2.0"}) {
		t.Errorf("after reopen: found %v, %+v, %v; want C1 2.0", found, v, err)
	}
	for _, tc := range []struct{ receiver, id string }{{"grafana", "api-1"}, {"slack", "api-2"}} {
		if found, err := s.LoadReceiverState(tc.receiver, tc.id, &v); err != nil || found {
			t.Errorf("%s state of %s: found %v, %v; want none", tc.receiver, tc.id, found, err)
		}
	}
}

// An incident with more queued events than a backend reads at once does
// not hide the incidents queued after it.
func testOutboxLongIncident(t *testing.T, b Backend) {
	s, _ := b(t)
	commit, incs := opened(1, []string{"r"}, "api-long")
	for i := range 300 {
		commit.Changes[0].Events = append(commit.Changes[0].Events, event(incident.StatusUpdate, t0.Add(time.Duration(i+1)*time.Second), incs[0]))
	}
	apply(t, s, commit)
	later, _ := opened(2, []string{"r"}, "api-short")
	apply(t, s, later)
	now := t0.Add(time.Hour)
	if env, _, stats := next(t, s, "r", now, nil); env == nil || env.Event.Incident.ID != "api-long" || env.Event.Kind != incident.Opened || stats.Depth != 302 {
		t.Fatalf("Next = %+v (depth %d), want api-long's first event of 302", env, stats.Depth)
	}
	busy := func(id string) bool { return id == "api-long" }
	if env, _, _ := next(t, s, "r", now, busy); env == nil || env.Event.Incident.ID != "api-short" {
		t.Fatalf("Next with api-long busy = %+v, want api-short", env)
	}
}
