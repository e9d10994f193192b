package triage

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/triage/heartbeat"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/triage/verify"
	"github.com/amtriage/amtriage/webhook"
)

// Pipeline folds acknowledged notifications into incidents, one at a time in
// inbox order, and queues the resulting events for the receivers. It is the
// only writer of the incident book.
type Pipeline struct {
	store     pipelineStore
	triager   *Triager
	enricher  Enricher
	log       *slog.Logger
	metrics   *Metrics
	receivers []string
	takes     func(receiver string, kind incident.EventKind) bool
	// answer tells a Slack user of an action on no incident (set by the
	// daemon; nil: nobody is told).
	answer   func(responseURL, text string)
	onEvents func() // wakes the receivers' workers
	// onCommitted is told of each commit's events once they are durable,
	// their pages enqueued: evidence is gathered from there, off the
	// paging path. It must not block.
	onCommitted func([]*incident.Changes)

	staleAfter  time.Duration
	retention   time.Duration
	statusEvery map[severity.Level]time.Duration
	reevaluate  map[severity.Level]time.Duration
	escalate    time.Duration // escalation.after (0: off)
	now         func() time.Time

	// The lifecycle after the page: how long a recovered incident is
	// watched, and how its recovery is verified (nil: no check can run).
	monitorFor, verifyEvery, verifyTimeout time.Duration
	verifier                               *verify.Verifier
	profilesMu                             sync.Mutex
	profiles                               map[string]*rules.Service // by name, of profilesOf
	profilesOf                             *rules.Config

	// The dead man's switch: the heartbeat's alertname, and how long its
	// silence may last. beats is restored with the book and, like it,
	// changed only with p.mu held.
	heartbeat    string
	missingAfter time.Duration
	beats        *heartbeat.Switch
	started      time.Time // when this pipeline started, for heartbeat.StartGrace

	mu      sync.RWMutex // guards book and lastSeq for readers of snapshots
	book    *incident.Book
	lastSeq uint64

	wake   chan struct{}
	reconf chan reconfig // reloads, applied by Run between batches

	// Terms: with replicas, the pipeline processes only while its replica
	// leads (see Lead). active and termCtx belong to Run's goroutine;
	// leading mirrors active for other readers.
	terms   chan term
	active  bool
	termCtx context.Context
	leading atomic.Bool
	// stale: a commit failed and reading the state back failed too; the
	// book may hold what the store does not (see freshBook).
	stale atomic.Bool

	// Progress, for /readyz: the last error of a drain that could not go
	// on, and when a commit last succeeded or, after the pipeline went
	// idle, work arrived. clock is time.Now but in tests.
	healthMu     sync.Mutex
	lastError    error
	lastErrorAt  time.Time
	lastProgress time.Time
	idle         bool
	clock        func() time.Time
	// Failures: a chunk that failed is retried entry by entry up to
	// isolateThrough; failedSeq failed failedTries times alone.
	isolateThrough, failedSeq uint64
	failedTries               int

	// decoded holds messages the intake already decoded, by inbox sequence,
	// so the pipeline need not decode them again. Bounded: on overflow, or
	// after a restart, the body is decoded from the inbox instead.
	decodedMu    sync.Mutex
	decoded      map[uint64]decodedMsg
	decodedBytes int
	readThrough  atomic.Uint64 // the last sequence the pipeline has read from the inbox
}

type decodedMsg struct {
	msg  *webhook.Message
	size int // body bytes, a proxy for the decoded size
}

// The cache holds at most this many messages and body bytes; a pipeline far
// behind decodes from the inbox instead of pinning memory.
const (
	maxDecoded      = 1024
	maxDecodedBytes = 4 << 20 // of bodies: up to decodeFactor times that decoded
)

// pipelineStore is what the pipeline reads and writes: the inbox it folds
// in and the state it commits.
type pipelineStore interface {
	store.Inbox
	store.State
}

// PipelineOptions configures a Pipeline.
type PipelineOptions struct {
	Store     pipelineStore
	Triager   *Triager
	Enricher  Enricher // nil: no diagnosis
	Log       *slog.Logger
	Metrics   *Metrics
	Receivers []string // outbox queues to fan events out to
	// Takes, when set, says which receivers take an event kind
	// (notify.Takes); nil: all of them take all.
	Takes      func(receiver string, kind incident.EventKind) bool
	OnEvents   func()
	StaleAfter time.Duration
	Retention  time.Duration
	// StatusEvery is the periodic update interval per severity (absent or 0: none).
	StatusEvery map[severity.Level]time.Duration
	// Reevaluate is how often open incidents are triaged again, by severity
	// (absent or 0: never). Only useful with measuring sources.
	Reevaluate map[severity.Level]time.Duration
	// EscalateAfter escalates a Sev 1 whose cause is not identified this
	// long after its declaration (0: never).
	EscalateAfter time.Duration
	// Heartbeat is the heartbeat's alertname (rules.DefaultHeartbeatName
	// when empty); MissingAfter how long its silence may last (0: 15m).
	Heartbeat    string
	MissingAfter time.Duration
	// MonitorFor, VerifyEvery, VerifyTimeout: incidents.* (0: the defaults);
	// Verifier checks recovery (nil: nothing is checked).
	MonitorFor, VerifyEvery, VerifyTimeout time.Duration
	Verifier                               *verify.Verifier
	Now                                    func() time.Time

	// OnCommitted, if set, is told of every commit that queued events,
	// after it (evidence collection). It must not block.
	OnCommitted func([]*incident.Changes)

	// Standby: the state is not loaded now but when Lead starts a term
	// (a replica that may not lead yet: PostgreSQL).
	Standby bool
}

