package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amtriage/amtriage/triage/incident"
)

// memQueue is an in-memory Queue that records what the deliverer did.
type memQueue struct {
	mu    sync.Mutex
	items []*Envelope
	dead  []*Envelope
	acked []uint64
}

func (q *memQueue) Next(_ string, now time.Time) (*Envelope, time.Time, QueueStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var wake time.Time
	stats := QueueStats{Depth: len(q.items)}
	heads := map[string]bool{}
	for _, it := range q.items {
		if stats.Oldest.IsZero() {
			stats.Oldest = it.Enqueued
		}
		id := it.Event.Incident.ID
		if heads[id] {
			continue
		}
		heads[id] = true
		if it.NextAttempt.After(now) {
			if wake.IsZero() || it.NextAttempt.Before(wake) {
				wake = it.NextAttempt
			}
			continue
		}
		e := *it
		return &e, wake, stats, nil
	}
	return nil, wake, stats, nil
}

func (q *memQueue) remove(seq uint64) {
	for i, e := range q.items {
		if e.Seq == seq {
			q.items = append(q.items[:i], q.items[i+1:]...)
			return
		}
	}
}

func (q *memQueue) Ack(_ string, seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.acked = append(q.acked, seq)
	q.remove(seq)
	return nil
}

func (q *memQueue) Retry(env *Envelope) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, e := range q.items {
		if e.Seq == env.Seq {
			c := *env
			q.items[i] = &c
		}
	}
	return nil
}

func (q *memQueue) DeadLetter(env *Envelope) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dead = append(q.dead, env)
	q.remove(env.Seq)
	return nil
}

func (q *memQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) == 0
}

// scripted fails according to its script, then succeeds.
type scripted struct {
	mu     sync.Mutex
	script []error // per call; nil = success
	retry  bool
	seen   []string
}

func (s *scripted) Name() string { return "test" }

func (s *scripted) Notify(_ context.Context, ev *incident.Event) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, ev.Incident.ID+"/"+string(ev.Kind))
	if len(s.script) > 0 {
		err := s.script[0]
		s.script = s.script[1:]
		if err != nil {
			return s.retry, err
		}
	}
	return false, nil
}

func envelopes(kinds ...incident.EventKind) []*Envelope {
	var out []*Envelope
	for i, k := range kinds {
		out = append(out, &Envelope{Seq: uint64(i + 1), Receiver: "test", Enqueued: time.Now(),
			Event: incident.Event{Kind: k, Incident: incident.Incident{ID: "inc-1"}}})
	}
	return out
}

// TestOneIncidentWaitingDoesNotHoldUpOthers: incident A's trigger is held
// (Retry-After, or a Sev 4 business-hours hold); incident B is delivered
// meanwhile, and A's resolve still waits behind A's trigger.
func TestOneIncidentWaitingDoesNotHoldUpOthers(t *testing.T) {
	mk := func(seq uint64, id string, k incident.EventKind) *Envelope {
		return &Envelope{Seq: seq, Receiver: "test", Enqueued: time.Now(), Event: incident.Event{Kind: k, Incident: incident.Incident{ID: id}}}
	}
	q := &memQueue{items: []*Envelope{mk(1, "A", incident.Opened), mk(2, "B", incident.Opened), mk(3, "A", incident.ResolvedEvent), mk(4, "B", incident.ResolvedEvent)}}
	var mu sync.Mutex
	var seen []string
	held := 0
	n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev.Incident.ID+"/"+string(ev.Kind))
		if ev.Incident.ID == "A" && ev.Kind == incident.Opened && held == 0 {
			held++
			return true, &HoldError{Until: time.Now().Add(200 * time.Millisecond), Reason: "business hours"}
		}
		return false, nil
	})
	d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry()), BaseBackoff: time.Millisecond}
	runUntil(t, d, q.empty)
	want := []string{"A/opened", "B/opened", "B/resolved", "A/opened", "A/resolved"}
	if !slices.Equal(seen, want) {
		t.Fatalf("delivery order %v, want %v", seen, want)
	}
	if len(q.dead) != 0 {
		t.Fatalf("a hold dead-lettered %d events", len(q.dead))
	}
}

