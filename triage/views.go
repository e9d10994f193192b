package triage

import (
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// IncidentView is an open incident as GET /api/incidents shows it.
type IncidentView struct {
	ID           string         `json:"id"`
	Service      string         `json:"service"`
	Title        string         `json:"title"`
	Status       string         `json:"status"`
	Severity     severity.Level `json:"severity"`
	PeakSeverity severity.Level `json:"peak_severity"`
	Rule         int            `json:"rule"`
	Reasons      []string       `json:"reasons"`
	// Acknowledged: who took the page (Slack, PagerDuty) and when.
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	AcknowledgedBy string    `json:"acknowledged_by,omitempty"`
	Started        time.Time `json:"started"`
	AlertsFiring   int       `json:"alerts_firing"`
	// LastEvaluated is when fresh signals were last gathered.
	LastEvaluated time.Time `json:"last_evaluated,omitzero"`
	// Diagnosis is the quick diagnosis: Kubernetes snapshot, verdict and,
	// after a recent bad rollout, the rollback command.
	Diagnosis *diagnosis.Diagnosis `json:"diagnosis,omitempty"`
	// Alerts are its members, firing first, at most MaxViewAlerts.
	// AlertsTotal counts every alert it had: members, and those that
	// resolved and left it.
	Alerts      []AlertView `json:"alerts"`
	AlertsTotal int         `json:"alerts_total"`
	// State is the lifecycle's: open, verifying, monitoring, closed.
	State        string    `json:"state"`
	Recurrences  int       `json:"recurrences"`
	Resolved     time.Time `json:"resolved,omitzero"`
	Closed       time.Time `json:"closed,omitzero"`
	Verification string    `json:"verification,omitempty"`
	// Closure is the runbook's Step 8 message, from entering monitoring.
	Closure string `json:"closure,omitempty"`
	// What responders did from Slack and PagerDuty: the amtriage silence
	// (pending until it has an id), the last rollback, who resolved it by
	// hand, and PagerDuty's incident once a webhook named it.
	Silence      *SilenceView           `json:"silence,omitempty"`
	RolledBack   *incident.RollbackDone `json:"rolled_back,omitempty"`
	ClosedBy     string                 `json:"closed_by,omitempty"`
	PagerDutyID  string                 `json:"pagerduty_incident_id,omitempty"`
	PagerDutyURL string                 `json:"pagerduty_incident_url,omitempty"`
}

// SilenceView is an incident's amtriage silence in Alertmanager.
type SilenceView struct {
	ID          string    `json:"id,omitempty"`
	URL         string    `json:"url,omitempty"`
	Until       time.Time `json:"until,omitzero"`
	By          string    `json:"by"`
	Pending     bool      `json:"pending,omitempty"`
	Unsilencing bool      `json:"unsilencing,omitempty"`
}

// IncidentDetail is one incident as GET /api/incidents/{id} shows it: with
// its whole timeline (the last incident.MaxTimeline entries; timeline_dropped
// counts older ones).
type IncidentDetail struct {
	IncidentView
	Timeline        []incident.Entry `json:"timeline"`
	TimelineDropped int              `json:"timeline_dropped"`
}

// MaxViewAlerts bounds the alerts an incident shows in the API; a storm's
// count is in alerts_total.
const MaxViewAlerts = 50

// AlertView is one member alert with its own decision.
type AlertView struct {
	Fingerprint  string            `json:"fingerprint"`
	Alertname    string            `json:"alertname"`
	Status       string            `json:"status"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	Severity     severity.Level    `json:"severity"`
	Rule         int               `json:"rule"`
	Reasons      []string          `json:"reasons"`
	Labels       map[string]string `json:"labels"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	ResolvedBy   string            `json:"resolvedBy,omitempty"`
}

// OpenIncidents snapshots the open incidents, most severe first.
func (p *Pipeline) OpenIncidents() []IncidentView {
	out, _ := p.OpenIncidentsPage(0)
	return out
}

// OpenIncidentsPage snapshots at most limit (0: all) open incidents, most
// severe first, and how many are open.
func (p *Pipeline) OpenIncidentsPage(limit int) ([]IncidentView, int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	open := p.book.Open()
	if limit > 0 && len(open) > limit {
		open = open[:limit]
	}
	out := make([]IncidentView, 0, len(open))
	for _, inc := range open {
		out = append(out, viewOf(inc))
	}
	return out, p.book.OpenCount()
}

// IncidentsPage snapshots at most limit (0: all) incidents in state (one
// of incident.States, or "all"), most severe first, and how many there are.
func (p *Pipeline) IncidentsPage(state string, limit int) ([]IncidentView, int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	all := p.book.Incidents(state)
	total := len(all)
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	out := make([]IncidentView, 0, len(all))
	for _, inc := range all {
		out = append(out, viewOf(inc))
	}
	return out, total
}

// IncidentDetail returns one incident kept (not yet pruned) with its timeline.
func (p *Pipeline) IncidentDetail(id string) (IncidentDetail, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return IncidentDetail{}, false
	}
	return IncidentDetail{IncidentView: viewOf(inc), Timeline: append([]incident.Entry{}, inc.Timeline...), TimelineDropped: inc.TimelineDropped}, true
}

// Incident returns one incident (open or recently resolved) by id.
func (p *Pipeline) Incident(id string) (IncidentView, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inc := p.book.Get(id)
	if inc == nil {
		return IncidentView{}, false
	}
	return viewOf(inc), true
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

func viewOf(inc *incident.Incident) IncidentView {
	v := IncidentView{
		ID: inc.ID, Service: inc.Service, Title: inc.Title, Status: inc.Status,
		Severity: inc.Severity, PeakSeverity: inc.PeakSeverity, Rule: inc.Rule, Reasons: inc.Reasons,
		Started: inc.StartedAt, AlertsFiring: inc.Firing, Alerts: []AlertView{},
		LastEvaluated: inc.LastEvaluated, Diagnosis: inc.Diagnosis,
		State: inc.State, Recurrences: inc.Recurrences, Resolved: inc.ResolvedAt, Closed: inc.ClosedAt,
		Verification: inc.Verification, Closure: inc.Closure,
		AcknowledgedAt: inc.AcknowledgedAt, AcknowledgedBy: inc.AcknowledgedBy,
		RolledBack: inc.RolledBack, ClosedBy: inc.ClosedBy, PagerDutyID: inc.PagerDutyID, PagerDutyURL: inc.PagerDutyURL,
	}
	if si := inc.Silence; si != nil {
		v.Silence = &SilenceView{ID: si.ID, URL: si.URL, Until: si.Until, By: si.By, Pending: si.Pending(), Unsilencing: si.Unsilencing}
	}
	sorted := inc.SortedAlerts()
	v.AlertsTotal = len(sorted) + inc.Left
	for _, a := range sorted[:min(len(sorted), MaxViewAlerts)] {
		v.Alerts = append(v.Alerts, AlertView{
			Fingerprint: a.Fingerprint, Alertname: a.Name, Status: a.Status,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt,
			Severity: a.Decision.Severity, Rule: a.Decision.Rule, Reasons: a.Decision.Reasons,
			Labels: a.Labels, GeneratorURL: a.GeneratorURL, ResolvedBy: a.ResolvedBy,
		})
	}
	return v
}