// NewPipeline loads the persisted incident state, unless o.Standby.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	p := &Pipeline{
		store: o.Store, triager: o.Triager, enricher: o.Enricher, log: o.Log, metrics: o.Metrics, reevaluate: o.Reevaluate,
		receivers: o.Receivers, takes: o.Takes, onEvents: o.OnEvents, onCommitted: o.OnCommitted,
		staleAfter: o.StaleAfter, retention: o.Retention, statusEvery: o.StatusEvery, now: o.Now,
		escalate:  o.EscalateAfter,
		wake:      make(chan struct{}, 1),
		reconf:    make(chan reconfig),
		terms:     make(chan term),
		decoded:   map[uint64]decodedMsg{},
		heartbeat: cmp.Or(o.Heartbeat, rules.DefaultHeartbeatName), missingAfter: cmp.Or(o.MissingAfter, rules.DefaultMissingAfter),
		verifier: o.Verifier,
	}
	p.setLifecycle(o.MonitorFor, o.VerifyEvery, o.VerifyTimeout)
	if p.now == nil {
		p.now = time.Now
	}
	if p.onEvents == nil {
		p.onEvents = func() {}
	}
	p.started = p.now()
	if o.Standby {
		// Read now, so its API shows the state from the start; a database
		// down at start leaves it empty until the next tick or its term.
		if err := p.reload(); err != nil {
			p.log.Warn("standby: reading the state for the API", "err", err)
			p.book = p.newBook()
			p.beats = heartbeat.New(p.missingAfter, nil, p.started)
		}
	} else {
		if err := p.reload(); err != nil {
			return nil, err
		}
		p.active = true
		p.leading.Store(true)
	}
	p.clock = time.Now
	p.lastProgress = p.clock()
	return p, nil
}

func (p *Pipeline) reload() error {
	ls, err := p.store.LoadState()
	if err != nil {
		return err
	}
	book := p.newBook()
	book.Restore(ls.Incidents, ls.Alerts, ls.Tombstones)
	p.mu.Lock()
	p.book, p.lastSeq = book, ls.LastSeq
	p.beats = heartbeat.New(p.missingAfter, ls.Heartbeats, p.started)
	p.stale.Store(false)
	p.mu.Unlock()
	p.store.MarkProcessed(ls.LastSeq)
	p.readThrough.Store(ls.LastSeq)
	p.updateGauges()
	return nil
}

// Committed is the committer's callback: these entries are durable.
func (p *Pipeline) Committed(entries []*store.InboxEntry, msgs []*webhook.Message) {
	p.healthMu.Lock()
	if p.idle { // the stall clock starts when work arrives, not at the last commit
		p.idle, p.lastProgress = false, p.clock()
	}
	p.healthMu.Unlock()
	if !p.leading.Load() {
		return // a standby: the leader reads these from the shared inbox
	}
	p.decodedMu.Lock()
	for i, e := range entries {
		// The pipeline may already have read (and decoded) an entry that was
		// visible before this callback ran: caching it then would leak.
		if msgs[i] == nil || e.Seq <= p.readThrough.Load() ||
			len(p.decoded) >= maxDecoded || p.decodedBytes+len(e.Body) > maxDecodedBytes {
			continue
		}
		p.decoded[e.Seq] = decodedMsg{msg: msgs[i], size: len(e.Body)}
		p.decodedBytes += len(e.Body)
	}
	p.decodedMu.Unlock()
	p.Wake()
}

// cachedDecoded is the message the intake decoded for seq, or nil. It stays
// cached until forgetDecoded, as its entry may not fit the chunk in hand.
func (p *Pipeline) cachedDecoded(seq uint64) *webhook.Message {
	p.decodedMu.Lock()
	defer p.decodedMu.Unlock()
	return p.decoded[seq].msg
}

// forgetDecoded drops cached messages up to seq, which the pipeline has
// read: ones cached after it had already decoded them itself.
func (p *Pipeline) forgetDecoded(upTo uint64) {
	p.decodedMu.Lock()
	defer p.decodedMu.Unlock()
	p.readThrough.Store(upTo) // under the lock: Committed checks it there
	for seq, d := range p.decoded {
		if seq <= upTo {
			delete(p.decoded, seq)
			p.decodedBytes -= d.size
		}
	}
}

// Wake tells the pipeline new inbox entries are committed.
func (p *Pipeline) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run processes the inbox until ctx ends, then finishes the batch in hand.
func (p *Pipeline) Run(ctx context.Context) {
	sweep := time.NewTicker(p.tick())
	defer sweep.Stop()
	if p.active && p.termCtx == nil {
		p.termCtx = ctx // leads for as long as it runs (one process: bbolt)
	}
	p.Wake() // entries acknowledged before a crash resume at once
	var lastDrain time.Time
	for {
		var termEnded <-chan struct{}
		if p.active {
			termEnded = p.termCtx.Done()
		}
		select {
		case <-ctx.Done():
			return
		case rc := <-p.reconf:
			p.applySettings(rc.s)
			sweep.Reset(p.tick())
			close(rc.done)
		case t := <-p.terms:
			t.done <- p.startOrEndTerm(t.ctx)
		case <-termEnded:
			p.startOrEndTerm(nil)
		case <-p.wake:
			if !p.active {
				continue // the leader processes; this replica stands by
			}
			work := p.termCtx // Run's ctx, or the term's: it ends first
			// Under a stream of webhooks, let a few milliseconds of them
			// gather so one state commit (two fsyncs) covers many; an idle
			// daemon processes the first notification at once.
			if wait := coalesce - time.Since(lastDrain); wait > 0 && !sleepCtx(work, wait) {
				continue // the term or the run ended: the loop sees which
			}
			lastDrain = time.Now()
			if err := p.Drain(work); err != nil {
				if work.Err() != nil {
					continue // deposed mid-batch: its commit was fenced out
				}
				wait := p.retryWait(err)
				p.log.Error("processing inbox; will retry", "in", wait.String(), "err", err)
				if !sleepCtx(work, wait) {
					continue
				}
				p.Wake()
			}
		case <-sweep.C:
			if !p.active {
				p.refreshStandby()
				continue
			}
			p.periodic(p.termCtx)
		}
	}
}

// term is a request to Run: start a term that lasts as long as ctx, or
// (ctx nil) end the current one.
type term struct {
	ctx  context.Context
	done chan error
}

