package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// ElectorOptions configures an Elector. The zero value of every field is
// usable.
type ElectorOptions struct {
	// Holder names this replica in the lease row. Default:
	// "<hostname>-<pid>-<random>", unique per process.
	Holder string
	// TTL is how long an acquisition or renewal holds the lease on the
	// database's clock. Default 5s.
	TTL time.Duration
	// Margin is how long before the database would let a standby take over
	// this replica stops leading when it cannot renew. Default 1s.
	Margin time.Duration
	// Interval between acquisition attempts and between renewals.
	// Default 1s.
	Interval time.Duration
	// RenewTimeout bounds one renewal. Default Interval.
	RenewTimeout time.Duration
	// Registerer gets amtriage_leader and amtriage_leader_changes_total;
	// nil registers nothing.
	Registerer prometheus.Registerer
	Logger     logr.Logger

	// noRelease leaves the lease held on exit, as a killed process does
	// (tests).
	noRelease bool
}

// Elector runs this replica's side of the leader election: at most one
// replica leads at a time, and a leader that cannot renew stops leading
// before the database lets another take over.
type Elector struct {
	db   DB
	opts ElectorOptions

	leader  atomic.Bool
	epoch   atomic.Int64
	running atomic.Bool

	leaderGauge prometheus.Gauge
	changes     prometheus.Counter
}

// NewElector returns an Elector on db. db should be a pool of its own (a
// few connections): renewals must not queue behind the store's work.
func NewElector(db DB, opts ElectorOptions) (*Elector, error) {
	if opts.TTL == 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.Margin == 0 {
		opts.Margin = time.Second
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.RenewTimeout == 0 {
		opts.RenewTimeout = opts.Interval
	}
	if opts.Margin <= 0 || opts.Margin >= opts.TTL {
		return nil, fmt.Errorf("elector: margin %s must be positive and below the ttl %s", opts.Margin, opts.TTL)
	}
	if opts.Interval <= 0 || opts.Interval >= opts.TTL-opts.Margin {
		return nil, fmt.Errorf("elector: interval %s must be positive and below ttl - margin (%s): a leader renews several times per lease", opts.Interval, opts.TTL-opts.Margin)
	}
	if opts.Holder == "" {
		h, err := defaultHolder()
		if err != nil {
			return nil, err
		}
		opts.Holder = h
	}
	e := &Elector{
		db:   db,
		opts: opts,
		leaderGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amtriage_leader",
			Help: "1 while this replica is the leader (processes and delivers), else 0.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amtriage_leader_changes_total",
			Help: "Times this replica took or lost the lead.",
		}),
	}
	if r := opts.Registerer; r != nil {
		for _, c := range []prometheus.Collector{e.leaderGauge, e.changes} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("elector: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

func defaultHolder() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("elector: holder id: %w", err)
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// Holder is this replica's name in the lease row.
func (e *Elector) Holder() string { return e.opts.Holder }

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool { return e.leader.Load() }

// Epoch is the epoch of the current (or last) term: what this replica's
// state transactions pass to Fence. 0 before the first term.
func (e *Elector) Epoch() int64 { return e.epoch.Load() }

// Run takes part in the election until ctx ends. Each time this replica
// takes the lease it calls lead with the term's epoch and a context that
// ends when the term does: ctx ended, or no renewal succeeded in time
// (the term ends at the send time of the last successful renewal + TTL -
// Margin). lead must return promptly once its context ends (within the
// Margin): Run waits for it before anyone else can lead. On ctx end Run
// releases the lease so a successor takes over at once.
//
// Run returns nil when ctx ends; it is an error to run an Elector twice
// at once.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, epoch int64)) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("elector: already running")
	}
	defer e.running.Store(false)
	log := e.opts.Logger
	var lastErr string
	for {
		sent := time.Now()
		epoch, ok, err := e.tryAcquire(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// Logged when it changes, not every second of an outage.
			if msg := err.Error(); msg != lastErr {
				log.Error(err, "leader election: cannot reach the lease")
				lastErr = msg
			}
		case ok:
			lastErr = ""
			e.term(ctx, epoch, sent, lead)
			if ctx.Err() != nil {
				return nil
			}
		default:
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.opts.Interval):
		}
	}
}

