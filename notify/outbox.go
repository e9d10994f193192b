package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/triage/incident"
)

// Envelope is one incident event queued for one receiver in the durable outbox.
type Envelope struct {
	Seq         uint64         `json:"-"`
	Receiver    string         `json:"receiver"`
	Event       incident.Event `json:"event"`
	Enqueued    time.Time      `json:"enqueued"`
	Attempts    int            `json:"attempts"`
	NextAttempt time.Time      `json:"nextAttempt,omitzero"`
	LastError   string         `json:"lastError,omitempty"`
}

// Queue is the durable outbox as a receiver's worker sees it: one FIFO per
// receiver, so a resolve never overtakes its trigger.
type Queue interface {
	Oldest(receiver string) (*Envelope, error) // nil, nil when empty
	Ack(receiver string, seq uint64) error
	Retry(env *Envelope) error      // persists Attempts, NextAttempt, LastError
	DeadLetter(env *Envelope) error // moves it out of the queue for good
}

// Metrics counts deliveries; register once per process.
type Metrics struct {
	Deliveries  *prometheus.CounterVec
	DeadLetters *prometheus.CounterVec
}

// NewMetrics creates and registers the delivery metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_notifications_total",
			Help: "Notification delivery attempts by receiver and outcome (success, retry, failed).",
		}, []string{"receiver", "outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amtriage_notifications_dead_letters_total",
			Help: "Notifications given up after their attempts or age ran out.",
		}, []string{"receiver"}),
	}
	reg.MustRegister(m.Deliveries, m.DeadLetters)
	return m
}

// Deliverer drains one receiver's queue: at-least-once, in order, with
// exponential backoff and jitter, and a dead letter when attempts or age run out.
type Deliverer struct {
	Queue       Queue
	Notifier    Notifier
	Wake        <-chan struct{}
	Log         *slog.Logger
	Metrics     *Metrics
	MaxAttempts int           // 0: no limit, only MaxAge (a receiver down for hours loses nothing)
	MaxAge      time.Duration // default 24h
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
	for {
		env, err := d.Queue.Oldest(name)
		if err != nil {
			d.Log.Error("read outbox", "receiver", name, "err", err)
			if !sleep(ctx, d.BaseBackoff) {
				return
			}
			continue
		}
		if env == nil {
			select {
			case <-ctx.Done():
				return
			case <-d.Wake:
				continue
			}
		}
		if wait := env.NextAttempt.Sub(d.Now()); wait > 0 {
			if !sleep(ctx, wait) {
				return
			}
		}
		d.attempt(ctx, env)
		if ctx.Err() != nil {
			return
		}
	}
}

func (d *Deliverer) attempt(ctx context.Context, env *Envelope) {
	name := d.Notifier.Name()
	actx, cancel := context.WithTimeout(ctx, d.Timeout)
	retry, err := d.Notifier.Notify(actx, &env.Event)
	cancel()
	if err == nil {
		d.Metrics.Deliveries.WithLabelValues(name, "success").Inc()
		if err := d.Queue.Ack(name, env.Seq); err != nil {
			d.Log.Error("ack outbox", "receiver", name, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the envelope stays queued as it was
	}
	env.Attempts++
	env.LastError = err.Error()
	exhausted := (d.MaxAttempts > 0 && env.Attempts >= d.MaxAttempts) || d.Now().Sub(env.Enqueued) >= d.MaxAge
	if !retry || exhausted {
		d.Metrics.Deliveries.WithLabelValues(name, "failed").Inc()
		d.Metrics.DeadLetters.WithLabelValues(name).Inc()
		d.Log.Error("notification dead-lettered", "receiver", name, "incident", env.Event.Incident.ID,
			"event", env.Event.Kind, "attempts", env.Attempts, "retryable", retry, "err", err)
		if err := d.Queue.DeadLetter(env); err != nil {
			d.Log.Error("dead-letter outbox", "receiver", name, "err", err)
		}
		return
	}
	d.Metrics.Deliveries.WithLabelValues(name, "retry").Inc()
	wait := Backoff(env.Attempts, d.BaseBackoff, d.MaxBackoff)
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > wait {
		wait = ra.After // the receiver asked for it (429 Retry-After)
	}
	env.NextAttempt = d.Now().Add(wait)
	d.Log.Warn("notification failed, will retry", "receiver", name, "incident", env.Event.Incident.ID,
		"attempt", env.Attempts, "next", env.NextAttempt, "err", err)
	if err := d.Queue.Retry(env); err != nil {
		d.Log.Error("update outbox", "receiver", name, "err", err)
	}
}

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