// Lead starts a term: the state is loaded from the store (the previous
// leader's last commit) and the pipeline processes until ctx ends or
// Follow. Run must be running.
func (p *Pipeline) Lead(ctx context.Context) error {
	t := term{ctx: ctx, done: make(chan error, 1)}
	select {
	case p.terms <- t:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-t.done
}

// Follow ends the term, once the batch in hand is done. Run must be
// running, or have returned (ctx is Run's context).
func (p *Pipeline) Follow(ctx context.Context) {
	t := term{done: make(chan error, 1)}
	select {
	case p.terms <- t:
		<-t.done
	case <-ctx.Done():
	}
}

// Leading reports whether the pipeline processes now.
func (p *Pipeline) Leading() bool { return p.leading.Load() }

// startOrEndTerm runs on Run's goroutine.
func (p *Pipeline) startOrEndTerm(ctx context.Context) error {
	if ctx == nil {
		p.active, p.termCtx = false, nil
		p.leading.Store(false)
		return nil
	}
	p.started = p.now() // the heartbeat grace counts from the takeover
	if err := p.reload(); err != nil {
		return fmt.Errorf("load the state to lead: %w", err)
	}
	p.forgetDecoded(p.lastSeq)
	p.healthMu.Lock()
	p.lastError, p.lastProgress = nil, p.clock()
	p.healthMu.Unlock()
	p.active, p.termCtx = true, ctx
	p.leading.Store(true)
	p.Wake()
	return nil
}

// refreshStandby reloads a standby's book, so that its API answers with
// the leader's state as of the last tick.
func (p *Pipeline) refreshStandby() {
	if err := p.reload(); err != nil {
		p.log.Warn("standby: reading the state for the API", "err", err)
	}
}

// periodic runs the timed work of one tick. Re-evaluation goes first, so a
// status update due in the same tick carries what was just measured instead
// of the previous evaluation's findings (followed at once by a change).
func (p *Pipeline) periodic(ctx context.Context) {
	if err := p.freshBook(); err != nil {
		p.log.Error("timed work waits for the state to be read again", "err", err)
		return
	}
	if err := p.Reevaluate(ctx); err != nil {
		p.log.Error("re-evaluating open incidents", "err", err)
	}
	if err := p.Verify(ctx); err != nil {
		p.log.Error("verifying recovery", "err", err)
	}
	if err := p.Sweep(); err != nil {
		p.log.Error("sweeping stale alerts", "err", err)
	}
}

// sweepInterval paces stale sweeps and status updates: 30 s keeps a 2-minute
// Sev 1 update within 30 s of its time.
func sweepInterval(staleAfter time.Duration) time.Duration {
	if staleAfter <= 0 || staleAfter/10 > 30*time.Second {
		return 30 * time.Second
	}
	if staleAfter/10 < time.Second {
		return time.Second
	}
	return staleAfter / 10
}

// tick paces sweeps and re-evaluations: a re-evaluation is at most a
// quarter of its interval late.
func (p *Pipeline) tick() time.Duration {
	d := sweepInterval(p.staleAfter)
	if every := p.missingAfter / 10; every < d { // a silence is noticed within a tenth of missing_after
		d = max(every, time.Second)
	}
	if p.verifier != nil && p.verifyEvery < d { // a re-check is at most a tick late
		d = max(p.verifyEvery, time.Second)
	}
	if every := p.monitorFor / 4; every > 0 && every < d {
		d = max(every, time.Second)
	}
	for _, every := range p.reevaluate {
		if every > 0 && every/4 < d {
			d = max(every/4, time.Second)
		}
	}
	if every := p.escalate / 4; every > 0 && every < d { // an escalation is at most a quarter of escalation.after late
		d = max(every, time.Second)
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

const (
	coalesce   = 5 * time.Millisecond
	drainBatch = 256
	// drainBatchBytes bounds the bodies read from the inbox at once; a body
	// larger than that is read alone.
	drainBatchBytes = 4 << 20
	// partAlerts bounds the alerts one commit folds in: whole notifications
	// up to it together, a larger one in parts of it. A storm's transaction,
	// and the memory it takes, stay the size of a part. Measured: 5,000 is
	// ~10% faster than 2,000 for a 50,000-alert storm, for ~20 MB of RSS.
	partAlerts = 5000
	// wholeDecodeBytes: bodies up to this are decoded at once; larger ones
	// are read a part at a time.
	wholeDecodeBytes = 1 << 20
	// maxProcessingTries: a notification whose processing fails
	// deterministically this many times, alone, is dead-lettered.
	maxProcessingTries = 3
)

// pending is one inbox entry about to be processed.
type pending struct {
	entry  store.InboxEntry
	msg    *webhook.Message      // decoded whole, or nil
	large  *webhook.Notification // read a part at a time, or nil
	action *actions.Action       // an action entry, or nil
	err    error                 // the body does not decode
}

func (e *pending) alerts() int {
	if e.msg != nil {
		return len(e.msg.Alerts)
	}
	return 0
}

// count is how many alerts the entry holds, read in parts or not.
func (e *pending) count() int {
	if e.large != nil {
		return e.large.CountAlerts()
	}
	return e.alerts()
}

// Drain processes every committed inbox entry not yet folded in. One commit
// folds in whole notifications of at most partAlerts alerts in all, or one
// part of a larger notification. When ctx ends it stops after the commit in
// hand; the rest waits in the inbox for the next start (a notification cut
// between parts is processed again from its start: its first parts are
// then redeliveries, which change nothing).
//
// A chunk that fails is retried one notification at a time; a notification
// that fails alone deterministically (it cannot be decoded or encoded, or
// processing it panics) is dead-lettered after maxProcessingTries and the
// rest flow on. Other failures (the disk) are retried until they pass,
// and /readyz says the pipeline is failing meanwhile.
func (p *Pipeline) Drain(ctx context.Context) error {
	if err := p.freshBook(); err != nil {
		return p.failing(err)
	}
	work := context.WithoutCancel(ctx) // a commit, once begun, is triaged whole
	for ctx.Err() == nil {
		p.mu.RLock()
		after := p.lastSeq
		p.mu.RUnlock()
		n := drainBatch
		if p.isolateThrough > after {
			n = 1
		}
		entries, err := p.store.ReadInbox(after, n, drainBatchBytes)
		if err != nil {
			return p.failing(err)
		}
		if len(entries) == 0 {
			// Idle: delete what is processed, unless appends already did.
			if err := p.store.TrimInbox(after); err != nil {
				p.log.Warn("trimming inbox", "err", err) // harmless: entries ≤ lastSeq are skipped
			}
			p.progressed()
			p.healthMu.Lock()
			p.idle = true
			p.healthMu.Unlock()
			return nil
		}
		chunk := p.prepare(entries)
		err = p.process(ctx, work, chunk)
		if err == nil {
			p.progressed()
			continue
		}
		if len(chunk) > 1 {
			p.isolateThrough = chunk[len(chunk)-1].entry.Seq
			p.log.Warn("processing notifications failed; retrying them one at a time",
				"from_seq", chunk[0].entry.Seq, "to_seq", p.isolateThrough, "err", err)
			continue
		}
		if dead, derr := p.giveUp(chunk[0], err); derr != nil {
			return p.failing(fmt.Errorf("%w (and dead-lettering it failed: %v)", err, derr))
		} else if dead {
			p.progressed()
			continue
		}
		return p.failing(err)
	}
	return nil
}

// prepare decodes what entries it can and keeps those one commit takes:
// small notifications up to partAlerts alerts in all, or a large one alone.
func (p *Pipeline) prepare(entries []store.InboxEntry) []*pending {
	var out []*pending
	total := 0
	for _, e := range entries {
		pe := &pending{entry: e}
		switch msg := p.cachedDecoded(e.Seq); {
		case e.Kind == store.EntryAction:
			if pe.action, pe.err = actions.Decode(e.Body); pe.err != nil {
				pe.err = &badAction{pe.err}
			}
		case msg != nil:
			pe.msg = msg
		case len(e.Body) <= wholeDecodeBytes:
			pe.msg, pe.err = webhook.DecodeMessage(e.Body)
		default:
			pe.large, pe.err = webhook.ParseHeader(e.Body)
		}
		alone := pe.err != nil || pe.large != nil || pe.action != nil || pe.alerts() > partAlerts
		if len(out) > 0 && (alone || total+pe.alerts() > partAlerts) {
			break
		}
		out = append(out, pe)
		total += pe.alerts()
		if alone {
			break
		}
	}
	return out
}

// process folds chunk into the book and commits it. Whatever goes wrong
// leaves the book as the store has it: a failed commit reloads it, and so
// does a panic, which may have left it half changed.
func (p *Pipeline) process(ctx, work context.Context, chunk []*pending) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		p.mu.RLock()
		done := p.lastSeq >= chunk[len(chunk)-1].entry.Seq
		p.mu.RUnlock()
		if done {
			// After its commit: the chunk is processed; what panicked was
			// bookkeeping, and dead-lettering it would process it twice.
			p.log.Error("panic after a commit", "panic", r, "stack", string(debug.Stack()))
			return
		}
		err = &processingPanic{value: r, stack: debug.Stack()}
		p.restoreBook()
	}()
	if first := chunk[0]; first.action != nil {
		return p.applyAction(first)
	}
	if first := chunk[0]; len(chunk) == 1 && (first.err != nil || first.large != nil || first.alerts() > partAlerts) {
		return p.processInParts(ctx, work, first)
	}
	units := make([]unit, len(chunk))
	for i, pe := range chunk {
		units[i] = unit{receivedAt: pe.entry.ReceivedAt, msg: pe.msg, complete: pe.msg.TruncatedAlerts == 0 && !pe.entry.Replayed}
	}
	last := chunk[len(chunk)-1].entry.Seq
	// Before apply publishes lastSeq: once a reader sees the chunk
	// processed, nothing of it is left in the cache. (If apply fails the
	// retry decodes from the inbox.) One evaluation per commit, at the time
	// its last notification arrived (replays after a crash measure the same
	// instant): every query and probe runs once for all its notifications.
	p.forgetDecoded(last)
	return p.fold(work, signal.NewEvaluation(units[len(units)-1].receivedAt), units, last, nil)
}

// processInParts folds one large notification in, partAlerts at a time,
// in one evaluation: every query and probe runs once for all its parts.
// Each service's most severe firing alert is folded in first, so its
// incident opens at the severity the whole notification gives it, instead
// of opening lower and escalating a part later. Only the last part advances
// lastSeq.
func (p *Pipeline) processInParts(ctx, work context.Context, pe *pending) error {
	if pe.err != nil {
		return pe.err
	}
	header, open := partsOf(pe)
	ev := signal.NewEvaluation(pe.entry.ReceivedAt)
	lead, err := p.leadingAlerts(work, ev, open)
	if err != nil {
		return err
	}
	src := &partSource{open: open, lead: lead}
	if lead == nil {
		src.phase = 1 // the natural order already opens each incident at its severity
	}
	diagnosed := map[string]bool{} // a service is diagnosed once, for its first (most severe) part
	part, err := src.part(partAlerts)
	for first := true; ; first = false {
		if err != nil {
			return err
		}
		following, nextErr := src.part(partAlerts)
		lastPart := nextErr == nil && len(following) == 0
		msg := *header
		msg.Alerts = part
		u := unit{receivedAt: pe.entry.ReceivedAt, msg: &msg, continues: !first, complete: lastPart && header.TruncatedAlerts == 0 && !pe.entry.Replayed}
		seq := uint64(0)
		if lastPart {
			p.forgetDecoded(pe.entry.Seq)
			seq = pe.entry.Seq
		}
		if err := p.fold(work, ev, []unit{u}, seq, diagnosed); err != nil {
			return err
		}
		if lastPart {
			return nil
		}
		if ctx.Err() != nil {
			return nil // the notification is processed again from its start
		}
		p.progressed()
		part, err = following, nextErr
	}
}

// partsOf returns a notification's header and a way to read its alerts
// from the first, as often as needed.
func partsOf(pe *pending) (*webhook.Message, func() func(int) ([]template.Alert, error)) {
	if pe.large != nil {
		return &pe.large.Message, func() func(int) ([]template.Alert, error) { return pe.large.Alerts().Next }
	}
	return pe.msg, func() func(int) ([]template.Alert, error) {
		rest := pe.msg.Alerts
		return func(n int) ([]template.Alert, error) {
			part := rest[:min(n, len(rest))]
			rest = rest[len(part):]
			return part, nil
		}
	}
}

// leadingAlerts classifies every firing alert of a notification and returns
// the index of each service's most severe one, or nil when reading in order
// already puts it in the first part that touches its service.
func (p *Pipeline) leadingAlerts(work context.Context, ev *signal.Evaluation, open func() func(int) ([]template.Alert, error)) (map[int]bool, error) {
	type best struct {
		index, part, firstPart int
		severity               severity.Level
	}
	byService := map[string]*best{}
	next, index := open(), 0
	for part := 0; ; part++ {
		alerts, err := next(partAlerts)
		if err != nil {
			return nil, err
		}
		if len(alerts) == 0 {
			break
		}
		var firing []*template.Alert
		for i := range alerts {
			if alerts[i].Status == incident.Firing {
				firing = append(firing, &alerts[i])
			}
		}
		if len(p.triager.Sources) > 0 && len(firing) > 0 {
			p.triager.Measure(work, ev, firing)
		}
		for i := range alerts {
			a := &alerts[i]
			if a.Status == incident.Firing {
				var prev *severity.Decision
				if known, _ := p.book.Firing(webhook.OccurrenceKey(a)); known != nil {
					prev = &known.Decision
				}
				r := p.triager.Classify(work, ev, a, prev)
				b := byService[r.Service]
				switch {
				case b == nil:
					byService[r.Service] = &best{index: index, part: part, firstPart: part, severity: r.Decision.Severity}
				case r.Decision.Severity < b.severity:
					b.index, b.part, b.severity = index, part, r.Decision.Severity
				}
			}
			index++
		}
	}
	lead := map[int]bool{}
	inOrder := true
	for _, b := range byService {
		lead[b.index] = true
		inOrder = inOrder && b.part == b.firstPart
	}
	if inOrder {
		return nil, nil
	}
	return lead, nil
}

// partSource reads a notification's alerts in parts: first the leading
// alerts (phase 0), then the others (phase 1).
type partSource struct {
	open  func() func(int) ([]template.Alert, error)
	lead  map[int]bool
	phase int
	next  func(int) ([]template.Alert, error)
	index int
}

func (s *partSource) part(size int) ([]template.Alert, error) {
	var out []template.Alert
	for len(out) < size && s.phase < 2 {
		if s.next == nil {
			s.next, s.index = s.open(), 0
		}
		alerts, err := s.next(size - len(out))
		if err != nil {
			return nil, err
		}
		if len(alerts) == 0 {
			s.phase++
			s.next = nil
			continue
		}
		for _, a := range alerts {
			if s.lead[s.index] == (s.phase == 0) {
				out = append(out, a)
			}
			s.index++
		}
	}
	return out, nil
}

// unit is one notification, or one part of a large one, to fold in.
type unit struct {
	receivedAt time.Time
	msg        *webhook.Message // its header, and the alerts of this part
	continues  bool             // a later part of the notification of the unit before
	complete   bool             // lists every alert of its group (nothing truncated; the last part)
}

// fold triages units in ev, folds them into the book and commits them,
// with lastSeq (0: the inbox position does not advance) in one transaction.
// Services in diagnosed (nil: none) are not diagnosed again; those
// diagnosed now are added.
func (p *Pipeline) fold(work context.Context, ev *signal.Evaluation, units []unit, lastSeq uint64, diagnosed map[string]bool) error {
	if len(units) == 0 {
		return nil
	}
	beats := map[string]time.Time{}
	for i := range units {
		u := &units[i]
		var beat bool
		am := heartbeat.NormalizeURL(u.msg.ExternalURL)
		if u.msg, beat = p.quiet(u.msg); beat && am != "" && u.receivedAt.After(beats[am]) {
			beats[am] = u.receivedAt
		}
	}
	priors := make([][]prior, len(units))
	var undecided []*template.Alert
	for i, u := range units {
		priors[i] = p.priors(u.msg)
		for j, pr := range priors[i] {
			if !pr.reuse && u.msg.Alerts[j].Status == incident.Firing {
				undecided = append(undecided, &u.msg.Alerts[j])
			}
		}
	}
	if len(undecided) > 0 && len(p.triager.Sources) > 0 {
		start := time.Now()
		p.triager.Measure(work, ev, undecided)
		p.metrics.EnrichmentDuration.WithLabelValues("signals").Observe(time.Since(start).Seconds())
	}
	batches := make([]incident.Batch, 0, len(units))
	fresh := make([]map[string]freshAlert, 0, len(units))
	for i, u := range units {
		b, f := p.classify(work, ev, u.msg, priors[i], u.receivedAt)
		b.Complete, b.Continues = u.complete, u.continues
		batches, fresh = append(batches, b), append(fresh, f)
	}
	if diagnosed != nil {
		for _, f := range fresh {
			for service := range f {
				if diagnosed[service] {
					delete(f, service)
				}
				diagnosed[service] = true
			}
		}
	}
	// The whole chunk's diagnoses at once: each may wait for a pod's log.
	for i, ds := range p.diagnose(work, ev, fresh) {
		batches[i].Diagnoses = ds
	}
	return p.apply(lastSeq, batches, beats)
}

// quiet returns msg without the alerts that never form incidents (the
// heartbeat, severity="none"), and whether the heartbeat fires in it. msg
// itself is left as it is: the intake's cache may hold it.
func (p *Pipeline) quiet(msg *webhook.Message) (*webhook.Message, bool) {
	n, beat := 0, false
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		if heartbeat.Quiet(a.Labels, p.heartbeat) {
			n++
			beat = beat || (a.Status == incident.Firing && a.Labels["alertname"] == p.heartbeat)
		}
	}
	if n == 0 {
		return msg, false
	}
	out := *msg
	out.Alerts = make(template.Alerts, 0, len(msg.Alerts)-n)
	for _, a := range msg.Alerts {
		if !heartbeat.Quiet(a.Labels, p.heartbeat) {
			out.Alerts = append(out.Alerts, a)
		}
	}
	return &out, beat
}

