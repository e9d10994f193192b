// Package status is amtriage's public status page, GET /status: the
// runbook's "Status Page Updates (If Public)" text for the services whose
// profile says public: true, and 30 days of history.
//
// The page is public and unauthenticated, so what it may show is decided in
// one place, Public, which copies an incident field by field into an Entry
// that can hold nothing else: the service name, words chosen from the
// severity and the lifecycle state, and times. Labels, annotations, reasons,
// titles (they quote alerts), diagnosis text, log lines, URLs, silence ids
// and user names never reach the template, so no template change can leak
// them by mistake.
package status

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/view"
)

// Phase is where a public incident stands, in the words status pages use.
type Phase string

// The phases: Investigating while open with no cause named, Identified once
// the diagnosis names one (or a rollback was done), Monitoring while amtriage
// verifies recovery or monitors after it, Resolved once closed.
const (
	Investigating Phase = "Investigating"
	Identified    Phase = "Identified"
	Monitoring    Phase = "Monitoring"
	Resolved      Phase = "Resolved"
)

// Update intervals while open, from the runbook: "Update status page every
// 2 minutes" for Sev 1 and updates every 5 minutes for Sev 2. Sev 3's
// communication is a "Post-incident update", so it has no next update.
// They are the defaults of incidents.sev1_updates and sev2_updates, which
// pace the updates amtriage sends: Cadence carries those.
const (
	Sev1Interval = 2 * time.Minute
	Sev2Interval = 5 * time.Minute
)

// Cadence is how often updates go out while an incident is open, per
// severity; a zero field is the runbook's interval.
type Cadence struct {
	Sev1, Sev2 time.Duration
}

// Entry is one incident as the public may see it. It holds only words chosen
// here from the severity and the state, the service name and times.
type Entry struct {
	Service string
	// Level is the severity the words were chosen from (1–3), for the
	// page's colour; the page never prints it ("Sev 2" is internal).
	Level severity.Level
	// Title is "INCIDENT: <service> major outage" (Sev 1), "… partially
	// degraded" (Sev 2, the runbook's words) or "… degraded performance"
	// (Sev 3).
	Title string
	Phase Phase
	// Message is the sentence after the phase ("Investigating: …").
	Message string
	// Impact is in words, from the severity only: in the present while
	// open, in the past once the impact is over.
	Impact  string
	Started time.Time
	// Ended is when the impact ended (alerts resolved, else closed); zero
	// while open.
	Ended time.Time
	// Duration runs from Started to Ended, or to now while open.
	Duration time.Duration
	// LastUpdated is the latest of Started, Resolved, Closed, the
	// acknowledgement, the last evaluation and a rollback, never after now.
	LastUpdated time.Time
	// NextUpdate is zero when none is promised: Sev 3, Monitoring, Resolved.
	NextUpdate time.Time
}

// Hidden says the incident is not shown at all: Sev 4 (no user impact), or
// no valid severity.
func (e Entry) Hidden() bool { return e.Phase == "" }

// The words per level, 1–3. Sev 1 is the runbook's "complete outage" (no
// user can reach it, or most requests fail); Sev 2 its "partially down or
// significantly degraded"; Sev 3 its "slow or minor issues affecting some
// users".
var (
	titleWords = [...]string{1: "major outage", 2: "partially degraded", 3: "degraded performance"}
	impacts    = [...]string{
		1: "The service is unavailable or most requests are failing",
		2: "Some requests are failing or slow",
		3: "A small share of requests may be slow or failing",
	}
	// Once the impact is over (Monitoring, Resolved), told in the past.
	pastImpacts = [...]string{
		1: "The service was unavailable or most requests were failing",
		2: "Some requests were failing or slow",
		3: "A small share of requests were slow or failing",
	}
	messages = map[Phase]string{
		Investigating: "We are investigating reports of errors and slow responses.",
		Identified:    "The cause has been identified and we are working on a fix.",
		Monitoring:    "The service has recovered; we are monitoring it closely.",
		Resolved:      "This incident has been resolved.",
	}
)

// verifyingMessage: the alerts have stopped, recovery is not checked yet,
// and it may not be (verifying can last): the recovery is not claimed.
const verifyingMessage = "The errors have stopped; we are checking that the service has recovered."

// Public is inc as the public may see it, at now, with the runbook's
// update cadence: the zero Entry (Hidden) for a Sev 4 incident. It does not
// check that the service is public; the handler does that first.
func Public(inc view.Incident, now time.Time) Entry { return Cadence{}.Public(inc, now) }

