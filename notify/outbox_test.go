package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// memQueue is an in-memory Queue that records what the deliverer did.
type memQueue struct {
	mu    sync.Mutex
	items []*Envelope
	dead  []*Envelope
	acked []uint64
}

func (q *memQueue) Next(_ string, now time.Time, busy func(string) bool) (*Envelope, time.Time, QueueStats, error) {
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
		if busy != nil && busy(id) {
			continue
		}
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
	// Incidents are delivered concurrently: the order holds per incident,
	// and B is through while A waits.
	per := map[byte][]string{}
	for _, c := range seen {
		per[c[0]] = append(per[c[0]], c)
	}
	if !slices.Equal(per['A'], []string{"A/opened", "A/opened", "A/resolved"}) || !slices.Equal(per['B'], []string{"B/opened", "B/resolved"}) {
		t.Fatalf("delivery order %v: want A's trigger held then delivered before its resolve, and B's in order", seen)
	}
	if slices.Index(seen, "B/resolved") > slices.Index(seen, "A/resolved") {
		t.Fatalf("delivery order %v: B waited for A's hold", seen)
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

// A graceful stop: Run's context ends while a delivery is in flight and
// Hard does not; the delivery finishes and is acknowledged (the receiver
// got it: delivering it again after a restart would repeat it), and
// nothing new starts.
func TestDelivererStopFinishesTheDeliveryInFlight(t *testing.T) {
	q := &memQueue{items: envelopes(incident.Opened, incident.Opened)}
	for i := range q.items {
		q.items[i].Event.Incident.ID = fmt.Sprintf("inc-%d", i) // two incidents: both could start
	}
	started, release := make(chan struct{}, 2), make(chan struct{})
	var calls atomic.Int32
	n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		calls.Add(1)
		started <- struct{}{}
		select {
		case <-release:
			return false, nil
		case <-ctx.Done():
			return true, ctx.Err()
		}
	})
	d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry()), Timeout: time.Minute, Concurrency: 1, Hard: context.Background()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	<-started
	cancel()
	close(release)
	<-done
	if len(q.acked) != 1 || calls.Load() != 1 || len(q.items) != 1 {
		t.Fatalf("after a graceful stop mid-delivery: acked %v, %d calls, %d queued; want the one in flight acked, the other queued", q.acked, calls.Load(), len(q.items))
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

func mkEnv(seq uint64, id string, k incident.EventKind) *Envelope {
	return &Envelope{Seq: seq, Receiver: "test", Enqueued: time.Now(), Event: incident.Event{Kind: k, Incident: incident.Incident{ID: id}}}
}

// runFake runs d in a synctest bubble until done, giving up after a day of
// fake time (a hung attempt costs d.Timeout of it, not of the test's time).
func runFake(t *testing.T, d *Deliverer, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	finished := make(chan struct{})
	go func() { d.Run(ctx); close(finished) }()
	deadline := time.Now().Add(24 * time.Hour)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	cancel()
	<-finished
	if !done() {
		t.Fatal("deliverer did not finish within a day of fake time")
	}
}

// TestHungIncidentDoesNotHoldUpOthers: while incident A's delivery hangs,
// incident B is delivered; A's resolve still waits for A's trigger.
func TestHungIncidentDoesNotHoldUpOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &memQueue{items: []*Envelope{mkEnv(1, "A", incident.Opened), mkEnv(2, "B", incident.Opened), mkEnv(3, "A", incident.ResolvedEvent)}}
		bDelivered := make(chan struct{})
		var mu sync.Mutex
		var seen []string
		n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
			mu.Lock()
			seen = append(seen, ev.Incident.ID+"/"+string(ev.Kind))
			mu.Unlock()
			switch {
			case ev.Incident.ID == "A" && ev.Kind == incident.Opened:
				select { // a receiver that answers A only once B is through
				case <-bDelivered:
					return false, nil
				case <-ctx.Done():
					return true, ctx.Err()
				}
			case ev.Incident.ID == "B":
				close(bDelivered)
			}
			return false, nil
		})
		m := NewMetrics(prometheus.NewRegistry())
		d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: m, Timeout: 30 * time.Second}
		runFake(t, d, q.empty)
		var a []string
		for _, c := range seen {
			if c[0] == 'A' {
				a = append(a, c)
			}
		}
		if want := []string{"A/opened", "A/resolved"}; !slices.Equal(a, want) || len(seen) != 3 {
			t.Fatalf("calls %v, want A's once each in order, and B's: B must not wait for A's attempt to time out", seen)
		}
		if got := testutil.ToFloat64(m.Deliveries.WithLabelValues("func", "retry")); got != 0 {
			t.Errorf("%v retries, want none", got)
		}
	})
}