// processingPanic is a panic while processing a notification: deterministic
// for that input, so it is dead-lettered rather than retried forever.
type processingPanic struct {
	value any
	stack []byte
}

func (e *processingPanic) Error() string { return fmt.Sprintf("processing panicked: %v", e.value) }

// deterministic reports whether err will happen again for the same input:
// the body does not decode, a value cannot be encoded or stored, or the code
// panicked. Anything else (I/O) may pass on a retry.
func deterministic(err error) bool {
	var in *webhook.InputError
	var pp *processingPanic
	var unsupported *json.UnsupportedValueError
	var unsupportedType *json.UnsupportedTypeError
	var marshaler *json.MarshalerError
	var ba *badAction
	return errors.As(err, &in) || errors.As(err, &pp) || errors.As(err, &ba) || errors.As(err, &unsupported) ||
		errors.As(err, &unsupportedType) || errors.As(err, &marshaler) ||
		errors.Is(err, store.ErrPermanent)
}

// giveUp dead-letters a notification that failed alone deterministically,
// once it has failed maxProcessingTries times (an undecodable one at once),
// advancing the inbox past it in the same transaction.
func (p *Pipeline) giveUp(pe *pending, err error) (bool, error) {
	seq := pe.entry.Seq
	if p.failedSeq != seq {
		p.failedSeq, p.failedTries = seq, 0
	}
	p.failedTries++
	var in *webhook.InputError
	if !deterministic(err) || (p.failedTries < maxProcessingTries && !errors.As(err, &in)) {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := &store.DeadLetter{
		Kind: store.DeadNotification, Queue: store.InboxQueue, Error: err.Error(), Attempts: p.failedTries,
		At: p.now().UTC(), Seq: seq, ReceivedAt: pe.entry.ReceivedAt, Alerts: pe.count(), Payload: pe.entry.Body,
	}
	if err := p.commit(&store.Commit{LastSeq: seq, DeadLetters: []*store.DeadLetter{d}}); err != nil {
		return false, err
	}
	attrs := []any{"seq", seq, "dead_letter", d.ID, "attempts", d.Attempts, "err", err}
	if pp, ok := errors.AsType[*processingPanic](err); ok {
		attrs = append(attrs, "stack", string(pp.stack))
	}
	p.log.Error("notification dead-lettered: it cannot be processed; GET /api/deadletters lists it", attrs...)
	p.forgetDecoded(seq)
	p.failedSeq, p.failedTries = 0, 0
	return true, nil
}

// retryWait paces retries: a notification that fails alone in a way that
// will recur waits 1 s, then 4 s, so a panic that a passing condition caused
// gets a few seconds to clear before the notification is dead-lettered;
// other failures (the disk) are retried every second until they pass.
func (p *Pipeline) retryWait(err error) time.Duration {
	if !deterministic(err) {
		return time.Second
	}
	n := max(p.failedTries, 1)
	return time.Duration(n*n) * time.Second
}

// failing records that processing is stuck on err, for /readyz.
func (p *Pipeline) failing(err error) error {
	p.healthMu.Lock()
	p.lastError, p.lastErrorAt = err, p.clock()
	p.healthMu.Unlock()
	return err
}

// progressed records that the pipeline is not stuck.
func (p *Pipeline) progressed() {
	p.healthMu.Lock()
	p.lastError, p.lastProgress = nil, p.clock()
	p.healthMu.Unlock()
}

// stallAfter: pending work with no commit for this long makes /readyz not
// ready even without an error (a hung step).
const stallAfter = 2 * time.Minute

// Stuck says why the pipeline makes no progress on pending work, or "".
func (p *Pipeline) Stuck() string {
	if !p.leading.Load() {
		return "" // the leader processes
	}
	waiting := p.Pending()
	if waiting == 0 {
		return ""
	}
	p.healthMu.Lock()
	defer p.healthMu.Unlock()
	if p.lastError != nil {
		return fmt.Sprintf("processing fails since %s, %d notifications waiting: %v", p.lastErrorAt.UTC().Format(time.RFC3339), waiting, p.lastError)
	}
	if since := p.clock().Sub(p.lastProgress); since > stallAfter {
		return fmt.Sprintf("no notification processed for %s, %d waiting", since.Round(time.Second), waiting)
	}
	return ""
}

// freshBook reads the state again if a failed commit left the book
// possibly ahead of the store (see restoreLocked).
func (p *Pipeline) freshBook() error {
	if !p.stale.Load() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.restoreLocked(); err != nil {
		return fmt.Errorf("reading the state again after a failed commit: %w", err)
	}
	return nil
}

// restoreBook rebuilds the book from the store after a failed step, so
// memory never runs ahead of disk.
func (p *Pipeline) restoreBook() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.restoreLocked(); err != nil {
		p.log.Error("reloading state after a failed step", "err", err)
	}
}