// Public is inc as the public may see it, at now, next updates promised at
// c's cadence.
func (c Cadence) Public(inc view.Incident, now time.Time) Entry {
	now = now.UTC()
	phase := phaseOf(inc)
	level := publicLevel(inc, phase)
	if level == 0 {
		return Entry{}
	}
	e := Entry{
		Service: inc.Service,
		Level:   level,
		Title:   fmt.Sprintf("INCIDENT: %s %s", inc.Service, titleWords[level]),
		Phase:   phase,
		Message: messages[phase],
		Impact:  impacts[level],
		Started: inc.Started.UTC(),
	}
	end := now
	if phase != Investigating && phase != Identified {
		e.Impact = pastImpacts[level]
		// The users' impact ended when the alerts resolved; a closed
		// incident without that time (closed by hand) ended on closing.
		// Reopening clears Resolved, so an open incident runs to now.
		switch {
		case !inc.Resolved.IsZero():
			end = inc.Resolved.UTC()
		case !inc.Closed.IsZero():
			end = inc.Closed.UTC()
		}
		if phase == Resolved {
			e.Ended = end
		}
	}
	if inc.State == incident.StateVerifying {
		e.Message = verifyingMessage
	}
	if end.After(e.Started) && !e.Started.IsZero() {
		e.Duration = end.Sub(e.Started)
	}
	var rolledBack time.Time // a rollback is news too; only its time is used
	if inc.RolledBack != nil {
		rolledBack = inc.RolledBack.At
	}
	e.LastUpdated = latest(now, inc.Started, inc.Resolved, inc.Closed, inc.AcknowledgedAt, inc.LastEvaluated, rolledBack)
	if interval := c.interval(level, phase); interval > 0 && !e.LastUpdated.IsZero() {
		// The page is regenerated on every request, so the promise is the
		// next tick of the runbook's cadence after now, counted from the
		// last update: never a time already past.
		k := now.Sub(e.LastUpdated)/interval + 1
		e.NextUpdate = e.LastUpdated.Add(k * interval)
	}
	return e
}

// phaseOf maps the lifecycle state. An unknown or empty state counts as open:
// showing an incident as under investigation is safer than hiding it.
func phaseOf(inc view.Incident) Phase {
	switch inc.State {
	case incident.StateClosed:
		return Resolved
	case incident.StateVerifying, incident.StateMonitoring:
		return Monitoring
	}
	if inc.RolledBack != nil || namesCause(inc.Diagnosis) {
		return Identified
	}
	return Investigating
}

// namesCause: only a bad deployment or configuration and exhausted
// resources name a cause a fix can follow. "Application" (running, ready,
// yet failing), "infrastructure" (a dependency to escalate to), "what
// changed" and a skipped diagnosis say where to look, not what is wrong:
// the public is not told the cause is found on their strength.
func namesCause(d *diagnosis.Diagnosis) bool {
	if d == nil {
		return false
	}
	switch d.Category {
	case diagnosis.ConfigOrDeployment, diagnosis.Resources:
		return true
	}
	return false
}

// publicLevel is the severity the words come from, 0 for hidden. While open
// it is the current one (what users meet now); once the impact is over, the
// peak, so the history does not play an incident down. An open incident now
// Sev 4 but worse before keeps its peak's words rather than vanishing
// mid-incident. Never Sev 4: no user impact, nothing to tell the public.
func publicLevel(inc view.Incident, phase Phase) severity.Level {
	shown := func(l severity.Level) bool { return l >= 1 && l <= 3 }
	first, second := inc.PeakSeverity, inc.Severity
	if phase == Investigating || phase == Identified {
		first, second = second, first
	}
	switch {
	case shown(first):
		return first
	case shown(second):
		return second
	}
	return 0
}

// interval is the cadence of updates while the incident is open.
func (c Cadence) interval(level severity.Level, phase Phase) time.Duration {
	if phase != Investigating && phase != Identified {
		return 0
	}
	switch level {
	case 1:
		return cmp.Or(c.Sev1, Sev1Interval)
	case 2:
		return cmp.Or(c.Sev2, Sev2Interval)
	}
	return 0
}

// latest is the latest non-zero time of ts, in UTC, but never after now: a
// clock ahead elsewhere must not date an update in the future.
func latest(now time.Time, ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	if l.After(now) {
		l = now
	}
	return l.UTC()
}

// Words is d in words, to the minute: "less than a minute", "5 minutes",
// "1 hour 5 minutes", "2 days 3 hours".
func Words(d time.Duration) string {
	m := int(d / time.Minute)
	if m < 1 {
		return "less than a minute"
	}
	days, hours, mins := m/(24*60), m/60%24, m%60
	var parts []string
	add := func(n int, unit string) {
		if n == 1 {
			parts = append(parts, "1 "+unit)
		} else if n > 1 {
			parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
		}
	}
	if days > 0 {
		// Past a day the minutes are noise.
		add(days, "day")
		add(hours, "hour")
	} else {
		add(hours, "hour")
		add(mins, "minute")
	}
	return strings.Join(parts, " ")
}