// TestRetryAfterIsCapped: a receiver asking for 30 days waits at most
// MaxRetryAfter (default an hour).
func TestRetryAfterIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &memQueue{items: []*Envelope{mkEnv(1, "A", incident.Opened)}}
		var calls []time.Time
		n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
			calls = append(calls, time.Now())
			if len(calls) == 1 {
				return true, &RetryAfterError{After: 30 * 24 * time.Hour, Err: errors.New("429")}
			}
			return false, nil
		})
		d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: NewMetrics(prometheus.NewRegistry())}
		runFake(t, d, q.empty)
		if len(calls) != 2 {
			t.Fatalf("%d calls, want 2", len(calls))
		}
		if gap := calls[1].Sub(calls[0]); gap > time.Hour+time.Second {
			t.Fatalf("retried after %v, want the 1h cap", gap)
		}
	})
}

// TestDelivererConcurrencyKeepsOrderPerIncident: many incidents with slow,
// sometimes failing receivers: each event is delivered exactly once
// successfully, in order within its incident, never two of one incident at
// once, and never more than Concurrency at once. (Run with -race.)
func TestDelivererConcurrencyKeepsOrderPerIncident(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const incidents, concurrency = 30, 4
		kinds := []incident.EventKind{incident.Opened, incident.SeverityChanged, incident.ResolvedEvent}
		q := &memQueue{}
		for k := range kinds {
			for i := range incidents {
				q.items = append(q.items, mkEnv(uint64(len(q.items)+1), fmt.Sprintf("inc-%02d", i), kinds[k]))
			}
		}
		var mu sync.Mutex
		active, peak, calls := map[string]bool{}, 0, 0
		delivered := map[string][]incident.EventKind{}
		n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
			id := ev.Incident.ID
			mu.Lock()
			if active[id] {
				mu.Unlock()
				t.Errorf("two events of %s in flight at once", id)
				return false, nil
			}
			active[id] = true
			peak = max(peak, len(active))
			calls++
			fail := calls%5 == 0
			mu.Unlock()
			time.Sleep(time.Duration(len(id)+int(ev.Kind[0])%7) * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			delete(active, id)
			if fail {
				return true, errors.New("503")
			}
			delivered[id] = append(delivered[id], ev.Kind)
			return false, nil
		})
		m := NewMetrics(prometheus.NewRegistry())
		d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: m, Concurrency: concurrency, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
		runFake(t, d, q.empty)
		for i := range incidents {
			id := fmt.Sprintf("inc-%02d", i)
			if !slices.Equal(delivered[id], kinds) {
				t.Errorf("%s delivered %v, want %v", id, delivered[id], kinds)
			}
		}
		if peak > concurrency || peak < 2 {
			t.Errorf("peak %d deliveries at once, want 2..%d", peak, concurrency)
		}
		if got := testutil.ToFloat64(m.Deliveries.WithLabelValues("func", "success")); got != incidents*3 || len(q.acked) != incidents*3 {
			t.Errorf("success %v, acked %d; want %d each", got, len(q.acked), incidents*3)
		}
	})
}

// methodNotifier is a receiver whose calls go to named API methods: "" for
// an event that calls nothing.
type methodNotifier struct {
	notifierFunc
	method func(ev *incident.Event) string
}

func (m methodNotifier) Methods(ev *incident.Event) ([]string, bool) {
	if s := m.method(ev); s != "" {
		return []string{s}, true
	}
	return nil, true
}