func (e *Elector) tryAcquire(ctx context.Context) (int64, bool, error) {
	actx, cancel := context.WithTimeout(ctx, e.opts.RenewTimeout)
	defer cancel()
	return TryAcquire(actx, e.db, e.opts.Holder, e.opts.TTL)
}

// term leads from one acquisition (sent at acquired) until the lease can
// no longer be trusted or ctx ends, then ends lead and waits for it.
func (e *Elector) term(ctx context.Context, epoch int64, acquired time.Time, lead func(context.Context, int64)) {
	log := e.opts.Logger.WithValues("epoch", epoch)
	validUntil := acquired.Add(e.opts.TTL - e.opts.Margin)
	if !time.Now().Before(validUntil) {
		// The acquisition took so long that the term is already over.
		log.Info("leader election: acquired the lease too late to lead; retrying")
		return
	}
	e.epoch.Store(epoch)
	e.setLeader(true)
	log.Info("leader election: this replica leads", "holder", e.opts.Holder)

	leadCtx, cancelLead := context.WithCancel(ctx)
	var wg sync.WaitGroup
	leadDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(leadDone)
		lead(leadCtx, epoch)
	}()

	reason := e.hold(ctx, epoch, validUntil, leadDone, log)
	// Not the leader from here on, whatever lead still does: its context
	// ends now (deliveries in flight are cut off) and its writes are
	// fenced by the epoch.
	e.setLeader(false)
	cancelLead()
	log.Info("leader election: this replica's term is over", "reason", reason)
	wg.Wait()
	log.Info("leader election: this replica stopped leading", "reason", reason)

	if reason == "deposed" || e.opts.noRelease {
		return
	}
	// Release on a fresh context: ctx may be the one that ended.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.RenewTimeout)
	defer cancel()
	if err := Release(rctx, e.db, e.opts.Holder, epoch); err != nil {
		log.Error(err, "leader election: release the lease (a successor waits for it to expire)")
	}
}

// hold renews the lease every Interval until the term ends and says why it
// ended.
func (e *Elector) hold(ctx context.Context, epoch int64, validUntil time.Time, leadDone <-chan struct{}, log logr.Logger) string {
	expiry := time.NewTimer(time.Until(validUntil))
	defer expiry.Stop()
	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "shutdown"
		case <-leadDone:
			return "lead returned"
		case <-expiry.C:
			return "no renewal in time"
		case <-tick.C:
		}
		sent := time.Now()
		if !sent.Before(validUntil) {
			return "no renewal in time" // the tick won the race with expiry
		}
		// The renewal may not outlast the term: a stalled database must not
		// keep this replica leading past validUntil.
		deadline := sent.Add(e.opts.RenewTimeout)
		if validUntil.Before(deadline) {
			deadline = validUntil
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		err := Renew(rctx, e.db, e.opts.Holder, epoch, e.opts.TTL)
		cancel()
		switch {
		case err == nil:
			validUntil = sent.Add(e.opts.TTL - e.opts.Margin)
			expiry.Reset(time.Until(validUntil))
		case errors.Is(err, ErrDeposed):
			return "deposed"
		case ctx.Err() != nil:
			return "shutdown"
		default:
			log.Error(err, "leader election: renew the lease", "leading for at most", time.Until(validUntil).Round(time.Millisecond).String())
		}
	}
}

func (e *Elector) setLeader(on bool) {
	if e.leader.Swap(on) == on {
		return
	}
	e.changes.Inc()
	if on {
		e.leaderGauge.Set(1)
	} else {
		e.leaderGauge.Set(0)
	}
}
