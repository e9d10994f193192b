package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// A leader's own operations (fenced writes, reading the outbox) end with
// its term: on a link that drops packets they return when the term ends,
// not at their 15 s timeout, so the term's work stops within the lease's
// margin, before a successor can lead (the Elector waits for it).
func TestALeadersOperationsEndWithItsTerm(t *testing.T) {
	for _, tt := range []struct {
		name string
		op   func(*Store) error
	}{
		{"commit", func(s *Store) error { return s.Apply(&store.Commit{LastSeq: 1}) }},
		{"ack", func(s *Store) error { return s.Ack("pagerduty", 1) }},
		{"retry", func(s *Store) error {
			return s.Retry(&notify.Envelope{Receiver: "pagerduty", Seq: 1, NextAttempt: time.Now()})
		}},
		{"receiver state", func(s *Store) error { return s.SaveReceiverState("slack", "api-1", map[string]string{"ts": "1"}) }},
		{"read the outbox", func(s *Store) error { _, _, _, err := s.Next("pagerduty", time.Now(), nil); return err }},
		{"read the inbox", func(s *Store) error { _, err := s.ReadInbox(0, 10, 1<<20); return err }},
		// The pipeline reloads the state after a failed commit.
		{"load the state", func(s *Store) error { _, err := s.LoadState(); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := pgtest.Shared(t)
			dsn := srv.NewDatabase(t)
			admin := pool(t, dsn)
			if _, err := Migrate(context.Background(), admin); err != nil {
				t.Fatal(err)
			}
			proxy := pgtest.NewProxy(t, srv.Addr())
			p := pool(t, pgtest.WithAddr(dsn, proxy.Addr()))
			st, _ := Open(context.Background(), p, dsn)
			defer st.Close()
			epoch, ok, err := TryAcquire(context.Background(), admin, "A", time.Minute)
			if err != nil || !ok {
				t.Fatalf("acquire: %v %v", ok, err)
			}
			term, end := context.WithCancel(context.Background())
			if err := st.Lead(term, epoch); err != nil {
				t.Fatal(err)
			}
			proxy.Stall()
			defer proxy.Restore()
			done := make(chan error, 1)
			go func() { done <- tt.op(st) }()
			time.Sleep(200 * time.Millisecond) // the operation is on the stalled link
			end()
			select {
			case err := <-done:
				if err == nil {
					t.Error("the operation succeeded on a stalled link")
				}
			case <-time.After(5 * time.Second): // a third of the operation's own timeout
				t.Fatal("the operation outlived its term on a stalled link")
			}
		})
	}
}

// At a graceful handover the acknowledgement of a delivery that has just
// succeeded still commits although the term's context has ended: else the
// successor would deliver it again.
func TestAnAckRightAfterTheTermEndsCommits(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	p := pool(t, dsn)
	if _, err := Migrate(ctx, p); err != nil {
		t.Fatal(err)
	}
	st, _ := Open(ctx, p, dsn)
	defer st.Close()
	epoch, ok, err := TryAcquire(ctx, p, "A", time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	term, end := context.WithCancel(ctx)
	if err := st.Lead(term, epoch); err != nil {
		t.Fatal(err)
	}
	end()
	if err := st.Ack("pagerduty", 1); err != nil {
		t.Fatalf("ack right after the term ended: %v", err)
	}
}
