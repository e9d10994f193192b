package triage

import (
	"cmp"
	"context"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/heartbeat"
	"github.com/amtriage/amtriage/triage/verify"
)

// Settings are the parts of a Pipeline a configuration reload may change.
// The incident book, the inbox and the outbox are not among them: a reload
// drops no work.
type Settings struct {
	Triager   *Triager
	Enricher  Enricher
	Receivers []string // outbox queues new events fan out to
	// Takes says which of them take an event kind (nil: all take all).
	Takes       func(receiver string, kind incident.EventKind) bool
	StaleAfter  time.Duration
	Retention   time.Duration
	StatusEvery map[severity.Level]time.Duration
	Reevaluate  map[severity.Level]time.Duration
	// EscalateAfter is escalation.after (0: off).
	EscalateAfter time.Duration
	// Heartbeat and MissingAfter are the dead man's switch (zero: defaults).
	Heartbeat    string
	MissingAfter time.Duration
	// The lifecycle after the page (zero: defaults; nil Verifier: no checks).
	MonitorFor, VerifyEvery, VerifyTimeout time.Duration
	Verifier                               *verify.Verifier
}

type reconfig struct {
	s    Settings
	done chan struct{}
}

// Reconfigure applies s between two batches: Run is the only reader of
// these settings, so it takes them itself, and a batch in hand finishes
// with the settings it began with. It waits until they apply or ctx ends
// (Run must be running).
func (p *Pipeline) Reconfigure(ctx context.Context, s Settings) error {
	rc := reconfig{s: s, done: make(chan struct{})}
	select {
	case p.reconf <- rc:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-rc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// applySettings runs on Run's goroutine.
func (p *Pipeline) applySettings(s Settings) {
	p.triager, p.enricher, p.receivers, p.takes = s.Triager, s.Enricher, s.Receivers, s.Takes
	p.staleAfter, p.retention = s.StaleAfter, s.Retention
	p.statusEvery, p.reevaluate = s.StatusEvery, s.Reevaluate
	p.escalate = s.EscalateAfter
	p.verifier = s.Verifier
	p.setLifecycle(s.MonitorFor, s.VerifyEvery, s.VerifyTimeout)
	hb, missing := cmp.Or(s.Heartbeat, rules.DefaultHeartbeatName), cmp.Or(s.MissingAfter, rules.DefaultMissingAfter)
	if hb != p.heartbeat || missing != p.missingAfter {
		// The last-seen times stay: a reload does not reset the clock.
		p.mu.Lock()
		p.heartbeat, p.missingAfter = hb, missing
		p.beats = heartbeat.New(missing, p.beats.Last(), p.started)
		p.mu.Unlock()
	}
}
