package triage

import (
	"context"
	"maps"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/triage/heartbeat"
	"github.com/amtriage/amtriage/triage/signal"
)

// Reevaluate triages again, with fresh signals, the firing alerts of every
// open incident whose re-evaluation is due (Sev 1 every 2 min, Sev 2 every
// 5 min by default). Severity may rise or drop; either is announced. Two
// measurements of the error ratio that do not fall tell that the service is
// staying broken (rule 8).
//
// It must run on the pipeline's goroutine, the book's only writer: the
// queries and probes run without the lock, then one commit folds them in.
func (p *Pipeline) Reevaluate(ctx context.Context) error {
	if len(p.reevaluate) == 0 || len(p.triager.Sources) == 0 {
		return nil // nothing could measure anything new
	}
	now := p.now()
	due := p.dueForReevaluation(now)
	if len(due) == 0 {
		return nil
	}
	ev := signal.NewEvaluation(now)
	rs := make([]incident.Reevaluation, 0, len(due))
	// measureParallel incidents at a time: their sources are asked at once,
	// and between groups new notifications go first (the rest stay due and
	// are re-evaluated at the next tick).
	for from := 0; from < len(due); from += measureParallel {
		if from > 0 && len(p.wake) > 0 {
			due = due[:from]
			break
		}
		group := due[from:min(from+measureParallel, len(due))]
		var alerts []*template.Alert
		for _, inc := range group {
			for _, m := range inc.members {
				alerts = append(alerts, m.alert)
			}
		}
		start := time.Now()
		p.triager.Measure(ctx, ev, alerts)
		p.metrics.EnrichmentDuration.WithLabelValues("signals").Observe(time.Since(start).Seconds())
		fresh := map[string]freshAlert{} // an open incident per unit
		first := len(rs)
		for _, inc := range group {
			r := incident.Reevaluation{IncidentID: inc.id, Decisions: map[string]severity.Decision{}}
			for _, m := range inc.members {
				// Classify carries over what a failing source measured before,
				// so an outage of Prometheus does not announce a drop.
				res := p.triager.Classify(ctx, ev, m.alert, &m.prev)
				p.countPartial(ev, inc.service, res.Failed)
				d := res.Decision
				p.metrics.decided(d)
				r.Decisions[m.key] = d
				if f, ok := fresh[inc.unit]; !ok || d.Severity < f.decision.Severity {
					fresh[inc.unit] = freshAlert{key: m.key, alert: m.alert, profile: res.Profile, decision: d}
				}
			}
			rs = append(rs, r)
		}
		ds := p.diagnose(ctx, ev, []map[string]freshAlert{fresh})[0]
		for i, inc := range group {
			rs[first+i].Diagnosis = ds[inc.unit]
		}
	}
	if ctx.Err() != nil {
		return nil // shutting down: measurements cut short prove nothing
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.book.Reevaluate(now, rs)
	for _, inc := range due {
		outcome := "unchanged"
		if cur := p.book.Get(inc.id); cur != nil && cur.Status == incident.Firing {
			switch {
			case cur.Severity < inc.severity:
				outcome = "raised"
			case cur.Severity > inc.severity:
				outcome = "lowered"
			}
		}
		p.metrics.Reevaluations.WithLabelValues(outcome).Inc()
	}
	return p.commit(&store.Commit{Receivers: p.receivers, Changes: []*incident.Changes{ch}})
}

type dueIncident struct {
	id, service string
	unit        string // what the incident groups by (Incident.GroupedBy)
	severity    severity.Level
	members     []dueAlert
}

type dueAlert struct {
	key   string
	alert *template.Alert
	prev  severity.Decision
}

// dueForReevaluation copies what the re-evaluation needs, so the queries
// run without holding the lock.
func (p *Pipeline) dueForReevaluation(now time.Time) []dueIncident {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []dueIncident
	for _, inc := range p.book.DueForReevaluation(now, p.reevaluate) {
		if heartbeat.Owns(inc) {
			continue // the switch decides it; no source measures a heartbeat
		}
		d := dueIncident{id: inc.ID, service: inc.Service, unit: inc.GroupedBy(), severity: inc.Severity}
		for _, a := range inc.SortedAlerts() {
			if a.Status == incident.Firing {
				d.members = append(d.members, dueAlert{key: a.Key, alert: alertFor(a), prev: a.Decision})
			}
		}
		out = append(out, d)
	}
	return out
}

// alertFor rebuilds the alert as Alertmanager sent it, for the sources.
func alertFor(a *incident.Alert) *template.Alert {
	return &template.Alert{
		Status:       a.Status,
		Labels:       template.KV(maps.Clone(a.Labels)),
		Annotations:  template.KV(maps.Clone(a.Annotations)),
		StartsAt:     a.StartsAt,
		GeneratorURL: a.GeneratorURL,
		Fingerprint:  a.Fingerprint,
	}
}
