package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/triage/incident"
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

// Queue is the durable outbox as a receiver's worker sees it. Each
// incident's events are delivered in order (a resolve never overtakes its
// trigger, an update waits for the message it updates), while an incident
// whose head is waiting does not hold up the others.
type Queue interface {
	// Next returns the oldest envelope that heads its incident's events and
	// is due at now. When none is due it returns nil and the earliest time
	// one will be (zero if the queue is empty).
	Next(receiver string, now time.Time) (env *Envelope, wake time.Time, stats QueueStats, err error)
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

// Deliverer drains one receiver's queue: at-least-once, in order per
// incident, with exponential backoff and jitter, Retry-After honoured, and a
// dead letter when an event is not retryable or has failed for MaxAge.
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
	Now         func() time.Time
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
	if d.Now == nil {
		d.Now = time.Now
	}
}

// Run delivers until ctx ends. What is not delivered stays queued for the next start.
func (d *Deliverer) Run(ctx context.Context) {
	d.defaults()
	name := d.Notifier.Name()
	for ctx.Err() == nil {
		now := d.Now()
		env, wake, stats, err := d.Queue.Next(name, now)
		if err != nil {
			d.Log.Error("read outbox", "receiver", name, "err", err)
			if !sleep(ctx, d.BaseBackoff) {
				return
			}
			continue
		}
		d.Metrics.Depth.WithLabelValues(name).Set(float64(stats.Depth))
		age := 0.0
		if !stats.Oldest.IsZero() {
			age = now.Sub(stats.Oldest).Seconds()
		}
		d.Metrics.OldestAge.WithLabelValues(name).Set(age)
		if env != nil {
			d.attempt(ctx, env)
			continue
		}
		d.waitFor(ctx, wake.Sub(now), !wake.IsZero())
	}
}

// waitFor sleeps until woken, until d has passed (when timed), or until ctx ends.
func (d *Deliverer) waitFor(ctx context.Context, wait time.Duration, timed bool) {
	var timer <-chan time.Time
	if timed {
		t := time.NewTimer(max(wait, time.Millisecond))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-d.Wake:
	case <-timer:
	}
}

func (d *Deliverer) attempt(ctx context.Context, env *Envelope) {
	name := d.Notifier.Name()
	actx, cancel := context.WithTimeout(ctx, d.Timeout)
	retry, err := d.notify(actx, env)
	cancel()
	now := d.Now()
	if errors.Is(err, ErrSkipped) {
		d.Metrics.Deliveries.WithLabelValues(name, "skipped").Inc()
		d.ack(ctx, env)
		return
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
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the envelope stays queued as it was
	}
	var hold *HoldError
	if errors.As(err, &hold) {
		d.Metrics.Deliveries.WithLabelValues(name, "held").Inc()
		// Time spent held is not time spent failing.
		env.NextAttempt, env.FirstFailure = hold.Until, time.Time{}
		d.persist(ctx, env)
		return
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
		return
	}
	d.Metrics.Deliveries.WithLabelValues(name, "retry").Inc()
	wait := Backoff(env.Attempts, d.BaseBackoff, d.MaxBackoff)
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > wait {
		wait = ra.After // the receiver asked for it (429 Retry-After)
	}
	env.NextAttempt = now.Add(wait)
	d.Log.Warn("notification failed, will retry", "receiver", name, "incident", env.Event.Incident.ID,
		"attempt", env.Attempts, "next", env.NextAttempt, "err", err)
	d.persist(ctx, env)
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
