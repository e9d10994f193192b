package boltstore

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// An outbox entry that does not decode can never be delivered: Next moves it
// to the dead letters as it was stored and hands out the next entry.
func TestUndecodableOutboxEntryIsDeadLettered(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	events := []incident.Event{
		{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: "A"}},
		{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: "B"}},
	}
	for name, tc := range map[string]struct {
		garbage      []byte
		wantIncident string // what the dead letter can still tell
	}{
		"truncated header": {[]byte{1, 2, 3}, ""},
		"body not JSON":    {append(make([]byte, 16), 0, 1, 'A', '{', 'x'), "A"},
	} {
		t.Run(name, func(t *testing.T) {
			s := openTestStore(t, t.TempDir())
			if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Events: events}}, Receivers: []string{"r"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.state.Update(func(tx *bolt.Tx) error {
				q := tx.Bucket(bucketOutbox).Bucket([]byte("r"))
				k, _ := q.Cursor().First() // A's event
				return q.Put(k, tc.garbage)
			}); err != nil {
				t.Fatal(err)
			}
			env, _, _, err := s.Next("r", t0, nil)
			if err != nil || env == nil || env.Event.Incident.ID != "B" {
				t.Fatalf("Next = %+v, %v; want B's event past the damaged entry", env, err)
			}
			list, total, err := s.DeadLetters(10)
			if err != nil || total != 1 {
				t.Fatalf("dead letters %+v (%d), %v; want the damaged entry", list, total, err)
			}
			if d := list[0]; d.Kind != store.DeadEvent || d.Queue != "r" || d.Incident != tc.wantIncident || d.Bytes != len(tc.garbage) {
				t.Errorf("dead letter %+v", d)
			}
			if got := s.DeadLetterCounts()["r"]; got != 1 {
				t.Errorf("count for r = %d, want 1", got)
			}
		})
	}
}

// A dead-lettered event is replayed as the event it is given, at the end of
// its receiver's queue, in one transaction with the dead letter's removal.
func TestReplayEvent(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	ev := incident.Event{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: "A", Service: "api"}}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Events: []incident.Event{ev}}}, Receivers: []string{"pagerduty"}}); err != nil {
		t.Fatal(err)
	}
	env, _, _, err := s.Next("pagerduty", t0, nil)
	if err != nil || env == nil {
		t.Fatal(env, err)
	}
	env.Attempts, env.LastError = 7, "400 invalid routing key"
	if err := s.DeadLetter(env); err != nil {
		t.Fatal(err)
	}
	if env, _, stats, _ := s.Next("pagerduty", t0, nil); env != nil || stats.Depth != 0 {
		t.Fatalf("queue after the dead letter: %+v %+v", env, stats)
	}
	list, _, _ := s.DeadLetters(10)
	if len(list) != 1 || list[0].Error != "400 invalid routing key" || list[0].Attempts != 7 || list[0].EventKind != incident.Opened || list[0].Incident != "A" {
		t.Fatalf("dead letters %+v", list)
	}
	now := incident.Event{Kind: incident.ResolvedEvent, At: t0.Add(time.Hour), Incident: incident.Incident{ID: "A", Service: "api", Status: incident.Resolved}}
	if err := s.ReplayEvent(list[0].ID, &now); err != nil {
		t.Fatal(err)
	}
	again, _, _, err := s.Next("pagerduty", t0.Add(time.Hour), nil)
	if err != nil || again == nil || again.Attempts != 0 || again.Event.Kind != incident.ResolvedEvent {
		t.Fatalf("replayed envelope %+v, %v; want the event given", again, err)
	}
	if _, total, _ := s.DeadLetters(10); total != 0 || len(s.DeadLetterCounts()) != 0 {
		t.Errorf("dead letters after the replay: %d, counts %v", total, s.DeadLetterCounts())
	}
	if err := s.ReplayEvent(list[0].ID, &now); err != store.ErrNotFound {
		t.Errorf("second replay: %v, want store.ErrNotFound", err)
	}
}
