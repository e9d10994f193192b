package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
)

// The record encodings both backends share: JSON, leaving out what a
// record's key or another record already says, so a storm stores one slim
// record per alert.

// storedIncident is an incident record. An open incident's reasons are
// those of its decisive alert's decision, which its record holds: they are
// written once, there.
type storedIncident struct {
	*incident.Incident
	ReasonsOfDecisive bool `json:"reasonsOfDecisive,omitempty"`
}

// EncodeIncident is an incident's record. An incident without reasons
// keeps none: left out, they would read back as "not kept".
func EncodeIncident(inc *incident.Incident) ([]byte, error) {
	st := storedIncident{Incident: inc}
	if inc.Status == incident.Firing && len(inc.Reasons) > 0 {
		if a := inc.Alerts[inc.Decisive]; a != nil && a.Status == incident.Firing && slices.Equal(a.Decision.Reasons, inc.Reasons) {
			c := *inc
			c.Reasons = nil
			st = storedIncident{Incident: &c, ReasonsOfDecisive: true}
		}
	}
	return json.Marshal(st)
}

// EncodeAlert is an alert's record, without what its record key already
// says (its occurrence key, and so its fingerprint) or its labels do (its
// name).
func EncodeAlert(a *incident.Alert) ([]byte, error) {
	stored := *a
	slimAlert(&stored) // needs the key
	stored.Key = ""
	return json.Marshal(&stored)
}

// DecodeAlert reads an alert record stored under key.
func DecodeAlert(key string, v []byte) (*incident.Alert, error) {
	a := new(incident.Alert)
	if err := json.Unmarshal(v, a); err != nil {
		return nil, err
	}
	if a.Key == "" {
		a.Key = key
	}
	fillAlert(a)
	return a, nil
}

// slimAlert leaves out of a stored alert what its key and labels say: its
// fingerprint (the key is fingerprint@startsAt) and its name.
func slimAlert(a *incident.Alert) {
	if at := strings.LastIndexByte(a.Key, '@'); at >= 0 && a.Key[:at] == a.Fingerprint {
		a.Fingerprint = ""
	}
	if a.Name == a.Labels["alertname"] {
		a.Name = ""
	}
}

// fillAlert puts back what slimAlert left out.
func fillAlert(a *incident.Alert) {
	if a.Fingerprint == "" {
		if at := strings.LastIndexByte(a.Key, '@'); at >= 0 {
			a.Fingerprint = a.Key[:at]
		}
	}
	if a.Name == "" {
		a.Name = a.Labels["alertname"]
	}
}

// Loader assembles a LoadedState from records read back: every incident
// before any alert, as an incident's reasons may be its decisive alert's.
type Loader struct {
	ls        *LoadedState
	reasonsOf map[string]*incident.Incident // incident id NUL decisive alert key → incident
}

// NewLoader starts a LoadedState.
func NewLoader() *Loader {
	return &Loader{
		ls:        &LoadedState{Tombstones: map[string]incident.Tombstone{}, Heartbeats: map[string]time.Time{}},
		reasonsOf: map[string]*incident.Incident{},
	}
}

// Incident reads an incident record.
func (l *Loader) Incident(id string, v []byte) error {
	var st storedIncident
	if err := json.Unmarshal(v, &st); err != nil {
		return fmt.Errorf("incident %s: %w", id, err)
	}
	if st.Incident == nil {
		return fmt.Errorf("incident %s: empty record", id)
	}
	if st.ReasonsOfDecisive {
		l.reasonsOf[st.ID+"\x00"+st.Decisive] = st.Incident
	}
	l.ls.Incidents = append(l.ls.Incidents, st.Incident)
	return nil
}

// Alert reads the record of an alert of incidentID stored under key.
func (l *Loader) Alert(incidentID, key string, v []byte) error {
	a, err := DecodeAlert(key, v)
	if err != nil {
		return fmt.Errorf("alert %q of %s: %w", key, incidentID, err)
	}
	if inc := l.reasonsOf[incidentID+"\x00"+key]; inc != nil {
		inc.Reasons = a.Decision.Reasons
	}
	l.ls.Alerts = append(l.ls.Alerts, incident.AlertRef{IncidentID: incidentID, Alert: a})
	return nil
}

// Tombstone reads a tombstone record.
func (l *Loader) Tombstone(key string, v []byte) error {
	var t incident.Tombstone
	if err := json.Unmarshal(v, &t); err != nil {
		return fmt.Errorf("tombstone %q: %w", key, err)
	}
	l.ls.Tombstones[key] = t
	return nil
}

// Heartbeat records when url's last heartbeat arrived.
func (l *Loader) Heartbeat(url string, at time.Time) { l.ls.Heartbeats[url] = at.UTC() }

// Done is the state, as of inbox sequence lastSeq.
func (l *Loader) Done(lastSeq uint64) *LoadedState {
	for _, inc := range l.reasonsOf {
		if inc.Reasons == nil { // its decisive alert's record is gone: say so
			inc.Reasons = []string{fmt.Sprintf("decided by rule %d; the reasons were not kept", inc.Rule)}
		}
	}
	l.ls.LastSeq = lastSeq
	return l.ls
}

// storedEnvelope is an envelope as an outbox holds it.
type storedEnvelope struct {
	notify.Envelope
	// ReasonsOfDecisive: the incident's reasons were left out, being those
	// of its decisive alert, which the event carries.
	ReasonsOfDecisive bool `json:"reasonsOfDecisive,omitempty"`
}

// EncodeEnvelope is an outbox record's body: the envelope without its
// receiver and enqueue time, which the queue keeps beside it.
func EncodeEnvelope(env *notify.Envelope) ([]byte, error) {
	stored := storedEnvelope{Envelope: *env}
	stored.Receiver, stored.Enqueued = "", time.Time{}
	if a := decisiveOf(&env.Event); a != nil && slices.Equal(a.Decision.Reasons, env.Event.Incident.Reasons) {
		stored.Event.Incident.Reasons, stored.ReasonsOfDecisive = nil, true
	}
	if len(env.Event.Alerts) > 0 {
		stored.Event.Alerts = slices.Clone(env.Event.Alerts)
		for i := range stored.Event.Alerts {
			slimAlert(&stored.Event.Alerts[i])
		}
	}
	return json.Marshal(&stored)
}

// DecodeEnvelope reads an outbox record's body.
func DecodeEnvelope(body []byte) (*notify.Envelope, error) {
	var st storedEnvelope
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, err
	}
	e := &st.Envelope
	for i := range e.Event.Alerts {
		fillAlert(&e.Event.Alerts[i])
	}
	if a := decisiveOf(&e.Event); st.ReasonsOfDecisive && a != nil {
		e.Event.Incident.Reasons = a.Decision.Reasons
	}
	return e, nil
}

func decisiveOf(ev *incident.Event) *incident.Alert {
	for i := range ev.Alerts {
		if ev.Alerts[i].Key == ev.Incident.Decisive {
			return &ev.Alerts[i]
		}
	}
	return nil
}

// EventDeadLetter is the dead letter of an envelope a receiver could not
// take; its payload is the envelope as JSON.
func EventDeadLetter(env *notify.Envelope, at time.Time) (*DeadLetter, error) {
	payload, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("dead letter: %w", err)
	}
	return &DeadLetter{
		Kind: DeadEvent, Queue: env.Receiver, Error: env.LastError, Attempts: env.Attempts, At: at.UTC(),
		Incident: env.Event.Incident.ID, EventKind: env.Event.Kind, Payload: payload,
	}, nil
}
