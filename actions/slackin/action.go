package slackin

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ActionID is a button's action_id: which action amtriage performs.
type ActionID string

// The actions amtriage's buttons carry.
const (
	ActAck       ActionID = "ack"        // PagerDuty acknowledge
	ActSilence1h ActionID = "silence_1h" // an Alertmanager silence for 1 hour
	ActSilence4h ActionID = "silence_4h" // an Alertmanager silence for 4 hours
	ActUnsilence ActionID = "unsilence"  // expire amtriage's silence
	ActResolve   ActionID = "resolve"    // close the incident by hand
	ActRollback  ActionID = "rollback"   // roll the Deployment back (opt-in, allowed users only)
)

// Slack's limits on a button (Block Kit button element).
const (
	MaxActionID   = 255
	MaxValue      = 2000
	MaxButtonText = 75
	MaxBlockID    = 255
	// MaxIncidentID bounds an incident id in a value: it doubles as the
	// PagerDuty dedup key, which is at most 255 characters.
	MaxIncidentID = 255
)

// Known reports whether id is one of amtriage's actions.
func (id ActionID) Known() bool {
	switch id {
	case ActAck, ActSilence1h, ActSilence4h, ActUnsilence, ActResolve, ActRollback:
		return true
	}
	return false
}

// SilenceFor is the silence's length for the Silence actions, else 0.
func (id ActionID) SilenceFor() time.Duration {
	switch id {
	case ActSilence1h:
		return time.Hour
	case ActSilence4h:
		return 4 * time.Hour
	}
	return 0
}

// Rollback is the roll back a diagnosis proposed: Deployment Namespace/Name,
// seen at revision From, to be set back to revision To's pod template. The
// leader refuses when the Deployment is no longer at From (someone or
// something moved it since the message was posted).
type Rollback struct {
	Namespace  string `json:"ns"`
	Deployment string `json:"deployment"`
	From       int64  `json:"from"`
	To         int64  `json:"to"`
}

// Value is what a button's value carries, JSON-encoded:
// {"incident":"checkout-3f2a…"} and, for Roll back only,
// {"incident":…,"rollback":{"ns":…,"deployment":…,"from":5,"to":4}}.
// JSON rather than a bare id so a field can be added without a new format;
// unknown fields are ignored for the same reason (an older leader reading a
// newer replica's button).
type Value struct {
	Incident string    `json:"incident"`
	Rollback *Rollback `json:"rollback,omitempty"`
}

// EncodeValue is v as a button value, checked against the action it goes on.
func EncodeValue(id ActionID, v Value) (string, error) {
	if err := v.check(id); err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding button value: %w", err)
	}
	if len(b) > MaxValue {
		return "", fmt.Errorf("button value of %d bytes is over Slack's %d", len(b), MaxValue)
	}
	return string(b), nil
}

// DecodeValue reads a button value for action id.
func DecodeValue(id ActionID, s string) (Value, error) {
	var v Value
	if len(s) > MaxValue {
		return v, fmt.Errorf("button value of %d bytes is over Slack's %d", len(s), MaxValue)
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return Value{}, fmt.Errorf("button value is not amtriage's: %w", err)
	}
	if err := v.check(id); err != nil {
		return Value{}, err
	}
	return v, nil
}

var errBadValue = errors.New("bad button value")

func (v Value) check(id ActionID) error {
	if !id.Known() {
		return fmt.Errorf("%w: unknown action %q", errBadValue, id)
	}
	if !ValidIncidentID(v.Incident) {
		return fmt.Errorf("%w: incident id %q", errBadValue, v.Incident)
	}
	if id != ActRollback {
		if v.Rollback != nil {
			return fmt.Errorf("%w: a rollback on %s", errBadValue, id)
		}
		return nil
	}
	r := v.Rollback
	switch {
	case r == nil:
		return fmt.Errorf("%w: rollback without its target", errBadValue)
	case !validDNSName(r.Namespace, 63) || !validDNSName(r.Deployment, 253):
		return fmt.Errorf("%w: rollback target %q/%q", errBadValue, r.Namespace, r.Deployment)
	case r.From < 1 || r.To < 1 || r.From == r.To:
		return fmt.Errorf("%w: rollback from revision %d to %d", errBadValue, r.From, r.To)
	}
	return nil
}

// ValidIncidentID accepts what an incident id may be: 1–MaxIncidentID
// characters of ASCII letters, digits, '-', '_', '.' and ':' (amtriage makes
// them as slug-hex), so an id from a value is safe in keys, logs and URLs.
func ValidIncidentID(s string) bool {
	if s == "" || len(s) > MaxIncidentID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':':
		default:
			return false
		}
	}
	return true
}

// validDNSName is a Kubernetes object name: lowercase alphanumerics, '-' and
// '.', starting and ending alphanumeric.
func validDNSName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
