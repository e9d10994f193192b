package notify

import (
	"context"

	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/incident"
)

// Routed gives a receiver only the events its routing sends it: Sends
// reports whether a service's incidents at a severity go to this receiver.
// An escalation into a routed severity from one that was not reaches the
// receiver as "opened" (it has never heard of the incident); a resolve
// reaches it if the incident's peak severity was routed.
type Routed struct {
	Notifier
	Sends func(service string, sev severity.Level) bool
}

// Notify implements Notifier.
func (r *Routed) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	inc := &ev.Incident
	switch ev.Kind {
	case incident.ResolvedEvent:
		if !r.Sends(inc.Service, inc.PeakSeverity) {
			return false, nil
		}
	case incident.SeverityChanged:
		if !r.Sends(inc.Service, inc.Severity) {
			return false, nil
		}
		if !r.Sends(inc.Service, ev.PreviousSeverity) {
			first := *ev
			first.Kind, first.PreviousSeverity = incident.Opened, 0
			return r.Notifier.Notify(ctx, &first)
		}
	default:
		if !r.Sends(inc.Service, inc.Severity) {
			return false, nil
		}
	}
	return r.Notifier.Notify(ctx, ev)
}

// IsPage forwards to the wrapped receiver, so webhook-to-page is measured.
func (r *Routed) IsPage(ev *incident.Event) bool {
	p, ok := r.Notifier.(PageReporter)
	return ok && p.IsPage(ev)
}
