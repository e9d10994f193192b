// Package view is incidents as amtriage shows them: the JSON of
// GET /api/incidents and the web pages are built from these copies, made
// under the pipeline's lock and safe to read after it.
package view

import (
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// Incident is an open incident as GET /api/incidents shows it.
type Incident struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	// Profile is the service profile all its alerts matched ("": not all).
	Profile      string         `json:"profile,omitempty"`
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
	// Alerts are its members, firing first, at most MaxAlerts.
	// AlertsTotal counts every alert it had: members, and those that
	// resolved and left it.
	Alerts      []Alert `json:"alerts"`
	AlertsTotal int     `json:"alerts_total"`
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
	Silence      *Silence               `json:"silence,omitempty"`
	RolledBack   *incident.RollbackDone `json:"rolled_back,omitempty"`
	ClosedBy     string                 `json:"closed_by,omitempty"`
	PagerDutyID  string                 `json:"pagerduty_incident_id,omitempty"`
	PagerDutyURL string                 `json:"pagerduty_incident_url,omitempty"`
}

// Silence is an incident's amtriage silence in Alertmanager.
type Silence struct {
	ID          string    `json:"id,omitempty"`
	URL         string    `json:"url,omitempty"`
	Until       time.Time `json:"until,omitzero"`
	By          string    `json:"by"`
	Pending     bool      `json:"pending,omitempty"`
	Unsilencing bool      `json:"unsilencing,omitempty"`
}

// Detail is one incident as GET /api/incidents/{id} shows it: with
// its whole timeline (the last incident.MaxTimeline entries; timeline_dropped
// counts older ones).
type Detail struct {
	Incident
	Timeline        []incident.Entry `json:"timeline"`
	TimelineDropped int              `json:"timeline_dropped"`
}

// MaxAlerts bounds the alerts an incident shows in the API; a storm's
// count is in alerts_total.
const MaxAlerts = 50

// Alert is one member alert with its own decision.
type Alert struct {
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

// Of is inc as shown. Call it under the lock that guards inc.
func Of(inc *incident.Incident) Incident {
	v := SummaryOf(inc)
	sorted := inc.SortedAlerts()
	v.AlertsTotal = len(sorted) + inc.Left
	v.Alerts = make([]Alert, 0, min(len(sorted), MaxAlerts))
	for _, a := range sorted[:min(len(sorted), MaxAlerts)] {
		v.Alerts = append(v.Alerts, Alert{
			Fingerprint: a.Fingerprint, Alertname: a.Name, Status: a.Status,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt,
			Severity: a.Decision.Severity, Rule: a.Decision.Rule, Reasons: a.Decision.Reasons,
			Labels: a.Labels, GeneratorURL: a.GeneratorURL, ResolvedBy: a.ResolvedBy,
		})
	}
	return v
}

// SummaryOf is inc without its alerts (Alerts nil; AlertsTotal counts
// them), for lists of many incidents. Call it under the lock that guards inc.
func SummaryOf(inc *incident.Incident) Incident {
	v := Incident{
		ID: inc.ID, Service: inc.Service, Profile: inc.Profile, Title: inc.Title, Status: inc.Status,
		Severity: inc.Severity, PeakSeverity: inc.PeakSeverity, Rule: inc.Rule, Reasons: inc.Reasons,
		Started: inc.StartedAt, AlertsFiring: inc.Firing, AlertsTotal: len(inc.Alerts) + inc.Left,
		LastEvaluated: inc.LastEvaluated, Diagnosis: inc.Diagnosis,
		State: inc.State, Recurrences: inc.Recurrences, Resolved: inc.ResolvedAt, Closed: inc.ClosedAt,
		Verification: inc.Verification, Closure: inc.Closure,
		AcknowledgedAt: inc.AcknowledgedAt, AcknowledgedBy: inc.AcknowledgedBy,
		RolledBack: inc.RolledBack, ClosedBy: inc.ClosedBy, PagerDutyID: inc.PagerDutyID, PagerDutyURL: inc.PagerDutyURL,
	}
	if si := inc.Silence; si != nil {
		v.Silence = &Silence{ID: si.ID, URL: si.URL, Until: si.Until, By: si.By, Pending: si.Pending(), Unsilencing: si.Unsilencing}
	}
	return v
}
