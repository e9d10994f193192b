package triage

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
)

// Dead letters are pruned once older than retention, by the sweep; their
// count survives a restart.
func TestDeadLettersPrunedByRetention(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	old := time.Now().Add(-200 * time.Hour)
	for i, at := range []time.Time{old, old.Add(time.Hour), time.Now()} {
		d := &store.DeadLetter{Kind: store.DeadNotification, Queue: store.InboxQueue, At: at, Seq: uint64(i + 1), Payload: []byte("{}")}
		if err := s.Apply(&store.Commit{DeadLetters: []*store.DeadLetter{d}}); err != nil {
			t.Fatal(err)
		}
	}
	if !s.OldestDeadLetter().Equal(old) {
		t.Fatalf("oldest %v, want %v", s.OldestDeadLetter(), old)
	}
	s.Close()
	s = openTestStore(t, dir)
	if got := s.DeadLetterCounts()[store.InboxQueue]; got != 3 {
		t.Fatalf("count after reopening = %d, want 3", got)
	}
	p, err := NewPipeline(PipelineOptions{Store: s, Triager: &Triager{Config: testConfig(t)}, Log: slog.New(slog.DiscardHandler),
		Metrics: NewMetrics(prometheus.NewRegistry()), Retention: 168 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sweep(); err != nil {
		t.Fatal(err)
	}
	list, total, _ := s.DeadLetters(10)
	if total != 1 || list[0].Seq != 3 || s.DeadLetterCounts()[store.InboxQueue] != 1 {
		t.Fatalf("after the sweep: %+v (%d), counts %v; want only the recent one", list, total, s.DeadLetterCounts())
	}
}

func openTestStore(t *testing.T, dir string) *boltstore.Store {
	t.Helper()
	s, err := boltstore.OpenStore(dir)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
