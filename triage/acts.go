package triage

import (
	"errors"
	"strings"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// badAction is an action entry that does not decode: it never will, and is
// dead-lettered like a notification that does not.
type badAction struct{ err error }

func (e *badAction) Error() string { return "action entry: " + e.err.Error() }
func (e *badAction) Unwrap() error { return e.err }

// applyAction applies one action entry to its incident, in inbox order,
// and commits it with the entry's sequence: once, whatever redelivered it.
func (p *Pipeline) applyAction(pe *pending) error {
	a := pe.action
	id := a.Incident
	// An action's kind is its act's (the book refuses one it does not know).
	act := incident.Act{Key: a.Key, Kind: incident.ActKind(a.Kind), At: a.At, By: actorName(a.By), ByName: a.By.Name,
		ResponseURL: a.ResponseURL, SilenceFor: a.SilenceFor, Rollback: a.Rollback}
	switch a.Kind {
	case actions.PagerDuty:
		act.PagerDuty = a.PagerDuty.Type
		act.PagerDutyID, act.PagerDutyURL = a.PagerDuty.IncidentID, a.PagerDuty.HTMLURL
		// The escalation page's key names its incident: its events are
		// noted, but its acknowledge is not the page's.
		id, act.Escalation = strings.CutSuffix(id, "/escalation")
	case actions.Result:
		o := a.Outcome
		act.Result = &incident.ActOutcome{
			For: incident.ActKind(o.For), RequestKey: o.RequestKey, Error: o.Error,
			SilenceID: o.SilenceID, SilenceURL: o.SilenceURL, Until: o.Until, Text: o.Text}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, err := p.book.Act(id, act)
	switch {
	case errors.Is(err, incident.ErrNoIncident):
		p.log.Warn("action on an incident not held here (never opened, or pruned): ignored", "kind", a.Kind, "incident", id, "key", a.Key)
		if p.answer != nil && a.ResponseURL != "" && a.Kind != actions.Result {
			p.answer(a.ResponseURL, "amtriage no longer holds incident "+id+" (closed longer than incidents.retention ago, or never opened here): nothing was done.")
		}
	case err != nil:
		return &badAction{err}
	}
	// Committed with the entry's sequence, like a notification: applied once.
	return p.commit(&store.Commit{LastSeq: pe.entry.Seq, Receivers: p.receivers, Changes: []*incident.Changes{ch}})
}

// actorName is how receivers show who acted.
func actorName(by actions.Actor) string {
	switch {
	case by.Source == "slack" && by.ID != "":
		return "<@" + by.ID + ">"
	case by.Name != "":
		return by.Name + " (" + by.Source + ")"
	default:
		return "someone (" + by.Source + ")"
	}
}
