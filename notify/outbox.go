package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/incident"
)

// Envelope is one incident event queued for one receiver in the durable outbox.
type Envelope struct {
	Seq          uint64         `json:"-"`
	Receiver     string         `json:"receiver,omitempty"`
	Event        incident.Event `json:"event"`
	Enqueued     time.Time      `json:"enqueued,omitzero"`
	Attempts     int            `json:"attempts,omitempty"`
	FirstFailure time.Time      `json:"firstFailure,omitzero"`
	NextAttempt  time.Time      `json:"nextAttempt,omitzero"`
	LastError    string         `json:"lastError,omitempty"`
}

// QueueStats describe a receiver's queue for the outbox metrics.
type QueueStats struct {
	Depth  int
	Oldest time.Time // enqueue time of the oldest envelope; zero when empty
}

// Queue is the durable outbox as a receiver's deliverer sees it. Each
// incident's events are delivered in order (a resolve never overtakes its
// trigger, an update waits for the message it updates), while an incident
// whose head is waiting does not hold up the others. It must be safe for
// concurrent use: the deliverer's workers Ack, Retry and DeadLetter while
// its dispatcher calls Next.
type Queue interface {
	// Next returns the oldest envelope that heads its incident's events and
	// is due at now, skipping every incident for which busy (when not nil)
	// is true: one whose event is being delivered. When none is due it
	// returns nil and the earliest time one will be (zero if none waits).
	Next(receiver string, now time.Time, busy func(incident string) bool) (env *Envelope, wake time.Time, stats QueueStats, err error)
	Ack(receiver string, seq uint64) error
	Retry(env *Envelope) error      // persists Attempts, NextAttempt, LastError
	DeadLetter(env *Envelope) error // moves it out of the queue for good
}

// HoldError is not a failure: the receiver wants the event delivered later
// (a Sev 4 Slack message held until business hours). It costs no attempt.
type HoldError struct {
	Until  time.Time
	Reason string
}

func (e *HoldError) Error() string {
	return "held until " + e.Until.UTC().Format(time.RFC3339) + ": " + e.Reason
}

// PageReporter is implemented by receivers that page people, so the outbox
// can measure the time from webhook to page.
type PageReporter interface {
	IsPage(ev *incident.Event) bool
}

// Metrics are the delivery metrics; register once per process.
type Metrics struct {
	Deliveries    *prometheus.CounterVec
	DeadLetters   *prometheus.CounterVec
	Latency       *prometheus.HistogramVec
	WebhookToPage prometheus.Histogram
	Depth         *prometheus.GaugeVec
	OldestAge     *prometheus.GaugeVec
}

// NewMetrics creates and registers the delivery metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_notifications_total",
			Help: "Notification delivery attempts by receiver and outcome (success, retry, held, failed).",
		}, []string{"receiver", "outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_notifications_dead_letters_total",
			Help: "Notifications given up: not retryable, or failing for longer than the maximum age.",
		}, []string{"receiver"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "amtriage_notification_delivery_seconds",
			Help:    "Time from the webhook that caused an event to its successful delivery, by receiver.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"receiver"}),
		WebhookToPage: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amtriage_webhook_to_page_seconds",
			Help:    "Time from the webhook that opened or escalated an incident to the page being accepted.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		Depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amtriage_outbox_depth",
			Help: "Events queued per receiver.",
		}, []string{"receiver"}),
		OldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amtriage_outbox_oldest_age_seconds",
			Help: "Age of the oldest queued event per receiver (0 when empty).",
		}, []string{"receiver"}),
	}
	reg.MustRegister(m.Deliveries, m.DeadLetters, m.Latency, m.WebhookToPage, m.Depth, m.OldestAge)
	return m
}

// Defaults of the Deliverer's limits (and of the delivery.* config keys).
const (
	// DefaultConcurrency incidents are delivered at once per receiver: one
	// hung request then costs the others nothing while slots remain.
	DefaultConcurrency = 32
	// DefaultMaxRetryAfter caps a receiver's Retry-After: a 429 asking for
	// 30 days must not silence a receiver for a month.
	DefaultMaxRetryAfter = time.Hour
	// DefaultHoldProbe: a rate-limited method is tested by one call at
	// least this often, however long the Retry-After. A success ends the
	// wait: a Sev 1 page must not sit an hour behind one throttled answer
	// (nor behind a proxy's bogus Retry-After), and one call a minute is
	// no load on a throttled API.
	DefaultHoldProbe = time.Minute
)

