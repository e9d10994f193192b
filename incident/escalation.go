package incident

import (
	"time"

	"github.com/amtriage/amtriage/diagnosis"
)

// Escalated is the runbook's escalation rule ("If Severity 1 and unable to
// identify cause in 5 minutes … page senior"): emitted once per incident by
// EscalationDue. Receivers that have nothing to do for it skip it.
const Escalated EventKind = "escalated"

// declared records when the incident first became Sev 1: the declaration
// escalation.after counts from (an incident raised to Sev 1 later counts
// from then, not from its detection).
func declared(inc *Incident, at time.Time) {
	if inc.Severity == 1 && inc.Sev1At.IsZero() && inc.Status == Firing {
		inc.Sev1At = at.UTC()
	}
}

// CauseIdentified reports whether the quick diagnosis found a cause: a bad
// rollout or config, resources, the application, infrastructure. "What
// changed recently" (nothing clear), a skipped diagnosis (no cluster) and
// no diagnosis at all are not one.
func CauseIdentified(d *diagnosis.Diagnosis) bool {
	if d == nil {
		return false
	}
	switch d.Category {
	case diagnosis.ConfigOrDeployment, diagnosis.Resources, diagnosis.Application, diagnosis.Infrastructure:
		return true
	}
	return false
}

// EscalationDue escalates every open Sev 1 incident whose cause is not
// identified after since its declaration: it marks the incident escalated
// and emits an Escalated event, both in the returned Changes, which the
// caller commits in one transaction, so a restart neither escalates again
// nor forgets to. after <= 0 turns escalation off.
func (b *Book) EscalationDue(now time.Time, after time.Duration) *Changes {
	ch := &Changes{Tombstones: map[string]Tombstone{}}
	if after <= 0 {
		return ch
	}
	for _, inc := range b.sortedOpen() {
		if inc.Severity != 1 || !inc.EscalatedAt.IsZero() || CauseIdentified(inc.Diagnosis) {
			continue
		}
		if b.CloseAtOnce != nil && b.CloseAtOnce(inc) {
			continue // the dead man's switch: its cause (a silent Alertmanager) is its reason
		}
		if now.Sub(inc.DeclaredSev1()) < after {
			continue
		}
		inc.EscalatedAt = now.UTC()
		inc.note(now, "escalated", "Sev 1 with no identified cause %s after its declaration: the senior engineer on call is paged", after)
		ch.Incidents = append(ch.Incidents, inc)
		ch.Events = append(ch.Events, b.event(Escalated, now, inc, 0))
	}
	return ch
}

// DeclaredSev1 is when the incident was declared Sev 1; for one stored
// before that was recorded, its detection.
func (inc *Incident) DeclaredSev1() time.Time {
	if inc.Sev1At.IsZero() {
		return inc.StartedAt
	}
	return inc.Sev1At
}

// EscalationFacts is what the runbook's escalation message includes, from
// an Escalated event: receivers render it their own way.
type EscalationFacts struct {
	Service string
	// SoFar is how long the incident has lasted, from its detection.
	SoFar time.Duration
	// Stuck is how long it has been Sev 1 without an identified cause.
	Stuck time.Duration
	// Checked is what has been looked at: the quick diagnosis (its
	// summary and evidence) and every signal measured, with its source.
	Checked []string
	// Symptoms are the current ones: the deciding reason of the severity.
	Symptoms []string
	// WhyStuck says why no cause was identified.
	WhyStuck string
}

// maxFactLines bounds each list of the escalation message.
const maxFactLines = 12

// EscalationFacts gathers the escalation message's content from ev's snapshot.
func (ev *Event) EscalationFacts() EscalationFacts {
	inc := &ev.Incident
	f := EscalationFacts{Service: inc.Service, SoFar: ev.At.Sub(inc.StartedAt), Stuck: ev.At.Sub(inc.DeclaredSev1())}
	if len(inc.Reasons) > 0 {
		f.Symptoms = append(f.Symptoms, inc.Reasons[0])
	}
	if d := inc.Diagnosis; d != nil {
		if d.Summary != "" {
			f.Checked = append(f.Checked, "quick diagnosis: "+d.Summary)
		}
		f.Checked = append(f.Checked, d.Evidence...)
	}
	if len(inc.Reasons) > 1 {
		// The decision's per-signal lines: what was measured, and where.
		f.Checked = append(f.Checked, inc.Reasons[1:]...)
	}
	if len(f.Checked) > maxFactLines {
		f.Checked = f.Checked[:maxFactLines]
	}
	switch d := inc.Diagnosis; {
	case d == nil:
		f.WhyStuck = "no quick diagnosis: nothing to look at (no Kubernetes workload or health probe for the service)"
	case d.Category == diagnosis.Skipped:
		f.WhyStuck = d.Summary
	default:
		f.WhyStuck = "the quick diagnosis found no cause (" + string(d.Category) + "): " + d.Summary
	}
	return f
}