func (p *Pipeline) restoreLocked() error {
	ls, err := p.store.LoadState()
	if err != nil {
		// The book may now be ahead of the store (a commit failed and so
		// did this read: a connection cut does both): nothing may be
		// processed or committed from it until a reload succeeds.
		p.stale.Store(true)
		return err
	}
	p.stale.Store(false)
	p.book = p.newBook()
	p.book.Restore(ls.Incidents, ls.Alerts, ls.Tombstones)
	p.lastSeq = ls.LastSeq
	p.beats = heartbeat.New(p.missingAfter, ls.Heartbeats, p.started)
	return nil
}

// classify decides every alert of a notification, and returns by service
// the most severe newly decided firing alert, for the diagnosis. Sources
// were asked beforehand (Measure): it reads their answers from ev.
func (p *Pipeline) classify(ctx context.Context, ev *signal.Evaluation, msg *webhook.Message, priors []prior, at time.Time) (incident.Batch, map[string]freshAlert) {
	b := incident.Batch{
		At:           at,
		GroupKey:     msg.GroupKey,
		ExternalURL:  msg.ExternalURL,
		Receiver:     msg.Receiver,
		Complete:     msg.TruncatedAlerts == 0,
		Observations: make([]incident.Observation, len(msg.Alerts)),
	}
	fresh := map[string]freshAlert{} // per unit: the most severe newly decided firing alert
	for i := range msg.Alerts {
		a, pr := &msg.Alerts[i], priors[i]
		// profile matters only where an alert opens or joins an incident:
		// a firing alert decided afresh (a reused one is already a member).
		service, unit, profile, decision := "", "", "", severity.Decision{}
		switch {
		case pr.reuse:
			service, unit, decision = pr.service, pr.unit, pr.known.Decision
		case a.Status != incident.Firing:
			// A resolution: its decision is kept for the record only.
			r := p.triager.ClassifyStatic(a)
			service, decision = r.Service, r.Decision
		default:
			// New, or redelivered with new annotations (templated values
			// change): decide afresh, from the previous decision if any.
			var prev *severity.Decision
			if pr.known != nil {
				prev = &pr.known.Decision
			}
			r := p.triager.Classify(ctx, ev, a, prev)
			service, decision = r.Service, r.Decision
			if r.Profile != nil {
				profile = r.Profile.Name
			}
			if service == "" {
				service, unit = GroupUnit(msg, a)
			}
			p.metrics.decided(decision)
			p.countPartial(ev, service, r.Failed)
			by := cmp.Or(unit, service)
			if f, ok := fresh[by]; a.Status == incident.Firing && (!ok || decision.Severity < f.decision.Severity) {
				fresh[by] = freshAlert{key: pr.key, alert: a, profile: r.Profile, decision: decision}
			}
		}
		if service == "" { // a resolution of an alert that names no service
			service, unit = GroupUnit(msg, a)
		}
		b.Observations[i] = incident.Observation{
			Service:  service,
			Unit:     unit,
			Profile:  profile,
			Decision: decision,
			Alert: incident.Alert{
				Key:          pr.key,
				Fingerprint:  a.Fingerprint,
				Name:         a.Labels["alertname"],
				Status:       a.Status,
				StartsAt:     a.StartsAt.UTC(),
				EndsAt:       a.EndsAt.UTC(),
				Labels:       a.Labels,
				Annotations:  a.Annotations,
				GeneratorURL: a.GeneratorURL,
			},
		}
		if a.Status == incident.Firing {
			b.Observations[i].Alert.EndsAt = time.Time{}
		}
	}
	return b, fresh
}

