package notify

import (
	"context"
	"fmt"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
)

// Routed gives a receiver only the events its routing sends it: Sends
// reports whether a service's incidents at a severity go to this receiver.
// An escalation into a routed severity from one that was not reaches the
// receiver as "opened" (it has never heard of the incident). A resolve
// reaches it if anything of the incident did: State remembers that (without
// State, if the incident's peak severity was routed).
type Routed struct {
	Notifier
	Sends func(service string, sev severity.Level) bool
	State ReceiverState
}

type routedState struct {
	Sent bool `json:"sent"`
}

// Notify implements Notifier; events not routed here return ErrSkipped.
func (r *Routed) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	inc := &ev.Incident
	forward := ev
	switch ev.Kind {
	case incident.ResolvedEvent, incident.Closed, incident.VerifyPending,
		incident.Acknowledged, incident.PagerDutyChanged, incident.Silenced, incident.Unsilenced,
		incident.RolledBack, incident.ActionRefused:
		// About an incident the receiver already heard of, if it did:
		// what responders do to a page stays with it after the severity
		// drops (an acknowledge must reach the page still open).
		sent, err := r.sent(inc)
		if err != nil {
			return true, err
		}
		if !sent {
			return false, ErrSkipped
		}
	case incident.SeverityChanged:
		if !r.Sends(inc.Service, inc.Severity) {
			return false, ErrSkipped
		}
		if !r.Sends(inc.Service, ev.PreviousSeverity) {
			first := *ev
			first.Kind, first.PreviousSeverity = incident.Opened, 0
			forward = &first
		}
	default:
		if !r.Sends(inc.Service, inc.Severity) {
			return false, ErrSkipped
		}
	}
	retry, err := r.Notifier.Notify(ctx, forward)
	if err == nil && r.State != nil && ev.Kind != incident.ResolvedEvent {
		if serr := r.State.SaveReceiverState(r.stateKey(), inc.ID, routedState{Sent: true}); serr != nil {
			return true, fmt.Errorf("record delivery: %w", serr)
		}
	}
	return retry, err
}

func (r *Routed) stateKey() string { return "routed-" + r.Notifier.Name() }

func (r *Routed) sent(inc *incident.Incident) (bool, error) {
	if r.State == nil {
		return r.Sends(inc.Service, inc.PeakSeverity), nil
	}
	var st routedState
	if _, err := r.State.LoadReceiverState(r.stateKey(), inc.ID, &st); err != nil {
		return false, err
	}
	return st.Sent, nil
}

// IsPage forwards to the wrapped receiver for events routed to it, so
// webhook-to-page counts only real pages.
func (r *Routed) IsPage(ev *incident.Event) bool {
	p, ok := r.Notifier.(PageReporter)
	return ok && r.Sends(ev.Incident.Service, ev.Incident.Severity) && p.IsPage(ev)
}

// Methods forwards to the wrapped receiver (notify.MethodReporter), so its
// rate-limit holds stay per method through the wrapper.
func (r *Routed) Methods(ev *incident.Event) ([]string, bool) {
	if m, ok := r.Notifier.(MethodReporter); ok {
		return m.Methods(ev)
	}
	return nil, false
}

// Takes is the wrapped receiver's.
func (r *Routed) Takes(kind incident.EventKind) bool { return Takes(r.Notifier, kind) }
