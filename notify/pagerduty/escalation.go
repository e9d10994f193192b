package pagerduty

import (
	"context"
	"fmt"
	"strings"
	"time"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/clip"
)

// escalationMethod is the rate-limit method of the escalation routing key.
const escalationMethod = "enqueue:escalation"

// EscalationDedupKey is the dedup key of an incident's escalation page: its
// own alert at PagerDuty, beside the incident's, resolved with it.
func EscalationDedupKey(incidentID string) string { return incidentID + "/escalation" }

// escalationDetails are the escalation trigger's custom_details: the
// runbook's escalation message, field by field.
type escalationDetails struct {
	IncidentID string   `json:"incident_id"`
	Service    string   `json:"service"`
	Event      string   `json:"event"`
	Duration   string   `json:"duration_so_far"`
	Checked    []string `json:"checked"`
	Symptoms   []string `json:"current_symptoms"`
	WhyStuck   string   `json:"why_stuck"`
	Started    string   `json:"started"`
	Diagnosis  any      `json:"diagnosis,omitempty"`
}

// escalation handles what escalation asks of PagerDuty: an Escalated event
// triggers the escalation page (done: nothing else to send), and whatever
// resolves the incident's page first resolves its escalation page. Without
// an escalation key neither is sent.
func (n *Notifier) escalation(ctx context.Context, ev *incident.Event) (done, retry bool, err error) {
	key := string(n.cfg.EscalationRoutingKey)
	switch {
	case ev.Kind == incident.Escalated:
		if key == "" {
			return true, false, nil
		}
		retry, err := n.triggerEscalation(ctx, ev, key)
		return true, retry, err
	case key == "" || ev.Incident.EscalatedAt.IsZero():
	case reescalates(ev):
		// The escalation page was resolved with the incident's: the cause
		// is still unknown, so the senior engineer is paged again with it.
		retry, err := n.triggerEscalation(ctx, ev, key)
		return false, retry, err
	case action(ev) == "resolve":
		// Resolving twice is harmless at PagerDuty, so a retry after the
		// incident's own resolve failed may send this again.
		e := &pd.V2Event{RoutingKey: key, Action: "resolve", DedupKey: EscalationDedupKey(ev.Incident.ID)}
		retry, err := n.send(ctx, e, escalationMethod)
		return false, retry, err
	}
	return false, false, nil
}

// reescalates reports whether ev reopens an incident whose pages were
// resolved on entering monitoring.
func reescalates(ev *incident.Event) bool {
	return ev.Kind == incident.Reopened && ev.PreviousState == incident.StateMonitoring
}

// triggerEscalation sends the escalation page of ev's incident.
func (n *Notifier) triggerEscalation(ctx context.Context, ev *incident.Event, key string) (bool, error) {
	e, err := n.escalationTrigger(ev, key)
	if err != nil {
		return false, n.fail("trigger", EscalationDedupKey(ev.Incident.ID), 0, err.Error(), nil)
	}
	return n.send(ctx, e, escalationMethod)
}

// escalationTrigger is the escalation page: critical, summarised as the
// runbook's "Escalating to senior engineering team", with the escalation
// message in its details and the incident's links.
func (n *Notifier) escalationTrigger(ev *incident.Event, key string) (*pd.V2Event, error) {
	e, err := n.trigger(ev, key)
	if err != nil {
		return nil, err
	}
	inc := &ev.Incident
	f := ev.EscalationFacts()
	e.DedupKey = EscalationDedupKey(inc.ID)
	e.Payload.Severity = "critical"
	e.Payload.Summary = clip.Runes(fmt.Sprintf("ESCALATION: Sev 1 %s, cause not identified after %s — %s",
		inc.Service, f.Stuck.Round(time.Second), inc.Title), MaxSummary)
	d := escalationDetails{
		IncidentID: inc.ID, Service: inc.Service, Event: string(ev.Kind),
		Duration: f.SoFar.Round(time.Second).String(),
		Checked:  truncateList(f.Checked, 20, 1024), Symptoms: truncateList(f.Symptoms, 5, 1024),
		WhyStuck: clip.Runes(f.WhyStuck, 1024), Started: inc.StartedAt.UTC().Format(time.RFC3339),
	}
	if inc.Diagnosis != nil {
		short := *inc.Diagnosis
		short.Snapshot = nil // the incident's own page carries the snapshot
		d.Diagnosis = short.Details()
	}
	e.Payload.Details = &d
	if strings.TrimSpace(e.Payload.Source) == "" {
		e.Payload.Source = "amtriage"
	}
	return e, nil
}

// escalationMethods is the escalation key's method when delivering ev
// sends to it.
func (n *Notifier) escalationMethods(ev *incident.Event) []string {
	if n.cfg.EscalationRoutingKey == "" {
		return nil
	}
	if ev.Kind == incident.Escalated || (!ev.Incident.EscalatedAt.IsZero() && (action(ev) == "resolve" || reescalates(ev))) {
		return []string{escalationMethod}
	}
	return nil
}