// prior is what the book already knows of one alert of a notification.
type prior struct {
	key     string          // the occurrence key
	known   *incident.Alert // the occurrence when it is already firing
	service string          // its incident's service
	unit    string          // and unit
	// reuse: Alertmanager resends groups, and an alert already firing with
	// the same annotations (its labels are in the key) keeps its decision;
	// fresh measured signals for open incidents are a re-evaluation's job.
	reuse bool
}

// priors looks up each alert of msg in the book, once per alert and chunk.
// The book is only written by the pipeline's goroutine, which calls this.
func (p *Pipeline) priors(msg *webhook.Message) []prior {
	out := make([]prior, len(msg.Alerts))
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		pr := prior{key: webhook.OccurrenceKey(a)}
		var inc *incident.Incident
		if pr.known, inc = p.book.Firing(pr.key); inc != nil {
			pr.service, pr.unit = inc.Service, inc.Unit
		}
		pr.reuse = pr.known != nil && a.Status == incident.Firing && maps.Equal(pr.known.Annotations, a.Annotations)
		out[i] = pr
	}
	return out
}

type freshAlert struct {
	key      string // occurrence key
	alert    *template.Alert
	profile  *rules.Service
	decision severity.Decision
}

// diagnose runs the enricher for each notification's fresh alerts (at most
// one per service), several at once, and returns the diagnoses in the same
// order. A diagnosis is memoised per service and alert in ev.
func (p *Pipeline) diagnose(ctx context.Context, ev *signal.Evaluation, fresh []map[string]freshAlert) []map[string]incident.Diagnosed {
	out := make([]map[string]incident.Diagnosed, len(fresh))
	if p.enricher == nil {
		return out
	}
	type job struct {
		notification int
		service      string
		alert        freshAlert
		made         *diagnosis.Diagnosis
	}
	var jobs []*job
	for i, byService := range fresh {
		for _, service := range slices.Sorted(maps.Keys(byService)) {
			jobs = append(jobs, &job{notification: i, service: service, alert: byService[service]})
		}
	}
	work := make([]func(), len(jobs))
	for i, j := range jobs {
		work[i] = func() {
			// Per alert: another notification of the chunk may name another
			// workload of the same service.
			j.made, _ = signal.Memo(ev, "diagnosis\x00"+j.service+"\x00"+j.alert.alert.Fingerprint, func() (*diagnosis.Diagnosis, error) {
				start := time.Now()
				d := p.enricher.Diagnose(ctx, ev, j.alert.alert, j.alert.profile, j.alert.decision)
				p.metrics.EnrichmentDuration.WithLabelValues("diagnosis").Observe(time.Since(start).Seconds())
				if d != nil && d.Snapshot != nil && len(d.Snapshot.Partial) > 0 {
					p.metrics.EnrichmentPartial.WithLabelValues("kubernetes").Inc()
				}
				return d, nil
			})
		}
	}
	runBounded(measureParallel, work)
	for _, j := range jobs {
		if j.made == nil {
			continue
		}
		if out[j.notification] == nil {
			out[j.notification] = map[string]incident.Diagnosed{}
		}
		out[j.notification][j.service] = incident.Diagnosed{AlertKey: j.alert.key, Diagnosis: j.made}
	}
	return out
}

