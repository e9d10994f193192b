// Package signal is what the measured-signal sources (Prometheus, health
// probes, Kubernetes) share: the Source interface, the per-evaluation memo
// that makes a storm run each query once, and their latency metrics.
package signal

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

// Source supplies measured signals for an alert. A source that cannot tell
// leaves a signal unknown and says why in its Note; an error makes all of its
// signals unknown (the caller records the error as the reason).
type Source interface {
	Name() string
	Signals(ctx context.Context, ev *Evaluation, a *template.Alert, svc *rules.Service) (severity.Signals, error)
}

// Evaluation is one round of triage at one instant: the notifications of one
// pipeline step, or one re-evaluation of open incidents. Every source
// measures at At, and memoises its lookups in the evaluation, so a storm of
// a thousand alerts of one service runs each query and probe once.
type Evaluation struct {
	At time.Time

	mu       sync.Mutex
	memo     map[string]*call
	tripped  map[string]string
	answered map[string]bool
}

type call struct {
	done chan struct{}
	val  any
	err  error
}

// NewEvaluation starts an evaluation at the instant at.
func NewEvaluation(at time.Time) *Evaluation {
	return &Evaluation{At: at, memo: map[string]*call{}}
}

// Do returns fn's result for key, calling fn at most once per evaluation;
// concurrent callers of the same key wait for the first. A nil Evaluation
// memoises nothing.
func (e *Evaluation) Do(key string, fn func() (any, error)) (any, error) {
	if e == nil {
		return fn()
	}
	e.mu.Lock()
	if c, ok := e.memo[key]; ok {
		e.mu.Unlock()
		<-c.done
		return c.val, c.err
	}
	c := &call{done: make(chan struct{})}
	e.memo[key] = c
	e.mu.Unlock()
	defer close(c.done)
	c.val, c.err = fn()
	return c.val, c.err
}

// Answered records that backend answered a request in this evaluation: it
// is up, merely slow on some queries, and Trip no longer applies to it.
func (e *Evaluation) Answered(backend string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.answered == nil {
		e.answered = map[string]bool{}
	}
	e.answered[backend] = true
}

// Trip records that backend ran out of a deadline without having answered
// anything in this evaluation, with why: later lookups of the evaluation
// skip it instead of each waiting out their own deadline. It reports
// whether this call tripped it (false: already tripped, or it answered).
func (e *Evaluation) Trip(backend, reason string) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.tripped[backend]; ok || e.answered[backend] {
		return false
	}
	if e.tripped == nil {
		e.tripped = map[string]string{}
	}
	e.tripped[backend] = reason
	return true
}

// Tripped reports whether backend was tripped in this evaluation, and why.
func (e *Evaluation) Tripped(backend string) (string, bool) {
	if e == nil {
		return "", false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	reason, ok := e.tripped[backend]
	return reason, ok
}

// Time is the evaluation instant, or now for a nil Evaluation.
func (e *Evaluation) Time() time.Time {
	if e == nil || e.At.IsZero() {
		return time.Now()
	}
	return e.At
}

// Memo is Do with a typed result.
func Memo[T any](e *Evaluation, key string, fn func() (T, error)) (T, error) {
	v, err := e.Do(key, func() (any, error) { return fn() })
	t, _ := v.(T)
	return t, err
}
