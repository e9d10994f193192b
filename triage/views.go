package triage

import (
	"github.com/amtriage/amtriage/view"
	"time"

	"github.com/amtriage/amtriage/incident"
)

// OpenIncidents snapshots the open incidents, most severe first.
func (p *Pipeline) OpenIncidents() []view.Incident {
	out, _ := p.OpenIncidentsPage(0)
	return out
}

// OpenIncidentsPage snapshots at most limit (0: all) open incidents, most
// severe first, and how many are open.
func (p *Pipeline) OpenIncidentsPage(limit int) ([]view.Incident, int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	open := p.book.Open()
	if limit > 0 && len(open) > limit {
		open = open[:limit]
	}
	out := make([]view.Incident, 0, len(open))
	for _, inc := range open {
		out = append(out, view.Of(inc))
	}
	return out, p.book.OpenCount()
}

// IncidentsPage snapshots at most limit (0: all) incidents in state (one
// of incident.States, or "all"), most severe first, and how many there are.
func (p *Pipeline) IncidentsPage(state string, limit int) ([]view.Incident, int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	all := p.book.Incidents(state)
	total := len(all)
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	out := make([]view.Incident, 0, len(all))
	for _, inc := range all {
		out = append(out, view.Of(inc))
	}
	return out, total
}

// IncidentDetail returns one incident kept (not yet pruned) with its timeline.
func (p *Pipeline) IncidentDetail(id string) (view.Detail, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return view.Detail{}, false
	}
	return view.Detail{Incident: view.Of(inc), Timeline: append([]incident.Entry{}, inc.Timeline...), TimelineDropped: inc.TimelineDropped}, true
}

// Incident returns one incident (open or recently resolved) by id.
func (p *Pipeline) Incident(id string) (view.Incident, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return view.Incident{}, false
	}
	return view.Of(inc), true
}

// CurrentEvent is an event that tells a receiver the incident as it is now:
// opened while it fires, resolved once it has. It is what replaying one of
// its dead-lettered events sends, rather than the old snapshot, which could
// page for an incident resolved since.
func (p *Pipeline) CurrentEvent(id string, at time.Time) (incident.Event, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return incident.Event{}, false
	}
	kind := incident.Opened
	switch {
	case inc.State == incident.StateVerifying:
		// Alerts resolved, recovery not verified: the page stands, and
		// receivers are not told it resolved yet.
		kind = incident.VerifyPending
	case inc.Status == incident.Resolved:
		kind = incident.ResolvedEvent
	}
	return p.book.Snapshot(kind, at, inc), true
}

// Pending is the number of acknowledged notifications not yet processed.
func (p *Pipeline) Pending() uint64 {
	if !p.leading.Load() {
		return 0 // a standby processes nothing: the leader's count is the one
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.store.InboxSeq() - p.lastSeq
}
