package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// An outbox entry that does not decode can never be delivered: Next moves
// it to the dead letters, as it was stored, and hands out the next entry.
func TestUndecodableOutboxEntryIsDeadLettered(t *testing.T) {
	s := openLeading(t, freshDB(t), "a")
	var told []*store.DeadLetter
	s.OnDeadLetter(func(d *store.DeadLetter) { told = append(told, d) })
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	events := []incident.Event{
		{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: "A"}},
		{Kind: incident.Opened, At: t0, Incident: incident.Incident{ID: "B"}},
	}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{{Events: events}}, Receivers: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	garbage := []byte("{x")
	if _, err := s.Pool().Exec(context.Background(), `UPDATE outbox SET body = $1 WHERE incident_id = 'A'`, garbage); err != nil {
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
	if d := list[0]; d.Kind != store.DeadEvent || d.Queue != "r" || d.Incident != "A" || d.Bytes != len(garbage) {
		t.Errorf("dead letter %+v", d)
	}
	if d, err := s.ReadDeadLetter(list[0].ID); err != nil || string(d.Payload) != string(garbage) {
		t.Errorf("payload %q, %v; want the entry as stored", d.Payload, err)
	}
	if got := s.DeadLetterCounts()["r"]; got != 1 {
		t.Errorf("count for r = %d, want 1", got)
	}
	if depth, _ := s.OutboxDepth(); depth["r"] != 1 {
		t.Errorf("depth %v, want r: 1", depth)
	}
	if len(told) != 1 || told[0].ID != list[0].ID {
		t.Errorf("OnDeadLetter told %+v", told)
	}
}