// Deliverer drains one receiver's queue: at-least-once, in order per
// incident, with exponential backoff and jitter, Retry-After honoured (up to
// MaxRetryAfter), and a dead letter when an event is not retryable or has
// failed for MaxAge. Up to Concurrency incidents are delivered at once, never
// two events of one incident. A rate limit the receiver reports for one of
// its API methods (RetryAfterError.Method) holds back every envelope that
// calls that method until it ends; then a single call tests the method before
// the others follow, so the backlog does not come due in one burst.
type Deliverer struct {
	Queue       Queue
	Notifier    Notifier
	Wake        <-chan struct{}
	Log         *slog.Logger
	Metrics     *Metrics
	MaxAttempts int           // 0: no limit, only MaxAge (a receiver down for hours loses nothing)
	MaxAge      time.Duration // how long an event may keep failing; default 24h
	BaseBackoff time.Duration // default 1s
	MaxBackoff  time.Duration // default 5m
	Timeout     time.Duration // per attempt, default 30s
	// Hard, when set, is what ends deliveries in flight; Run's context then
	// only stops new ones, and Run returns once those in flight are done
	// (each bounded by Timeout): a graceful stop does not cut off a
	// delivery the receiver may already have, to repeat it later. Nil: Run's
	// context ends both.
	Hard          context.Context
	Concurrency   int           // incidents in flight at once; default DefaultConcurrency, 1 is strictly one at a time
	MaxRetryAfter time.Duration // cap on a receiver's Retry-After; default DefaultMaxRetryAfter
	HoldProbe     time.Duration // a held method is tested at least this often; default DefaultHoldProbe
	Now           func() time.Time
}