// countPartial counts, once per service and evaluation, each source that
// could not answer.
func (p *Pipeline) countPartial(ev *signal.Evaluation, service string, failed []string) {
	for _, src := range failed {
		_, _ = ev.Do("partial\x00"+service+"\x00"+src, func() (any, error) {
			p.metrics.EnrichmentPartial.WithLabelValues(src).Inc()
			return nil, nil
		})
	}
}

// apply folds batches into the book and commits them with lastSeq in one
// transaction, with the heartbeats they carried (externalURL → arrival): a
// heartbeat resolves the silence before it. Readers never see state that is
// not yet durable.
func (p *Pipeline) apply(lastSeq uint64, batches []incident.Batch, beats map[string]time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	commit := &store.Commit{LastSeq: lastSeq, Receivers: p.receivers}
	for _, b := range batches {
		commit.Changes = append(commit.Changes, p.book.Apply(b))
	}
	for _, url := range slices.Sorted(maps.Keys(beats)) {
		at := beats[url]
		since, recorded := p.beats.Beat(url, at)
		if !recorded {
			continue
		}
		if commit.Heartbeats == nil {
			commit.Heartbeats = map[string]time.Time{}
		}
		commit.Heartbeats[url] = at
		if a, _ := p.book.Firing(heartbeat.Key(url, since)); a != nil && !since.IsZero() {
			commit.Changes = append(commit.Changes, p.book.Apply(p.beats.Resolved(url, since, at)))
		}
	}
	return p.commit(commit)
}

