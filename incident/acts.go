package incident

import (
	"errors"
	"slices"
	"time"
)

// Events of what responders did (README, "Actions"): receivers that have
// nothing to do for one skip it.
const (
	// Acknowledged: a responder took the page from Slack; PagerDuty is
	// acknowledged and the Slack message says who.
	Acknowledged EventKind = "acknowledged"
	// PagerDutyChanged: PagerDuty told us of a change to its incident
	// (acknowledged, reassigned, ...): shown, never sent back to it.
	PagerDutyChanged EventKind = "pagerduty_changed"
)

// ActKind is what a responder did.
type ActKind string

const (
	ActAcknowledge ActKind = "acknowledge"
	ActPagerDuty   ActKind = "pagerduty"
)

// Act is one responder's action, as the book applies it.
type Act struct {
	// Key is the action's idempotency key: an act whose key the incident
	// has seen is a redelivery and changes nothing.
	Key  string
	Kind ActKind
	At   time.Time
	// By names who acted, as receivers show it ("<@U123>", "Ana Diaz
	// (PagerDuty)").
	By string
	// PagerDuty is, for ActPagerDuty, its event type (incident.acknowledged, ...).
	PagerDuty string
}

// MaxActKeys bounds the act keys an incident remembers: redeliveries come
// within minutes, so the last few suffice.
const MaxActKeys = 32

// ErrNoIncident is an act on an incident the book does not hold (never
// opened here, or pruned after incidents.retention).
var ErrNoIncident = errors.New("no such incident")

// Act applies a responder's act to incident id and returns what to commit
// (empty for a redelivery).
func (b *Book) Act(id string, a Act) (*Changes, error) {
	ch := &Changes{Tombstones: map[string]Tombstone{}}
	inc := b.byID[id]
	if inc == nil {
		return ch, ErrNoIncident
	}
	if slices.Contains(inc.ActKeys, a.Key) {
		return ch, nil
	}
	inc.ActKeys = append(inc.ActKeys, a.Key)
	if over := len(inc.ActKeys) - MaxActKeys; over > 0 {
		inc.ActKeys = append(inc.ActKeys[:0:0], inc.ActKeys[over:]...)
	}
	switch a.Kind {
	case ActAcknowledge:
		if inc.AcknowledgedAt.IsZero() {
			inc.AcknowledgedAt, inc.AcknowledgedBy = a.At.UTC(), a.By
			inc.note(a.At, "acknowledged", "acknowledged by %s", a.By)
			ch.Events = append(ch.Events, b.event(Acknowledged, a.At, inc, 0))
		} else {
			inc.note(a.At, "acknowledged", "acknowledged again by %s (first by %s)", a.By, inc.AcknowledgedBy)
		}
	case ActPagerDuty:
		inc.note(a.At, "pagerduty", "PagerDuty: %s by %s", a.PagerDuty, a.By)
		switch a.PagerDuty {
		case "incident.acknowledged":
			if inc.AcknowledgedAt.IsZero() {
				inc.AcknowledgedAt, inc.AcknowledgedBy = a.At.UTC(), a.By
			}
		case "incident.unacknowledged":
			inc.AcknowledgedAt, inc.AcknowledgedBy = time.Time{}, ""
		}
		ch.Events = append(ch.Events, b.event(PagerDutyChanged, a.At, inc, 0))
	default:
		return &Changes{Tombstones: map[string]Tombstone{}}, errors.New("unknown act " + string(a.Kind))
	}
	ch.Incidents = append(ch.Incidents, inc)
	return ch, nil
}
