// Package actions is what a responder does from where the page lands
// (Slack buttons, PagerDuty's own webhooks), as amtriage keeps it: an
// action is verified at its endpoint, appended to the inbox
// (store.EntryAction), and applied by the leader in inbox order, so it is
// durable once answered, ordered with the notifications of its incident,
// and applied once. Its effects (PagerDuty acknowledge, a silence, a
// rollback, the Slack message) go out through the outbox.
package actions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
)

// Kind is what the responder did.
type Kind string

const (
	Acknowledge Kind = "acknowledge"
	Silence     Kind = "silence"
	Unsilence   Kind = "unsilence"
	Resolve     Kind = "resolve"
	Rollback    Kind = "rollback"
	// PagerDuty is an incident event PagerDuty sent us (acknowledged,
	// resolved, reassigned, ...): recorded, not sent back.
	PagerDuty Kind = "pagerduty"
	// Result is an action receiver's outcome of an earlier action
	// (Silence, Unsilence, Rollback): the silence made, the rollback done,
	// or why it failed. It goes through the inbox like the action did.
	Result Kind = "result"
)

func (k Kind) known() bool {
	switch k {
	case Acknowledge, Silence, Unsilence, Resolve, Rollback, PagerDuty, Result:
		return true
	}
	return false
}

// Actor is who acted, and where.
type Actor struct {
	Source string `json:"source"` // "slack" or "pagerduty"
	ID     string `json:"id,omitempty"`
	Name   string `json:"name,omitempty"`
}

// PagerDutyEvent is what PagerDuty said happened to its incident.
type PagerDutyEvent struct {
	Type       string   `json:"type"` // incident.acknowledged, ...
	IncidentID string   `json:"incidentId,omitempty"`
	HTMLURL    string   `json:"htmlUrl,omitempty"`
	Assignees  []string `json:"assignees,omitempty"`
}

// Action is one verified action, as the inbox keeps it.
type Action struct {
	// Key makes it idempotent: a redelivery (Slack retries, PagerDuty
	// retries) has the same key and is applied once.
	Key  string    `json:"key"`
	Kind Kind      `json:"kind"`
	At   time.Time `json:"at"`
	By   Actor     `json:"by"`
	// Incident is our incident id; for a PagerDuty event, the dedup key
	// its incident was opened with (empty: match by PagerDutyEvent.IncidentID).
	Incident   string        `json:"incident,omitempty"`
	SilenceFor time.Duration `json:"silenceFor,omitempty"`
	// Rollback is the undo the button offered (the diagnosis's, as the
	// message showed it).
	Rollback    *diagnosis.Rollback `json:"rollback,omitempty"`
	PagerDuty   *PagerDutyEvent     `json:"pagerduty,omitempty"`
	Outcome     *Outcome            `json:"outcome,omitempty"`
	ResponseURL string              `json:"responseUrl,omitempty"` // where to answer the Slack user
}

// Outcome is what an action receiver did with the action keyed RequestKey.
type Outcome struct {
	For        Kind   `json:"for"` // Silence, Unsilence or Rollback
	RequestKey string `json:"requestKey"`
	// Error, when set, is why it was refused or failed, in words.
	Error      string    `json:"error,omitempty"`
	SilenceID  string    `json:"silenceId,omitempty"`
	SilenceURL string    `json:"silenceUrl,omitempty"`
	Until      time.Time `json:"until,omitzero"`
	Text       string    `json:"text,omitempty"` // the rollback done, in words
}

// Limits of a stored action: it is small, and what it carries came from a
// verified request, but a stored record must not be able to grow state.
const (
	MaxKeyBytes   = 512
	MaxFieldBytes = 1024
	MaxAssignees  = 16
	MaxSilence    = 7 * 24 * time.Hour
)

// ResultKey is the key of the outcome (Result) of the action keyed key:
// "result:" + key, or, when that would be over MaxKeyBytes, a hash of key
// in its place (still one key per action).
func ResultKey(key string) string {
	k := "result:" + key
	if len(k) <= MaxKeyBytes {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return "result:sha256:" + hex.EncodeToString(sum[:])
}

// Encode is the action's inbox body.
func (a *Action) Encode() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

// Decode reads an inbox body.
func Decode(body []byte) (*Action, error) {
	a := new(Action)
	if err := json.Unmarshal(body, a); err != nil {
		return nil, fmt.Errorf("action: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// Validate checks an action is complete and within limits.
func (a *Action) Validate() error {
	var errs []error
	field := func(name, v string, required bool) {
		switch {
		case required && v == "":
			errs = append(errs, fmt.Errorf("%s is required", name))
		case len(v) > MaxFieldBytes:
			errs = append(errs, fmt.Errorf("%s is %d bytes, at most %d", name, len(v), MaxFieldBytes))
		}
	}
	if a.Key == "" || len(a.Key) > MaxKeyBytes {
		errs = append(errs, fmt.Errorf("key must be 1 to %d bytes", MaxKeyBytes))
	}
	if !a.Kind.known() {
		errs = append(errs, fmt.Errorf("kind %q is not an action", a.Kind))
	}
	if a.At.IsZero() {
		errs = append(errs, errors.New("at is required"))
	}
	field("by.source", a.By.Source, true)
	field("by.id", a.By.ID, false)
	field("by.name", a.By.Name, false)
	field("responseUrl", a.ResponseURL, false)
	field("incident", a.Incident, a.Kind != PagerDuty)
	switch a.Kind {
	case Silence:
		if a.SilenceFor <= 0 || a.SilenceFor > MaxSilence {
			errs = append(errs, fmt.Errorf("silenceFor %s is not in (0, %s]", a.SilenceFor, MaxSilence))
		}
	case Rollback:
		if r := a.Rollback; r == nil || r.Namespace == "" || r.Deployment == "" || r.To < 1 || r.From == r.To {
			errs = append(errs, errors.New("rollback needs a namespace, a deployment and two different revisions"))
		} else {
			field("rollback.namespace", r.Namespace, true)
			field("rollback.deployment", r.Deployment, true)
		}
	case Result:
		if o := a.Outcome; o == nil || (o.For != Silence && o.For != Unsilence && o.For != Rollback) {
			errs = append(errs, errors.New("result needs an outcome of a silence, unsilence or rollback"))
		} else {
			field("outcome.requestKey", o.RequestKey, true)
			field("outcome.error", o.Error, false)
			field("outcome.silenceId", o.SilenceID, false)
			field("outcome.silenceUrl", o.SilenceURL, false)
			field("outcome.text", o.Text, false)
		}
	case PagerDuty:
		if p := a.PagerDuty; p == nil || p.Type == "" || (a.Incident == "" && p.IncidentID == "") {
			errs = append(errs, errors.New("pagerduty needs an event type and an incident (dedup key or PagerDuty id)"))
		} else {
			field("pagerduty.type", p.Type, true)
			field("pagerduty.incidentId", p.IncidentID, false)
			field("pagerduty.htmlUrl", p.HTMLURL, false)
			if len(p.Assignees) > MaxAssignees {
				errs = append(errs, fmt.Errorf("pagerduty.assignees: %d, at most %d", len(p.Assignees), MaxAssignees))
			}
			for _, s := range p.Assignees {
				field("pagerduty.assignees[]", s, true)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("action: %w", errors.Join(errs...))
	}
	return nil
}
