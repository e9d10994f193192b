package pdin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event types amtriage acts on (SPEC "Actions from Slack and PagerDuty").
const (
	Acknowledged   = "incident.acknowledged"
	Unacknowledged = "incident.unacknowledged"
	Resolved       = "incident.resolved"
	Reassigned     = "incident.reassigned"
	// Escalated: v3 carries no escalation level (its incident data has
	// none); what it says is who the incident now goes to
	// (Incident.Assignees) under which policy (Incident.EscalationPolicy).
	Escalated = "incident.escalated"
)

// Known reports whether eventType is one amtriage acts on.
func Known(eventType string) bool {
	switch eventType {
	case Acknowledged, Unacknowledged, Resolved, Reassigned, Escalated:
		return true
	}
	return false
}

// Ref is a PagerDuty reference object (user, service, escalation policy):
// {"id", "type", "summary", "html_url", "self"}. Summary is the display name.
type Ref struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Summary string `json:"summary"`
	HTMLURL string `json:"html_url"`
}

// Incident is the PagerDuty incident an incident.* event is about (the v3
// "incident" data type), reduced to what amtriage records.
type Incident struct {
	ID      string // PagerDuty's incident id, e.g. "PGR0VU2"
	HTMLURL string
	Number  int
	Status  string // triggered, acknowledged, resolved
	Title   string
	Urgency string
	// IncidentKey is data.incident_key: the incident's de-duplication key.
	// For an incident opened by an Events API v2 trigger it is that
	// trigger's dedup_key, which amtriage sets to its incident id. It can be
	// empty or PagerDuty's own key (incidents opened by hand, or alerts
	// grouped into another incident); then match by ID.
	IncidentKey      string
	Service          Ref
	EscalationPolicy Ref
	// Assignees are the users the incident is assigned to after the event:
	// the new assignees of incident.reassigned and incident.escalated.
	Assignees []Ref
}

// Event is one decoded v3 webhook event.
type Event struct {
	ID           string // event.id: unique per event, the idempotency key
	Type         string // event.event_type
	ResourceType string
	OccurredAt   time.Time
	// Agent is who or what caused the event (a user_reference, or a service
	// for automatic changes); nil when PagerDuty sends null.
	Agent *Ref
	// Ignorable is set for an event type amtriage does not act on
	// (incident.triggered, incident.annotated, service.*, pagey.ping, ...):
	// answer 2xx and drop it. Incident is then zero.
	Ignorable bool
	Incident  Incident
}

// DecodeError is a body that is not a usable v3 event. Reason is a metric
// label. The daemon answers it with 400: PagerDuty does not retry a 4xx.
type DecodeError struct {
	Reason string // invalid_json, missing_event, missing_id, missing_type, bad_occurred_at, bad_incident
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pagerduty webhook event: %s: %v", e.Reason, e.Err)
	}
	return "pagerduty webhook event: " + e.Reason
}

func (e *DecodeError) Unwrap() error { return e.Err }

type wirePayload struct {
	Event *wireEvent `json:"event"`
}

type wireEvent struct {
	ID           string          `json:"id"`
	EventType    string          `json:"event_type"`
	ResourceType string          `json:"resource_type"`
	OccurredAt   string          `json:"occurred_at"`
	Agent        *Ref            `json:"agent"`
	Data         json.RawMessage `json:"data"`
}

type wireIncident struct {
	ID               string `json:"id"`
	Type             string `json:"type"`
	HTMLURL          string `json:"html_url"`
	Number           int    `json:"number"`
	Status           string `json:"status"`
	IncidentKey      string `json:"incident_key"`
	Title            string `json:"title"`
	Urgency          string `json:"urgency"`
	Service          Ref    `json:"service"`
	EscalationPolicy Ref    `json:"escalation_policy"`
	Assignees        []Ref  `json:"assignees"`
}

// DecodeEvent decodes a verified v3 webhook body. Every event needs an id
// and a type; the types amtriage acts on also need occurred_at and an
// incident with an id in data. Unknown fields are ignored (PagerDuty adds
// fields), so are unknown event types (Ignorable).
func DecodeEvent(body []byte) (Event, error) {
	var p wirePayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, &DecodeError{Reason: "invalid_json", Err: err}
	}
	w := p.Event
	if w == nil {
		return Event{}, &DecodeError{Reason: "missing_event"}
	}
	if strings.TrimSpace(w.ID) == "" {
		return Event{}, &DecodeError{Reason: "missing_id"}
	}
	if strings.TrimSpace(w.EventType) == "" {
		return Event{}, &DecodeError{Reason: "missing_type"}
	}
	ev := Event{ID: w.ID, Type: w.EventType, ResourceType: w.ResourceType, Agent: w.Agent}
	if w.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, w.OccurredAt)
		if err != nil && Known(w.EventType) {
			return Event{}, &DecodeError{Reason: "bad_occurred_at", Err: err}
		}
		ev.OccurredAt = t
	}
	if !Known(w.EventType) {
		ev.Ignorable = true
		return ev, nil
	}
	if ev.OccurredAt.IsZero() {
		return Event{}, &DecodeError{Reason: "bad_occurred_at", Err: errors.New("occurred_at missing")}
	}
	var d wireIncident
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return Event{}, &DecodeError{Reason: "bad_incident", Err: errors.New("data missing")}
	}
	if err := json.Unmarshal(w.Data, &d); err != nil {
		return Event{}, &DecodeError{Reason: "bad_incident", Err: err}
	}
	if d.Type != "incident" || strings.TrimSpace(d.ID) == "" {
		return Event{}, &DecodeError{Reason: "bad_incident", Err: fmt.Errorf("data is %q with id %q, want an incident with an id", d.Type, d.ID)}
	}
	ev.Incident = Incident{
		ID: d.ID, HTMLURL: d.HTMLURL, Number: d.Number, Status: d.Status, Title: d.Title,
		Urgency: d.Urgency, IncidentKey: d.IncidentKey, Service: d.Service,
		EscalationPolicy: d.EscalationPolicy, Assignees: d.Assignees,
	}
	return ev, nil
}

// DedupKey is the key to match our incident by: the PagerDuty incident's
// incident_key. Empty when PagerDuty sent none; then match by Incident.ID.
// amtriage's escalation page has the key "<incident id>/escalation"
// (notify/pagerduty.EscalationDedupKey); the caller strips that suffix.
func (e Event) DedupKey() string { return e.Incident.IncidentKey }
