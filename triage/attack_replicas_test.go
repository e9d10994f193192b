package triage

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
)

// flakyStateStore fails the next Apply and the LoadState right after it,
// as a PostgreSQL connection cut mid-commit does (pg_terminate_backend, a
// restart): the commit and the reload that follows fail together.
type flakyStateStore struct {
	*boltstore.Store
	failApply, failLoad atomic.Bool
}

var errConnLost = errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")

func (s *flakyStateStore) Apply(c *store.Commit) error {
	if s.failApply.CompareAndSwap(true, false) {
		s.failLoad.Store(true)
		return errConnLost
	}
	return s.Store.Apply(c)
}

func (s *flakyStateStore) LoadState() (*store.LoadedState, error) {
	if s.failLoad.CompareAndSwap(true, false) {
		return nil, errConnLost
	}
	return s.Store.LoadState()
}

// Found with two replicas on PostgreSQL and pg_terminate_backend of every
// amtriage backend during a storm: a webhook answered 200 never became an
// incident in the database, never paged, while the leader's /api/incidents
// listed it (1353 incidents in memory, 1352 rows). A commit that fails
// and whose reload fails too leaves the book ahead of the store; the retry
// of the same notification then finds its alert already known, commits
// nothing for it but lastSeq, and the inbox entry is deleted.
func TestAttackFailedCommitAndReloadLoseTheNotification(t *testing.T) {
	s := &flakyStateStore{Store: openTestStore(t, t.TempDir())}
	p, err := NewPipeline(PipelineOptions{Store: s, Triager: &Triager{Config: testConfig(t)}, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(prometheus.NewRegistry()), Receivers: []string{"pager"}})
	if err != nil {
		t.Fatal(err)
	}
	entry := &store.InboxEntry{ReceivedAt: time.Now(), Body: alertPayload("api", "firing", time.Now().Add(-time.Minute))}
	if err := s.AppendInbox([]*store.InboxEntry{entry}); err != nil { // the 200
		t.Fatal(err)
	}
	s.failApply.Store(true)
	if err := p.Drain(context.Background()); err == nil {
		t.Fatal("Drain with a failing commit returned nil")
	}
	if err := p.Drain(context.Background()); err != nil { // the database is back
		t.Fatalf("Drain after recovery: %v", err)
	}
	ls, err := s.Store.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Incidents) != 1 || ls.LastSeq != entry.Seq {
		t.Errorf("stored: %d incidents, last seq %d; want 1 incident for the acknowledged alert, seq %d (in memory: %d open)",
			len(ls.Incidents), ls.LastSeq, entry.Seq, len(p.OpenIncidents()))
	}
	env, _, _, err := s.Store.Next("pager", time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if env == nil {
		t.Errorf("no event queued for the receiver: the alert never pages")
	}
}
