package triage

import (
	"cmp"
	"context"
	"math"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/triage/closure"
	"github.com/amtriage/amtriage/triage/heartbeat"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/triage/verify"
)

// setLifecycle takes incidents.monitor_for, verify_every and verify_timeout
// (0: the defaults).
func (p *Pipeline) setLifecycle(monitorFor, verifyEvery, verifyTimeout time.Duration) {
	p.monitorFor = cmp.Or(monitorFor, rules.DefaultMonitorFor)
	p.verifyEvery = cmp.Or(verifyEvery, rules.DefaultVerifyEvery)
	p.verifyTimeout = cmp.Or(verifyTimeout, rules.DefaultVerifyTimeout)
}

// newBook is an empty book with the pipeline's lifecycle hooks. They read
// the settings, which change only on Run's goroutine, the book's writer.
func (p *Pipeline) newBook() *incident.Book {
	b := incident.NewBook()
	// The dead man's switch has nothing to verify and nothing to watch: a
	// new silence is a new incident.
	b.CloseAtOnce = heartbeat.Owns
	b.Verifies = func(inc *incident.Incident) bool {
		return p.verifier.Can(p.profile(inc.Service), inc.Where)
	}
	// Moving on at once (nothing to check with): nothing to measure either.
	b.Closure = func(inc *incident.Incident, at time.Time) string {
		return closure.Message(p.closureInput(verifyingOf(inc), at, inc.Verification, verify.Result{},
			closure.Impact{Note: "nothing to measure it with"}))
	}
	return b
}

// profile is the service profile an incident's service names, or nil. The
// index is rebuilt when a reload brings another configuration.
func (p *Pipeline) profile(service string) *rules.Service {
	if p.triager == nil || p.triager.Config == nil {
		return nil
	}
	p.profilesMu.Lock() // the book's hooks and a round started by a test may overlap
	defer p.profilesMu.Unlock()
	if cfg := p.triager.Config; p.profilesOf != cfg {
		p.profiles = make(map[string]*rules.Service, len(cfg.Services))
		for i := range cfg.Services {
			if s := &cfg.Services[i]; p.profiles[s.Name] == nil {
				p.profiles[s.Name] = s // the first of a name, as a linear search finds
			}
		}
		p.profilesOf = cfg
	}
	return p.profiles[service]
}

type verifyingIncident struct {
	id, service string
	where       map[string]string
	since       time.Time
	// For the closure message.
	started, ended time.Time
	diagnosis      *diagnosis.Diagnosis // immutable once made
	peak           severity.Level
}

func verifyingOf(inc *incident.Incident) verifyingIncident {
	return verifyingIncident{id: inc.ID, service: inc.Service, where: inc.Where, since: inc.VerifyingSince,
		started: inc.StartedAt, ended: inc.ResolvedAt, diagnosis: inc.Diagnosis, peak: inc.PeakSeverity}
}

// closureInput is what the closure message of d says, verified by r at at.
func (p *Pipeline) closureInput(d verifyingIncident, at time.Time, status string, r verify.Result, impact closure.Impact) closure.Input {
	in := closure.Input{Started: d.started, Ended: d.ended, Diagnosis: d.diagnosis, After: r.Snapshot, AfterAt: at,
		Impact: impact, Status: status, MonitorFor: p.monitorFor, PeakSeverity: d.peak}
	if d.diagnosis != nil {
		in.Before = d.diagnosis.Snapshot
	}
	return in
}

// impact measures the failed requests over d, for its closure message.
func (p *Pipeline) impact(ctx context.Context, ev *signal.Evaluation, svc *rules.Service, d verifyingIncident) closure.Impact {
	if p.verifier == nil || p.verifier.Impact == nil {
		return closure.Impact{Note: "Prometheus not configured"}
	}
	failed, ok, why := p.verifier.Impact.FailedRequests(ctx, ev, svc, d.started, d.ended)
	if !ok {
		return closure.Impact{Note: why}
	}
	return closure.Impact{Known: true, Failed: failed, Minutes: int(math.Round(d.ended.Sub(d.started).Minutes()))}
}

// Verify runs one verification round over every incident in verifying
// whose re-check is due (incidents.verify_every): one evaluation for all of
// them, so incidents of one service ask each source once. Like Reevaluate
// it runs on the pipeline's goroutine: checks without the lock, then one
// commit.
func (p *Pipeline) Verify(ctx context.Context) error {
	now := p.now()
	p.mu.RLock()
	var due []verifyingIncident
	for _, inc := range p.book.Verifying() {
		if inc.LastVerified.IsZero() || now.Sub(inc.LastVerified) >= p.verifyEvery {
			due = append(due, verifyingOf(inc))
		}
	}
	p.mu.RUnlock()
	if len(due) == 0 {
		return nil
	}
	vs := p.verifyRound(ctx, signal.NewEvaluation(now), now, due)
	if ctx.Err() != nil {
		return nil // shutting down: checks cut short prove nothing
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commit(&store.Commit{Receivers: p.receivers, Changes: []*incident.Changes{p.book.Verify(now, vs)}})
}

// verifyRound checks each incident, measureParallel at a time, in ev.
func (p *Pipeline) verifyRound(ctx context.Context, ev *signal.Evaluation, now time.Time, due []verifyingIncident) []incident.Verification {
	vs := make([]incident.Verification, len(due))
	work := make([]func(), len(due))
	for i, d := range due {
		svc := p.profile(d.service) // here: the workers share no index
		work[i] = func() {
			v := incident.Verification{IncidentID: d.id}
			if !p.verifier.Can(svc, d.where) { // the configuration changed meanwhile
				v.Done, v.Result = true, incident.NoSource
				vs[i] = v
				return
			}
			r := p.verifier.Verify(ctx, ev, svc, d.where)
			for _, c := range r.Checks {
				v.Checks = append(v.Checks, c.String())
			}
			switch {
			case r.Verified():
				v.Done, v.Result = true, "resolved, verified: "+passed(r)
			case now.Sub(d.since) >= p.verifyTimeout:
				v.Done, v.Result = true, "resolved, unverified: "+r.Why()
			default:
				v.Pending = r.Why()
			}
			if v.Done {
				v.Closure = closure.Message(p.closureInput(d, now, v.Result, r, p.impact(ctx, ev, svc, d)))
			}
			vs[i] = v
		}
	}
	runBounded(measureParallel, work)
	return vs
}

// passed lists the checks that passed, for the verification result.
func passed(r verify.Result) string {
	var out []verify.Check
	for _, c := range r.Checks {
		if c.Outcome == verify.Passed {
			out = append(out, c)
		}
	}
	return verify.Result{Checks: out}.Summary()
}
