package boltstore

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// TestStoreNextSkipsBusyIncidents: Next never hands out an envelope of an
// incident whose event is in flight, nor a later event of it.
func TestStoreNextSkipsBusyIncidents(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	ev := func(id string, k incident.EventKind) incident.Event {
		return incident.Event{Kind: k, At: t0, Incident: incident.Incident{ID: id}}
	}
	ch := &incident.Changes{Events: []incident.Event{ev("A", incident.Opened), ev("B", incident.Opened), ev("A", incident.ResolvedEvent)}}
	if err := s.Apply(&store.Commit{Changes: []*incident.Changes{ch}, Receivers: []string{"r"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		busy     []string
		wantID   string
		wantKind incident.EventKind
	}{
		{nil, "A", incident.Opened},
		{[]string{"A"}, "B", incident.Opened},
		{[]string{"A", "B"}, "", ""},
		{[]string{"B"}, "A", incident.Opened},
	}
	for _, tt := range tests {
		env, wake, stats, err := s.Next("r", t0, func(id string) bool { return slices.Contains(tt.busy, id) })
		if err != nil || stats.Depth != 3 {
			t.Fatalf("busy %v: err %v depth %d", tt.busy, err, stats.Depth)
		}
		if tt.wantID == "" {
			if env != nil || !wake.IsZero() {
				t.Errorf("busy %v: got %s/%s wake %v, want nothing (the busy ones wake the deliverer when done)", tt.busy, env.Event.Incident.ID, env.Event.Kind, wake)
			}
			continue
		}
		if env == nil || env.Event.Incident.ID != tt.wantID || env.Event.Kind != tt.wantKind {
			t.Errorf("busy %v: got %+v, want %s/%s", tt.busy, env, tt.wantID, tt.wantKind)
		}
	}
}

// orderNotifier checks that one incident's events arrive one at a time and
// in order, with some of them failing once.
type orderNotifier struct {
	t      *testing.T
	mu     sync.Mutex
	active map[string]bool
	got    map[string][]incident.EventKind
	failed map[string]bool
}

func (o *orderNotifier) Name() string { return "order" }

func (o *orderNotifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	id, key := ev.Incident.ID, ev.Incident.ID+"/"+string(ev.Kind)
	o.mu.Lock()
	if o.active[id] {
		o.t.Errorf("two events of %s in flight at once", id)
	}
	o.active[id] = true
	o.mu.Unlock()
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.active, id)
	if !o.failed[key] && rand.IntN(4) == 0 {
		o.failed[key] = true
		return true, fmt.Errorf("503 for %s", key)
	}
	o.got[id] = append(o.got[id], ev.Kind)
	return false, nil
}

// TestConcurrentDeliveryFromTheStore: the deliverer's workers acknowledge
// and retry in the store while its dispatcher reads it; every incident's
// events arrive once each, in order. (Run with -race.)
func TestConcurrentDeliveryFromTheStore(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now()
	kinds := []incident.EventKind{incident.Opened, incident.SeverityChanged, incident.ResolvedEvent}
	const incidents = 40
	for _, k := range kinds {
		ch := &incident.Changes{}
		for i := range incidents {
			ch.Events = append(ch.Events, incident.Event{Kind: k, At: t0, Incident: incident.Incident{ID: fmt.Sprintf("inc-%02d", i)}})
		}
		if err := s.Apply(&store.Commit{Changes: []*incident.Changes{ch}, Receivers: []string{"order"}}); err != nil {
			t.Fatal(err)
		}
	}
	n := &orderNotifier{t: t, active: map[string]bool{}, got: map[string][]incident.EventKind{}, failed: map[string]bool{}}
	d := &notify.Deliverer{Queue: s, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.DiscardHandler),
		Metrics: notify.NewMetrics(prometheus.NewRegistry()), Concurrency: 8, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { d.Run(ctx); close(stopped) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		depth, _ := s.OutboxDepth()
		if depth["order"] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-stopped
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range incidents {
		id := fmt.Sprintf("inc-%02d", i)
		if !slices.Equal(n.got[id], kinds) {
			t.Errorf("%s delivered %v, want %v", id, n.got[id], kinds)
		}
	}
}