func (d *Deliverer) defaults() {
	if d.MaxAge == 0 {
		d.MaxAge = 24 * time.Hour
	}
	if d.BaseBackoff == 0 {
		d.BaseBackoff = time.Second
	}
	if d.MaxBackoff == 0 {
		d.MaxBackoff = 5 * time.Minute
	}
	if d.Timeout == 0 {
		d.Timeout = 30 * time.Second
	}
	if d.Concurrency <= 0 {
		d.Concurrency = DefaultConcurrency
	}
	if d.MaxRetryAfter <= 0 {
		d.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if d.HoldProbe <= 0 {
		d.HoldProbe = DefaultHoldProbe
	}
	if d.Now == nil {
		d.Now = time.Now
	}
}

// MethodReporter is implemented by receivers whose rate limits are per API
// method (Slack's are) or per key (PagerDuty's), so that a hold on one does
// not hold back events that call only others. The envelopes of a receiver
// without it are all held while any of its methods is.
type MethodReporter interface {
	// Methods are the API methods delivering ev may call, none if it calls
	// nothing; known is false when the receiver cannot tell (a wrapper
	// around a receiver that does not report them): every method, then.
	Methods(ev *incident.Event) (methods []string, known bool)
}

// outcome is a finished attempt, reported by its worker to the dispatcher.
type outcome struct {
	env *Envelope
	err error // the receiver's; nil on success
}

// Run delivers until ctx ends. What is not delivered stays queued for the next start.
//
// One goroutine (this one) dispatches: it alone calls Next, owns the set of
// incidents in flight and the method holds, and starts a worker per
// envelope, at most Concurrency at once. A worker records the result in the
// queue (Ack, Retry, DeadLetter) before reporting back, so when its incident
// leaves the in-flight set the queue already shows what comes next.
func (d *Deliverer) Run(ctx context.Context) {
	d.defaults()
	name := d.Notifier.Name()
	reporter, _ := d.Notifier.(MethodReporter)
	inflight := map[string]bool{}
	holds := &holds{}
	// blocked: incidents whose head waits for a hold, with the hold's end
	// (zero: until a test of the method finishes). Kept until a hold is
	// released rather than recomputed per dispatch, which would cost a
	// queue scan per waiting incident each time.
	blocked, blockedGen := map[string]time.Time{}, 0
	var now time.Time
	busy := func(id string) bool {
		if inflight[id] {
			return true
		}
		until, ok := blocked[id]
		return ok && (until.IsZero() || now.Before(until))
	}
	done := make(chan outcome, d.Concurrency) // workers never block on it
	var wg sync.WaitGroup
	defer wg.Wait()
	attemptCtx := ctx
	if d.Hard != nil {
		attemptCtx = d.Hard
	}

	for ctx.Err() == nil {
		now = d.Now()
		if blockedGen != holds.gen {
			clear(blocked)
			blockedGen = holds.gen
		}
		var wake time.Time
		for _, until := range blocked { // Next skips these: their holds' ends are not its to tell
			if now.Before(until) {
				wake = earliest(wake, until)
			}
		}
		for len(inflight) < d.Concurrency {
			if reporter == nil {
				// Every envelope may call a held method.
				if until, held := holds.waiting(holds.methods(), now); held {
					wake = earliest(wake, until)
					break
				}
			}
			env, next, stats, err := d.Queue.Next(name, now, busy)
			if err != nil {
				d.Log.Error("read outbox", "receiver", name, "err", err)
				wake = earliest(wake, now.Add(d.BaseBackoff))
				break
			}
			d.setStats(name, stats, now)
			wake = earliest(wake, next)
			if env == nil {
				break
			}
			var methods []string
			known := false
			if reporter != nil {
				methods, known = reporter.Methods(&env.Event)
			}
			if !known {
				methods = holds.methods()
			}
			if until, held := holds.waiting(methods, now); held {
				blocked[env.Event.Incident.ID] = until
				wake = earliest(wake, until)
				continue
			}
			holds.testing(methods, env.Seq, now)
			inflight[env.Event.Incident.ID] = true
			wg.Go(func() { done <- outcome{env: env, err: d.attempt(attemptCtx, env)} })
		}
		d.wait(ctx, wake, now, done, func(o outcome) {
			delete(inflight, o.env.Event.Incident.ID)
			d.settle(holds, o)
		})
	}
}

// wait sleeps until woken, until wake (when set), until a worker reports
// (handled by finished), or until ctx ends.
func (d *Deliverer) wait(ctx context.Context, wake, now time.Time, done <-chan outcome, finished func(outcome)) {
	var timer <-chan time.Time
	if !wake.IsZero() {
		t := time.NewTimer(max(wake.Sub(now), time.Millisecond))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-d.Wake:
	case <-timer:
	case o := <-done:
		finished(o)
	}
}

// setStats updates the queue gauges from what Next saw.
func (d *Deliverer) setStats(name string, stats QueueStats, now time.Time) {
	d.Metrics.Depth.WithLabelValues(name).Set(float64(stats.Depth))
	age := 0.0
	if !stats.Oldest.IsZero() {
		age = now.Sub(stats.Oldest).Seconds()
	}
	d.Metrics.OldestAge.WithLabelValues(name).Set(age)
}

// settle updates the holds from a finished attempt: a rate limit on a
// method holds it back; the end of the attempt that tested a method after a
// hold releases it (or a new 429 holds it again).
func (d *Deliverer) settle(h *holds, o outcome) {
	now := d.Now()
	h.probed(o.env.Seq)
	var ra *RetryAfterError
	if !errors.As(o.err, &ra) || ra.Method == "" {
		return
	}
	until := now.Add(min(max(ra.After, 0), d.MaxRetryAfter, d.HoldProbe))
	if h.hold(ra.Method, until) {
		d.Log.Warn("receiver rate-limited: holding back its calls", "receiver", d.Notifier.Name(),
			"method", ra.Method, "until", until)
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// holds are a receiver's rate-limited API methods. Only the dispatcher
// goroutine uses them.
type holds struct {
	m map[string]*methodHold
	// gen counts releases: when a method is free again, the incidents
	// blocked on it are looked at anew.
	gen int
}

type methodHold struct {
	until time.Time
	// testing: the hold has ended and the attempt of envelope probe tests
	// the method; until it finishes the others keep waiting.
	testing bool
	probe   uint64
}

// hold holds method until then (or later, if already held longer). It
// reports whether the method was free before.
func (h *holds) hold(method string, until time.Time) bool {
	if h.m == nil {
		h.m = map[string]*methodHold{}
	}
	mh := h.m[method]
	if mh == nil {
		h.m[method] = &methodHold{until: until}
		return true
	}
	mh.testing = false
	if until.After(mh.until) {
		mh.until = until
	}
	return false
}

func (h *holds) methods() []string {
	out := make([]string, 0, len(h.m))
	for m := range h.m {
		out = append(out, m)
	}
	return out
}

// waiting says whether an envelope calling methods must wait, and until
// when (zero: until a test of a method finishes).
func (h *holds) waiting(methods []string, now time.Time) (until time.Time, held bool) {
	for _, m := range methods {
		mh := h.m[m]
		switch {
		case mh == nil:
		case mh.testing:
			held = true
		case now.Before(mh.until):
			held, until = true, earliest(until, mh.until)
		}
	}
	if held && !until.IsZero() {
		for _, m := range methods { // a test under way outlasts any end time
			if mh := h.m[m]; mh != nil && mh.testing {
				until = time.Time{}
			}
		}
	}
	return until, held
}

// testing makes envelope seq's attempt the test of those of its methods
// whose hold has ended.
func (h *holds) testing(methods []string, seq uint64, now time.Time) {
	for _, m := range methods {
		if mh := h.m[m]; mh != nil && !mh.testing && !now.Before(mh.until) {
			mh.testing, mh.probe = true, seq
		}
	}
}

// probed ends the tests seq's attempt was making: their methods are free
// again. (A new 429 from the same attempt holds them again right after.)
func (h *holds) probed(seq uint64) {
	for m, mh := range h.m {
		if mh.testing && mh.probe == seq {
			delete(h.m, m)
			h.gen++
		}
	}
}

// attempt delivers env once and records the result in the queue. It
// returns the receiver's error, for the dispatcher's holds.
func (d *Deliverer) attempt(ctx context.Context, env *Envelope) error {
	name := d.Notifier.Name()
	actx, cancel := context.WithTimeout(ctx, d.Timeout)
	retry, err := d.notify(actx, env)
	cancel()
	now := d.Now()
	if errors.Is(err, ErrSkipped) {
		d.Metrics.Deliveries.WithLabelValues(name, "skipped").Inc()
		d.ack(ctx, env)
		return nil
	}
	if err == nil {
		d.Metrics.Deliveries.WithLabelValues(name, "success").Inc()
		if !env.Event.At.IsZero() {
			d.Metrics.Latency.WithLabelValues(name).Observe(now.Sub(env.Event.At).Seconds())
			if p, ok := d.Notifier.(PageReporter); ok && p.IsPage(&env.Event) {
				d.Metrics.WebhookToPage.Observe(now.Sub(env.Event.At).Seconds())
			}
		}
		d.ack(ctx, env)
		return nil
	}
	if ctx.Err() != nil {
		return nil // shutting down: the envelope stays queued as it was
	}
	var hold *HoldError
	if errors.As(err, &hold) {
		d.Metrics.Deliveries.WithLabelValues(name, "held").Inc()
		// Time spent held is not time spent failing.
		env.NextAttempt, env.FirstFailure = hold.Until, time.Time{}
		d.persist(ctx, env)
		return err
	}
	env.Attempts++
	env.LastError = err.Error()
	if env.FirstFailure.IsZero() {
		env.FirstFailure = now
	}
	exhausted := (d.MaxAttempts > 0 && env.Attempts >= d.MaxAttempts) || now.Sub(env.FirstFailure) >= d.MaxAge
	if !retry || exhausted {
		d.Metrics.Deliveries.WithLabelValues(name, "failed").Inc()
		d.Metrics.DeadLetters.WithLabelValues(name).Inc()
		d.Log.Error("notification dead-lettered", "receiver", name, "incident", env.Event.Incident.ID,
			"event", env.Event.Kind, "attempts", env.Attempts, "retryable", retry, "err", err)
		if err := d.Queue.DeadLetter(env); err != nil {
			d.Log.Error("dead-letter outbox", "receiver", name, "err", err)
			sleep(ctx, d.BaseBackoff)
		}
		return err
	}
	d.Metrics.Deliveries.WithLabelValues(name, "retry").Inc()
	wait := Backoff(env.Attempts, d.BaseBackoff, d.MaxBackoff)
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > wait {
		wait = min(ra.After, d.MaxRetryAfter) // the receiver asked for it (429 Retry-After), within reason
		if ra.Method != "" {
			// The method's hold paces the calls: this envelope is the
			// next test of it (see DefaultHoldProbe).
			wait = min(wait, d.HoldProbe)
		}
	}
	env.NextAttempt = now.Add(wait)
	d.Log.Warn("notification failed, will retry", "receiver", name, "incident", env.Event.Incident.ID,
		"attempt", env.Attempts, "next", env.NextAttempt, "err", err)
	d.persist(ctx, env)
	return err
}

// notify calls the receiver; a panic is an error that will happen again for
// this event: it is dead-lettered after MaxPanics attempts, and the
// receiver's other events flow on.
func (d *Deliverer) notify(ctx context.Context, env *Envelope) (retry bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			d.Log.Error("receiver panicked", "receiver", d.Notifier.Name(), "incident", env.Event.Incident.ID,
				"event", env.Event.Kind, "panic", r, "stack", string(debug.Stack()))
			retry, err = env.Attempts+1 < maxPanics, fmt.Errorf("receiver panicked: %v", r)
		}
	}()
	return d.Notifier.Notify(ctx, &env.Event)
}

// maxPanics: an event whose delivery panicked this many times is dead-lettered.
const maxPanics = 3

// ack and persist back off when the store fails, instead of spinning on an
// envelope whose state could not be recorded.
func (d *Deliverer) ack(ctx context.Context, env *Envelope) {
	if err := d.Queue.Ack(env.Receiver, env.Seq); err != nil {
		d.Log.Error("ack outbox", "receiver", env.Receiver, "err", err)
		sleep(ctx, d.BaseBackoff)
	}
}

func (d *Deliverer) persist(ctx context.Context, env *Envelope) {
	if err := d.Queue.Retry(env); err != nil {
		d.Log.Error("update outbox", "receiver", env.Receiver, "err", err)
		sleep(ctx, d.BaseBackoff)
	}
}

// ErrSkipped is returned by a receiver that had nothing to do for an event
// (not routed to it): acknowledged, counted as skipped, not as a delivery.
var ErrSkipped = errors.New("not for this receiver")

// Backoff is exponential with full jitter in [d/2, d], capped at max.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