// TestRateLimitHoldsBackTheMethod: a 429 on one method holds back every
// envelope calling that method until Retry-After has passed, then one call
// tests it before the others follow; envelopes of other methods flow on.
func TestRateLimitHoldsBackTheMethod(t *testing.T) {
	for _, tt := range []struct {
		name     string
		reporter bool // the receiver says which method each event calls
		wrapped  bool // inside notify.Routed, as the daemon runs receivers
	}{{"per method", true, false}, {"whole receiver", false, false}, {"per method, wrapped", true, true}, {"whole receiver, wrapped", false, true}} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Incidents p1..p5 call "post", u1 calls "update".
				q := &memQueue{}
				for i, id := range []string{"p1", "p2", "p3", "p4", "p5", "u1"} {
					q.items = append(q.items, mkEnv(uint64(i+1), id, incident.Opened))
				}
				start := time.Now()
				type call struct {
					id string
					at time.Duration
				}
				var mu sync.Mutex
				var calls []call
				limited := false
				method := func(ev *incident.Event) string {
					if ev.Incident.ID[0] == 'u' {
						return "update"
					}
					return "post"
				}
				f := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
					m := method(ev)
					mu.Lock()
					calls = append(calls, call{ev.Incident.ID, time.Since(start)})
					first := !limited && m == "post"
					limited = limited || first
					mu.Unlock()
					if first {
						time.Sleep(10 * time.Millisecond) // p2..p4 are on their way meanwhile
						return true, &RetryAfterError{After: time.Minute, Method: "post", Err: errors.New("429")}
					}
					time.Sleep(100 * time.Millisecond)
					return false, nil
				})
				var n Notifier = f
				if tt.reporter {
					n = methodNotifier{f, method}
				}
				if tt.wrapped {
					n = &Routed{Notifier: n, Sends: func(string, severity.Level) bool { return true }}
				}
				d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
					Metrics: NewMetrics(prometheus.NewRegistry()), Concurrency: 4}
				runFake(t, d, q.empty)
				var posts []call
				for _, c := range calls {
					if c.id[0] == 'u' {
						if tt.reporter && c.at >= time.Minute {
							t.Errorf("update held back by the post hold: called at %v", c.at)
						}
						if !tt.reporter && c.at < time.Minute {
							t.Errorf("receiver without methods called during the hold at %v", c.at)
						}
						continue
					}
					posts = append(posts, c)
				}
				// p1 (429 after 10ms), p2..p4 already in flight then; p5 and
				// p1's retry wait out the minute, one testing the method first.
				if len(posts) != 6 {
					t.Fatalf("post calls %+v, want 6 (one 429, then each incident once)", posts)
				}
				for _, c := range posts[4:] {
					if c.at < time.Minute {
						t.Errorf("%s called at %v, during the 1m hold", c.id, c.at)
					}
				}
				if posts[5].at < posts[4].at+100*time.Millisecond {
					t.Errorf("after the hold, %s (at %v) did not wait for the test call %s (at %v) to finish", posts[5].id, posts[5].at, posts[4].id, posts[4].at)
				}
			})
		})
	}
}

// TestHoldEndsAfterAWake: a wake during a hold (a new event queued) does
// not make the deliverer forget when the hold ends.
func TestHoldEndsAfterAWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &memQueue{items: []*Envelope{mkEnv(1, "A", incident.Opened), mkEnv(2, "B", incident.Opened)}}
		var mu sync.Mutex
		var calls []string
		f := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, ev.Incident.ID)
			if ev.Incident.ID == "A" {
				// Not retryable: A is dead-lettered, and only the hold
				// says when B may go.
				return false, &RetryAfterError{After: time.Minute, Method: "post", Err: errors.New("429")}
			}
			return false, nil
		})
		wake := make(chan struct{}, 1)
		d := &Deliverer{Queue: q, Notifier: methodNotifier{f, func(*incident.Event) string { return "post" }}, Wake: wake,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(prometheus.NewRegistry()), Concurrency: 1}
		ctx, cancel := context.WithCancel(t.Context())
		finished := make(chan struct{})
		go func() { d.Run(ctx); close(finished) }()
		time.Sleep(30 * time.Second)
		wake <- struct{}{}
		time.Sleep(31 * time.Second)
		synctest.Wait()
		mu.Lock()
		got := slices.Clone(calls)
		mu.Unlock()
		cancel()
		<-finished
		if !slices.Equal(got, []string{"A", "B"}) {
			t.Fatalf("calls %v a second after the hold ended, want A then B", got)
		}
	})
}

// A rate limit asking for 30 days holds the method for at most the cap, and
// a call tests it every minute meanwhile: once the receiver answers again,
// a page queued behind the throttled answer goes out within the minute, not
// an hour later (attack finding: one 429 stopped every page for an hour).
func TestLongRateLimitIsProbedEveryMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &memQueue{items: []*Envelope{mkEnv(1, "A", incident.Opened), mkEnv(2, "B", incident.Opened)}}
		start := time.Now()
		var mu sync.Mutex
		var calls []time.Duration
		f := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, time.Since(start))
			if len(calls) <= 2 { // throttled for the first two calls (about two minutes)
				return true, &RetryAfterError{After: 30 * 24 * time.Hour, Method: "enqueue", Err: errors.New("429")}
			}
			return false, nil
		})
		d := &Deliverer{Queue: q, Notifier: methodNotifier{f, func(*incident.Event) string { return "enqueue" }},
			Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Metrics: NewMetrics(prometheus.NewRegistry()), Concurrency: 1}
		runFake(t, d, q.empty)
		if len(calls) != 4 {
			t.Fatalf("calls at %v, want 4 (two throttled tests, then A and B)", calls)
		}
		if last := calls[len(calls)-1]; last > 3*time.Minute {
			t.Errorf("the last page went out after %v, want within a minute of the throttle lifting (~2m)", last)
		}
		for i := 1; i < 3; i++ {
			if gap := calls[i] - calls[i-1]; gap < 59*time.Second {
				t.Errorf("test %d came %v after the last, want about a minute: a throttled method gets one call a minute", i, gap)
			}
		}
	})
}
