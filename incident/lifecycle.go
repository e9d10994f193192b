package incident

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// The lifecycle after the page (SPEC "After the page"): an incident is open
// while alerts fire, verifying once they all resolved until recovery is
// checked, monitoring for incidents.monitor_for after that, then closed.
// Alerts of its unit firing while verifying or monitoring reopen it.
const (
	StateOpen       = "open"
	StateVerifying  = "verifying"
	StateMonitoring = "monitoring"
	StateClosed     = "closed"
)

// States lists the lifecycle's states in order.
var States = []string{StateOpen, StateVerifying, StateMonitoring, StateClosed}

// The lifecycle's events, beyond Opened, SeverityChanged, ResolvedEvent (now
// sent on entering monitoring) and StatusUpdate.
const (
	// VerifyPending is announced once when the first verification round
	// finds recovery not verified: "alerts resolved, recovery not verified: …".
	VerifyPending EventKind = "verify_pending"
	// Reopened: alerts of the unit fire again while verifying or monitoring.
	Reopened EventKind = "reopened"
	// Closed: monitor_for passed quietly in monitoring.
	Closed EventKind = "closed"
)

// NoSource is the verification result of an incident no check could look at.
const NoSource = "resolved, not verified: no source"

// MaxTimeline bounds an incident's timeline: older entries are dropped and
// counted (TimelineDropped), so a flapping incident's state stays bounded.
const MaxTimeline = 200

// Entry is one timeline event, at a UTC time.
type Entry struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Text string    `json:"text,omitempty"`
}

// note appends a timeline entry, dropping the oldest beyond MaxTimeline.
func (inc *Incident) note(at time.Time, kind, format string, args ...any) {
	text := format
	if len(args) > 0 {
		text = fmt.Sprintf(format, args...)
	}
	inc.Timeline = append(inc.Timeline, Entry{At: at.UTC(), Kind: kind, Text: text})
	if over := len(inc.Timeline) - MaxTimeline; over > 0 {
		inc.Timeline = append(inc.Timeline[:0:0], inc.Timeline[over:]...)
		inc.TimelineDropped += over
	}
}

// Note appends a timeline entry (for the caller's own events: updates sent).
func (inc *Incident) Note(at time.Time, kind, text string) { inc.note(at, kind, "%s", text) }

// Active reports whether the incident is not closed: alerts of its unit join it.
func (inc *Incident) Active() bool { return inc.State != StateClosed }

// normalise gives an incident stored before the lifecycle existed its state:
// open while firing, else closed (it was over when it was stored).
func (inc *Incident) normalise() {
	if inc.State != "" {
		return
	}
	inc.State = StateClosed
	if inc.Status == Firing {
		inc.State = StateOpen
	}
}

// Verification is the outcome of one verification round for one incident
// in verifying.
type Verification struct {
	IncidentID string
	// Checks are the round's check results, one timeline line each.
	Checks []string
	// Done moves the incident on to monitoring with Result as its status.
	Done   bool
	Result string
	// Closure is the closure message made for it (empty: Book.Closure's).
	Closure string
	// Pending is why recovery is not verified yet, announced once.
	Pending string
}

// Verifying returns the incidents in verifying, oldest first.
func (b *Book) Verifying() []*Incident {
	var out []*Incident
	for _, inc := range b.open {
		if inc.State == StateVerifying {
			out = append(out, inc)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].VerifyingSince.Equal(out[j].VerifyingSince) {
			return out[i].VerifyingSince.Before(out[j].VerifyingSince)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Verify folds a verification round in: check results on the timeline, a
// first failure announced once, a verified (or timed out) incident moved on
// to monitoring, which resolves it for receivers.
func (b *Book) Verify(at time.Time, vs []Verification) *Changes {
	ch := &Changes{Tombstones: map[string]Tombstone{}}
	for _, v := range vs {
		inc := b.byID[v.IncidentID]
		if inc == nil || inc.State != StateVerifying {
			continue // reopened while it was being checked
		}
		// A check's result goes on the timeline when it differs from the
		// previous round's: re-checks every 30 s of a slow recovery neither
		// flood the timeline nor rewrite the record.
		changed := false
		for i, c := range v.Checks {
			if i >= len(inc.LastChecks) || inc.LastChecks[i] != c {
				inc.note(at, "check", "%s", c)
				changed = true
			}
		}
		if changed || len(inc.LastChecks) != len(v.Checks) {
			inc.LastChecks, changed = slices.Clone(v.Checks), true
		}
		inc.LastVerified = at // in memory: after a restart the first round comes at once
		switch {
		case v.Done:
			inc.LastChecks = nil
			ch.Events = append(ch.Events, b.monitor(inc, at, v.Result, v.Closure))
			changed = true
		case v.Pending != "" && !inc.VerifyAnnounced:
			inc.VerifyAnnounced = true
			inc.Verification = "alerts resolved, recovery not verified: " + v.Pending
			inc.note(at, "verification", "%s", inc.Verification)
			ch.Events = append(ch.Events, b.event(VerifyPending, at, inc, 0))
			changed = true
		case v.Pending != "":
			// Announced once; the record follows the checks (1/3, then
			// 2/3 pods ready), so the API and the post-mortem are current.
			if now := "alerts resolved, recovery not verified: " + v.Pending; now != inc.Verification {
				inc.Verification, changed = now, true
			}
		}
		if changed {
			ch.Incidents = append(ch.Incidents, inc)
		}
	}
	return ch
}

// monitor moves a verifying incident to monitoring with its verification
// result, and returns the ResolvedEvent receivers are told.
func (b *Book) monitor(inc *Incident, at time.Time, result, closure string) Event {
	inc.State = StateMonitoring
	inc.MonitoringSince = at.UTC()
	inc.Verification = result
	inc.note(at, "monitoring", "%s; monitoring", result)
	inc.Closure = closure
	if closure == "" && b.Closure != nil {
		inc.Closure = b.Closure(inc, at)
	}
	return b.event(ResolvedEvent, at, inc, 0)
}

// CloseQuiet closes the incidents that stayed quiet in monitoring for
// monitorFor (0: at once).
func (b *Book) CloseQuiet(now time.Time, monitorFor time.Duration) *Changes {
	ch := &Changes{Tombstones: map[string]Tombstone{}}
	var due []*Incident
	for _, inc := range b.open {
		if inc.State == StateMonitoring && now.Sub(inc.MonitoringSince) >= monitorFor {
			due = append(due, inc)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].ID < due[j].ID })
	for _, inc := range due {
		inc.State = StateClosed
		inc.ClosedAt = now.UTC()
		inc.note(now, "closed", "closed: quiet for %s of monitoring", monitorFor)
		delete(b.open, inc.GroupedBy())
		ch.Incidents = append(ch.Incidents, inc)
		ch.Events = append(ch.Events, b.event(Closed, now, inc, 0))
	}
	return ch
}

// Incidents returns the incidents in state ("all" or "": every one kept),
// most severe first, then oldest.
func (b *Book) Incidents(state string) []*Incident {
	var out []*Incident
	for _, inc := range b.byID {
		if state == "" || state == "all" || inc.State == state {
			out = append(out, inc)
		}
	}
	sortIncidents(out)
	return out
}

func sortIncidents(out []*Incident) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Severity != out[j].Severity {
			return out[i].Severity < out[j].Severity
		}
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
}