func runUntil(t *testing.T, d *Deliverer, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { d.Run(ctx); close(finished) }()
	deadline := time.Now().Add(5 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			<-finished
			t.Fatal("deliverer did not finish in 5s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-finished
}

func TestDelivererOrderRetryAndDeadLetter(t *testing.T) {
	transient := errors.New("503 from receiver")
	tests := []struct {
		name        string
		script      []error
		retry       bool
		maxAttempts int
		wantSeen    []string
		wantAcked   int
		wantDead    int
		wantOutcome map[string]float64
	}{
		{
			name:        "in order, each once",
			wantSeen:    []string{"inc-1/opened", "inc-1/severity_changed", "inc-1/resolved"},
			wantAcked:   3,
			wantOutcome: map[string]float64{"success": 3},
		},
		{
			name:        "transient failures are retried before the next event",
			script:      []error{transient, transient, nil},
			retry:       true,
			wantSeen:    []string{"inc-1/opened", "inc-1/opened", "inc-1/opened", "inc-1/severity_changed", "inc-1/resolved"},
			wantAcked:   3,
			wantOutcome: map[string]float64{"success": 3, "retry": 2},
		},
		{
			name:      "permanent failure is dead-lettered and the queue moves on",
			script:    []error{errors.New("400 invalid event")},
			retry:     false,
			wantSeen:  []string{"inc-1/opened", "inc-1/severity_changed", "inc-1/resolved"},
			wantAcked: 2, wantDead: 1,
			wantOutcome: map[string]float64{"success": 2, "failed": 1},
		},
		{
			name:        "no attempt limit by default: an outage longer than 20 attempts loses nothing",
			script:      []error{transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient},
			retry:       true,
			wantSeen:    append(slices.Repeat([]string{"inc-1/opened"}, 26), "inc-1/severity_changed", "inc-1/resolved"),
			wantAcked:   3,
			wantOutcome: map[string]float64{"success": 3, "retry": 25},
		},
		{
			name:        "attempts run out",
			script:      []error{transient, transient},
			retry:       true,
			maxAttempts: 2,
			wantSeen:    []string{"inc-1/opened", "inc-1/opened", "inc-1/severity_changed", "inc-1/resolved"},
			wantAcked:   2, wantDead: 1,
			wantOutcome: map[string]float64{"success": 2, "retry": 1, "failed": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &memQueue{items: envelopes(incident.Opened, incident.SeverityChanged, incident.ResolvedEvent)}
			n := &scripted{script: tt.script, retry: tt.retry}
			m := NewMetrics(prometheus.NewRegistry())
			d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Metrics: m, MaxAttempts: tt.maxAttempts, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
			runUntil(t, d, q.empty)
			if len(n.seen) != len(tt.wantSeen) {
				t.Fatalf("notified %v, want %v", n.seen, tt.wantSeen)
			}
			for i := range n.seen {
				if n.seen[i] != tt.wantSeen[i] {
					t.Fatalf("notified %v, want %v", n.seen, tt.wantSeen)
				}
			}
			if len(q.acked) != tt.wantAcked || len(q.dead) != tt.wantDead {
				t.Errorf("acked %d dead %d, want %d %d", len(q.acked), len(q.dead), tt.wantAcked, tt.wantDead)
			}
			for outcome, want := range tt.wantOutcome {
				if got := testutil.ToFloat64(m.Deliveries.WithLabelValues("test", outcome)); got != want {
					t.Errorf("deliveries{outcome=%q} = %v, want %v", outcome, got, want)
				}
			}
			if got := testutil.ToFloat64(m.DeadLetters.WithLabelValues("test")); got != float64(tt.wantDead) {
				t.Errorf("dead letters = %v, want %d", got, tt.wantDead)
			}
			for _, e := range q.dead {
				if e.LastError == "" || e.Attempts == 0 {
					t.Errorf("dead letter without its error or attempts: %+v", e)
				}
			}
		})
	}
}

func TestDelivererStopsWithoutLosing(t *testing.T) {
	q := &memQueue{items: envelopes(incident.Opened)}
	block := make(chan struct{})
	n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		close(block)
		<-ctx.Done() // a receiver that hangs until shutdown
		return true, ctx.Err()
	})
	d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry()), Timeout: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	<-block
	cancel()
	<-done
	if q.empty() || len(q.dead) != 0 {
		t.Fatalf("shutdown mid-delivery must leave the event queued: items %d dead %d", len(q.items), len(q.dead))
	}
	if q.items[0].Attempts != 0 {
		t.Errorf("an interrupted attempt counted as a failure: attempts %d", q.items[0].Attempts)
	}
}

type notifierFunc func(ctx context.Context, ev *incident.Event) (bool, error)

func (f notifierFunc) Name() string { return "func" }
func (f notifierFunc) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	return f(ctx, ev)
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	base, max := 100*time.Millisecond, time.Second
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for i := 0; i < 50; i++ {
			got := Backoff(attempt, base, max)
			if got < want/2 || got > want {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempt, got, want/2, want)
			}
		}
	}
}

// A receiver that panics on one event does not take the daemon down: the
// event is retried a bounded number of times, then dead-lettered, and the
// receiver's other events are delivered.
func TestDelivererSurvivesAPanickingReceiver(t *testing.T) {
	mk := func(seq uint64, id string) *Envelope {
		return &Envelope{Seq: seq, Receiver: "test", Enqueued: time.Now(), Event: incident.Event{Kind: incident.Opened, Incident: incident.Incident{ID: id}}}
	}
	q := &memQueue{items: []*Envelope{mk(1, "bad"), mk(2, "good")}}
	var mu sync.Mutex
	var delivered []string
	calls := 0
	n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Incident.ID == "bad" {
			calls++
			var m map[string]int
			m["nil map"]++ // a receiver bug
		}
		delivered = append(delivered, ev.Incident.ID)
		return false, nil
	})
	d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry()), BaseBackoff: time.Millisecond}
	runUntil(t, d, q.empty)
	if len(q.dead) != 1 || q.dead[0].Event.Incident.ID != "bad" || calls != maxPanics {
		t.Fatalf("dead %d, calls %d; want the bad event dead-lettered after %d tries", len(q.dead), calls, maxPanics)
	}
	if !slices.Equal(delivered, []string{"good"}) {
		t.Fatalf("delivered %v, want the good event", delivered)
	}
}
