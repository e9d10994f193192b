package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// stateTables are the tables only the leader writes.
var stateTables = []string{"progress", "inbox", "incidents", "alerts", "tombstones", "heartbeats", "outbox",
	"receiver_state", "dead_letters", "evidence", "evidence_png"}

// rows is every row of the state tables, as text: what a write that must
// write nothing would change.
func rows(t *testing.T, db DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range stateTables {
		var v string
		q := fmt.Sprintf(`SELECT coalesce(string_agg(r::text, E'\n' ORDER BY r::text), '') FROM %s r`, table)
		if err := db.QueryRow(context.Background(), q).Scan(&v); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		out[table] = v
	}
	return out
}

func sameRows(t *testing.T, when string, before, after map[string]string) {
	t.Helper()
	for _, table := range stateTables {
		if before[table] != after[table] {
			t.Errorf("%s: table %s changed:\nbefore:\n%s\nafter:\n%s", when, table, before[table], after[table])
		}
	}
}

// seeded opens a leading store on a fresh database with one incident
// (api-1) whose Opened event waits for receiver r, and returns that
// envelope.
func seeded(t *testing.T, holder string, ttl time.Duration) (*Store, string, *notify.Envelope) {
	t.Helper()
	dsn := freshDB(t)
	s := openLeadingFor(t, dsn, holder, ttl)
	a := &incident.Alert{Key: "fp@1", Fingerprint: "fp", Status: incident.Firing, Labels: map[string]string{"alertname": "A"}}
	inc := &incident.Incident{ID: "api-1", Service: "api", Status: incident.Firing, Decisive: a.Key, State: incident.StateOpen,
		Alerts: map[string]*incident.Alert{a.Key: a}}
	ev := incident.Event{Kind: incident.Opened, At: time.Now(), Incident: *inc, Alerts: []incident.Alert{*a}}
	if err := s.AppendInbox([]*store.InboxEntry{{ReceivedAt: time.Now(), Body: []byte("{}")}, {ReceivedAt: time.Now(), Body: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(&store.Commit{LastSeq: 1, Receivers: []string{"r"}, Changes: []*incident.Changes{{
		Incidents: []*incident.Incident{inc}, Alerts: []incident.AlertRef{{IncidentID: inc.ID, Alert: a}}, Events: []incident.Event{ev},
	}}}); err != nil {
		t.Fatal(err)
	}
	env, _, _, err := s.Next("r", time.Now(), nil)
	if err != nil || env == nil {
		t.Fatalf("Next = %v, %v", env, err)
	}
	return s, dsn, env
}

// writes are every state write a replica may attempt, on s, against the
// seeded state (env is r's queued envelope).
func writes(s *Store, env *notify.Envelope) []struct {
	name string
	do   func() error
} {
	retried := *env
	retried.Attempts, retried.NextAttempt, retried.LastError = 5, time.Now().Add(time.Hour), "x"
	return []struct {
		name string
		do   func() error
	}{
		{"Apply", func() error {
			return s.Apply(&store.Commit{LastSeq: 2, PrunedIncidents: []string{"api-1"},
				Heartbeats:  map[string]time.Time{"http://am": time.Now()},
				DeadLetters: []*store.DeadLetter{{Kind: store.DeadNotification, Queue: store.InboxQueue, At: time.Now(), Payload: []byte("{}")}}})
		}},
		{"Ack", func() error { return s.Ack(env.Receiver, env.Seq) }},
		{"Retry", func() error { return s.Retry(&retried) }},
		{"DeadLetter", func() error { return s.DeadLetter(env) }},
		{"SaveReceiverState", func() error { return s.SaveReceiverState("slack", "api-1", map[string]string{"ts": "1"}) }},
		{"PutEvidence", func() error {
			stored, err := s.PutEvidence([]store.EvidenceRecord{{ID: "api-1", JSON: []byte(`{}`), PNGs: map[int64][]byte{1: []byte("p")}}})
			if err == nil && stored[0] {
				return errors.New("stored")
			}
			return err
		}},
	}
}

func TestAStandbyWritesNothing(t *testing.T) {
	leader, dsn, env := seeded(t, "a", longTTL)
	standbyPool := pool(t, dsn)
	standby, err := Open(context.Background(), standbyPool, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	before := rows(t, leader.Pool())
	for _, w := range writes(standby, env) {
		if err := w.do(); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s on a standby: %v, want ErrNotLeader", w.name, err)
		}
	}
	sameRows(t, "after the standby's writes", before, rows(t, leader.Pool()))
}

func TestADeposedLeaderWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ttl      time.Duration
		takeOver func(t *testing.T, old *Store)
	}{
		{"released", longTTL, func(t *testing.T, old *Store) {
			if err := Release(context.Background(), old.Pool(), "a", old.Epoch()); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired", 100 * time.Millisecond, func(t *testing.T, old *Store) {
			for {
				l, err := ReadLease(context.Background(), old.Pool())
				if err != nil {
					t.Fatal(err)
				}
				if l.Expired {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, dsn, env := seeded(t, "a", tc.ttl)
			tc.takeOver(t, old)
			successor := openLeadingFor(t, dsn, "b", longTTL)
			if successor.Epoch() <= old.Epoch() {
				t.Fatalf("successor's epoch %d, old %d", successor.Epoch(), old.Epoch())
			}
			before := rows(t, successor.Pool())
			for _, w := range writes(old, env) {
				if err := w.do(); !errors.Is(err, ErrDeposed) {
					t.Errorf("%s by the deposed leader: %v, want ErrDeposed", w.name, err)
				}
			}
			sameRows(t, "after the deposed leader's writes", before, rows(t, successor.Pool()))
			// The successor's own writes go through.
			if err := successor.Ack(env.Receiver, env.Seq); err != nil {
				t.Errorf("the successor's Ack: %v", err)
			}
		})
	}
}

// Only the leader replays an event (it comes from the leader's book, and
// its outbox inserts are serialized): a standby's replay is refused and
// changes nothing; concurrent replays on the leader replay once.
func TestReplaysReplayOnceAndOnlyOnTheLeader(t *testing.T) {
	leader, dsn, env := seeded(t, "a", longTTL)
	if err := leader.DeadLetter(env); err != nil {
		t.Fatal(err)
	}
	list, _, err := leader.DeadLetters(1)
	if err != nil || len(list) != 1 {
		t.Fatalf("dead letters %v, %v", list, err)
	}
	standby := openStandby(t, dsn)
	if err := standby.ReplayEvent(list[0].ID, &env.Event); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a standby's replay: %v, want ErrNotLeader", err)
	}
	if _, err := leader.ReadDeadLetter(list[0].ID); err != nil {
		t.Fatalf("the dead letter after the standby's refused replay: %v", err)
	}
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = leader.ReplayEvent(list[0].ID, &env.Event)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("a replay: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent replays replayed, want 1", ok, n)
	}
	var queued int
	if err := leader.Pool().QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE receiver = 'r'`).Scan(&queued); err != nil || queued != 1 {
		t.Errorf("r's queue holds %d events (%v), want the one replayed", queued, err)
	}
}