// Sweep resolves stale alerts and prunes old history.
func (p *Pipeline) Sweep() error {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	commit := &store.Commit{Receivers: p.receivers}
	// Silent Alertmanagers first: their incidents are then not stale.
	for _, b := range p.beats.Due(now) {
		commit.Changes = append(commit.Changes, p.book.Apply(b))
	}
	// Alertmanagers silent for longer than the retention are forgotten,
	// their incident resolved: retired or renamed ones page for a week, not
	// for ever, and the switch's state follows the Alertmanagers that exist.
	forgotten := p.beats.Forget(now, p.retention)
	for _, url := range slices.Sorted(maps.Keys(forgotten)) {
		since := forgotten[url]
		if a, _ := p.book.Firing(heartbeat.Key(url, since)); a != nil {
			commit.Changes = append(commit.Changes, p.book.Apply(p.beats.Resolved(url, since, now)))
		}
		commit.ForgetHeartbeats = append(commit.ForgetHeartbeats, url)
		p.log.Warn("dead man's switch: forgetting an Alertmanager silent for longer than incidents.retention; its incident is resolved",
			"alertmanager", url, "last_heartbeat", since, "retention", p.retention)
	}
	commit.Changes = append(commit.Changes, p.book.SweepStale(now, p.staleAfter), p.book.EscalationDue(now, p.escalate),
		p.book.StatusDue(now, p.statusEvery), p.book.CloseQuiet(now, p.monitorFor))
	if p.retention > 0 {
		commit.PrunedIncidents, commit.PrunedTombstones = p.book.Prune(now, p.retention)
		if oldest := p.store.OldestDeadLetter(); !oldest.IsZero() && oldest.Before(now.Add(-p.retention)) {
			commit.PruneDeadBefore = now.Add(-p.retention)
		}
	}
	empty := len(commit.PrunedIncidents) == 0 && len(commit.PrunedTombstones) == 0 && commit.PruneDeadBefore.IsZero() && len(commit.ForgetHeartbeats) == 0
	for _, ch := range commit.Changes {
		empty = empty && ch.Empty()
	}
	if empty {
		return nil
	}
	return p.commit(commit)
}

// commit persists with p.mu held. On failure the in-memory book, already
// changed, is rebuilt from the store so memory never runs ahead of disk.
func (p *Pipeline) commit(c *store.Commit) error {
	c.Takes = p.takes
	noteQueued(c)
	start := time.Now()
	err := p.store.Apply(c)
	p.metrics.CommitDuration.WithLabelValues("state").Observe(time.Since(start).Seconds())
	if err != nil {
		if lerr := p.restoreLocked(); lerr != nil {
			return fmt.Errorf("%w (and reloading state failed: %v)", err, lerr)
		}
		return err
	}
	if c.LastSeq > 0 {
		p.lastSeq = c.LastSeq
		p.store.MarkProcessed(c.LastSeq) // the next append may delete them from the inbox
	}
	events := 0
	for _, ch := range c.Changes {
		events += len(ch.Events)
		for _, ev := range ch.Events {
			p.metrics.IncidentEvents.WithLabelValues(string(ev.Kind)).Inc()
		}
	}
	p.updateGaugesLocked()
	if events > 0 {
		p.onEvents()
		if p.onCommitted != nil {
			p.onCommitted(c.Changes)
		}
	}
	return nil
}

// noteQueued puts each event queued for the receivers on its incident's
// timeline, in the same transaction: every event's incident is among the
// incidents the commit writes.
func noteQueued(c *store.Commit) {
	for _, ch := range c.Changes {
		if len(ch.Events) == 0 {
			continue
		}
		byID := make(map[string]*incident.Incident, len(ch.Incidents))
		for _, inc := range ch.Incidents {
			byID[inc.ID] = inc
		}
		for _, ev := range ch.Events {
			if inc := byID[ev.Incident.ID]; inc != nil {
				inc.Note(ev.At, "update", "queued "+string(ev.Kind)+" for the receivers")
			}
		}
	}
}

func (p *Pipeline) updateGauges() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	p.updateGaugesLocked()
}

func (p *Pipeline) updateGaugesLocked() {
	counts := p.book.CountOpen()
	for s := 1; s <= 4; s++ {
		p.metrics.IncidentsOpen.WithLabelValues(strconv.Itoa(s)).Set(float64(counts[s]))
	}
	p.metrics.InboxPending.Set(float64(p.store.InboxSeq() - p.lastSeq))
	for url, at := range p.beats.Last() {
		p.metrics.HeartbeatLastSeen.WithLabelValues(url).Set(float64(at.UnixNano()) / 1e9)
	}
}
