package incident

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/severity"
)

// lastSeenGranularity bounds how stale a persisted LastSeen may be: after a
// restart, staleness is judged at most this much early.
const lastSeenGranularity = time.Minute

func sameDecision(a, b severity.Decision) bool {
	return a.Severity == b.Severity && a.Rule == b.Rule && slices.Equal(a.Reasons, b.Reasons)
}

// Observation is one alert of a notification, triaged.
type Observation struct {
	Alert   Alert // Key, Status, labels… as received; Decision set by triage
	Service string
	// Unit, when set, groups the alert instead of Service (see Incident.Unit).
	Unit string
	// Profile is the service profile the alert's labels matched ("" for
	// none): Service may be a label's value that only looks like one.
	Profile  string
	Decision severity.Decision
}

func (o *Observation) groupedBy() string {
	if o.Unit != "" {
		return o.Unit
	}
	return o.Service
}

// Batch is one webhook notification after triage.
type Batch struct {
	At          time.Time // when it was received: replay after a crash uses the same time
	GroupKey    string
	ExternalURL string
	Receiver    string
	// Complete is true when nothing was cut by max_alerts: the notification then
	// lists every alert of its group, so a member missing from it has resolved.
	Complete     bool
	Observations []Observation
	// Continues marks a later part of one notification too large for one
	// commit: its parts are applied one after another, only the last is
	// Complete, and a member of the group seen in any part is present.
	Continues bool
	// Diagnoses are fresh diagnoses by unit (Observation.Unit, else the
	// service), for the incidents this
	// notification opens or changes.
	Diagnoses map[string]Diagnosed
}

// Diagnosed is a diagnosis made for one alert of the notification.
type Diagnosed struct {
	AlertKey  string
	Diagnosis *diagnosis.Diagnosis
}

// EventKind is what happened to an incident.
type EventKind string

// The incident events notifiers receive.
const (
	Opened          EventKind = "opened"
	SeverityChanged EventKind = "severity_changed"
	ResolvedEvent   EventKind = "resolved"
	// StatusUpdate is the runbook's periodic update while an incident is
	// open (every 2 min at Sev 1, 5 min at Sev 2): nothing changed, the
	// responders hear that it is still going on.
	StatusUpdate EventKind = "status_update"
)

// Event is a change to an incident that receivers are told about. It carries
// a snapshot so delivery later does not depend on the live state.
type Event struct {
	Kind             EventKind      `json:"kind"`
	At               time.Time      `json:"at"`
	Incident         Incident       `json:"incident"`
	PreviousSeverity severity.Level `json:"previousSeverity,omitempty"`
	// Alerts: the incident's members, firing first, at most MaxEventAlerts.
	// AlertsTotal counts every alert it had, the resolved ones that left too.
	Alerts      []Alert `json:"alerts"`
	AlertsTotal int     `json:"alertsTotal"`
	// PreviousState is the state a Reopened incident was in.
	PreviousState string `json:"previousState,omitempty"`
	// Act is, for an event about a responder's act, what was asked and by whom.
	Act *EventAct `json:"act,omitempty"`
}

// MaxEventAlerts caps the alerts an event carries; a storm's count is in AlertsTotal.
const MaxEventAlerts = 50

// AlertRef names an alert record: alerts are stored per incident.
type AlertRef struct {
	IncidentID string
	Alert      *Alert
}

// Changes is what a step changed; the caller persists it atomically.
type Changes struct {
	Incidents     []*Incident // to put (by ID)
	Alerts        []AlertRef  // to put
	DeletedAlerts []AlertRef  // to delete (their incident resolved)
	Tombstones    map[string]Tombstone
	// DeletedTombstones are occurrences whose inferred resolution was undone.
	DeletedTombstones []string
	Events            []Event
	Decisions         int // alerts (re)decided: what the idempotency tests count
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool {
	return len(c.Incidents) == 0 && len(c.Alerts) == 0 && len(c.DeletedAlerts) == 0 &&
		len(c.Tombstones) == 0 && len(c.DeletedTombstones) == 0 && len(c.Events) == 0
}

// Book is the in-memory incident state. It is not safe for concurrent use;
// the pipeline owns it and publishes snapshots.
type Book struct {
	open  map[string]*Incident // unit (else service) → open incident
	byID  map[string]*Incident // open and recently resolved
	live  map[string]*Incident // occurrence key → open incident holding it
	tombs map[string]Tombstone // resolved occurrences
	// groups indexes firing alerts by the group that last delivered them
	// (externalURL + receiver + groupKey), so a complete notification checks
	// only its own group's members, never another Alertmanager's.
	groups map[string]map[string]*Incident
	// notification counts Apply calls but for continued parts; a member
	// whose seen mark is not the current one is absent from the notification.
	notification uint64
	counts       [5]int // open incidents by severity

	// Verifies reports whether any verification check can look at an
	// incident (nil: none can); one no check can look at goes to
	// monitoring at once, NoSource.
	Verifies func(inc *Incident) bool
	// CloseAtOnce marks incidents that skip verifying and monitoring: they
	// close as their alerts resolve (the dead man's switch: a new silence
	// is a new incident).
	CloseAtOnce func(inc *Incident) bool
	// Closure builds the closure message stored on entering monitoring (nil: none).
	Closure func(inc *Incident, at time.Time) string
}

// NewBook returns an empty book.
func NewBook() *Book {
	return &Book{
		open:   map[string]*Incident{},
		byID:   map[string]*Incident{},
		live:   map[string]*Incident{},
		tombs:  map[string]Tombstone{},
		groups: map[string]map[string]*Incident{},
	}
}

// scope is the group a notification speaks for. A notification without a
// groupKey speaks for none: it resolves nothing by absence.
func scope(externalURL, receiver, groupKey string) string {
	if groupKey == "" {
		return ""
	}
	return externalURL + "\x00" + receiver + "\x00" + groupKey
}

func (a *Alert) scope() string { return scope(a.ExternalURL, a.Receiver, a.GroupKey) }

func (batch *Batch) scope() string { return scope(batch.ExternalURL, batch.Receiver, batch.GroupKey) }

// deliveredBy records the group that delivered a.
func (a *Alert) deliveredBy(batch *Batch) {
	a.GroupKey, a.ExternalURL, a.Receiver = batch.GroupKey, batch.ExternalURL, batch.Receiver
}

// move indexes a firing member under the group that delivered it now, and
// reports whether that is another group than before.
func (b *Book) move(inc *Incident, a *Alert, batch *Batch) bool {
	if a.GroupKey == batch.GroupKey && a.ExternalURL == batch.ExternalURL && a.Receiver == batch.Receiver {
		return false
	}
	b.unindex(a)
	a.deliveredBy(batch)
	b.index(inc, a)
	return true
}

func (b *Book) index(inc *Incident, a *Alert) {
	g := a.scope()
	if g == "" {
		return
	}
	m := b.groups[g]
	if m == nil {
		m = map[string]*Incident{}
		b.groups[g] = m
	}
	m[a.Key] = inc
}

func (b *Book) unindex(a *Alert) {
	g := a.scope()
	if m := b.groups[g]; m != nil {
		delete(m, a.Key)
		if len(m) == 0 {
			delete(b.groups, g)
		}
	}
}

// Restore loads persisted state: incidents, the alerts of open ones, tombstones.
func (b *Book) Restore(incidents []*Incident, alerts []AlertRef, tombs map[string]Tombstone) {
	for _, inc := range incidents {
		inc.normalise()
		b.byID[inc.ID] = inc
		if inc.Active() {
			b.open[inc.GroupedBy()] = inc
		}
		if inc.Status == Firing {
			inc.Alerts = map[string]*Alert{}
		}
		if inc.State == StateOpen {
			b.count(inc.Severity, 1)
		}
	}
	for _, ref := range alerts {
		inc := b.byID[ref.IncidentID]
		if inc == nil || inc.Status != Firing {
			continue
		}
		inc.Alerts[ref.Alert.Key] = ref.Alert
		b.live[ref.Alert.Key] = inc
		if ref.Alert.Status == Firing {
			b.index(inc, ref.Alert)
		}
	}
	for k, t := range tombs {
		b.tombs[k] = t
	}
}

type before struct {
	severity severity.Level
	isNew    bool
	state    string
}

// step accumulates one Apply's effects.
type step struct {
	b       *Book
	ch      *Changes
	touched map[*Incident]before
	order   []*Incident
	// dirty are the alerts this step changed, by incident.
	dirty map[*Incident]map[*Alert]struct{}
	// rescan marks incidents whose decisive alert changed or left, which
	// needs a walk over all members; otherwise only dirty alerts compete.
	rescan map[*Incident]bool
	// diagnosed are this step's fresh diagnoses, applied once the
	// incident's severity is known.
	diagnosed map[*Incident]Diagnosed
}

func (b *Book) newStep() *step {
	return &step{b: b, ch: &Changes{Tombstones: map[string]Tombstone{}}, touched: map[*Incident]before{},
		dirty: map[*Incident]map[*Alert]struct{}{}, rescan: map[*Incident]bool{}, diagnosed: map[*Incident]Diagnosed{}}
}

func (s *step) touch(inc *Incident, isNew bool) {
	if _, ok := s.touched[inc]; ok {
		return
	}
	s.touched[inc] = before{severity: inc.Severity, isNew: isNew, state: inc.State}
	s.order = append(s.order, inc)
}

func (s *step) markAlert(inc *Incident, a *Alert) {
	set := s.dirty[inc]
	if set == nil {
		set = map[*Alert]struct{}{}
		s.dirty[inc] = set
	}
	set[a] = struct{}{}
	if a.Key == inc.Decisive {
		s.rescan[inc] = true
	}
}

// Apply folds one notification into the book. Redelivering the same
// notification changes nothing: an occurrence is fingerprint + startsAt, and a
// status already seen for it is a duplicate.
func (b *Book) Apply(batch Batch) *Changes {
	s := b.newStep()
	if !batch.Continues || b.notification == 0 {
		b.notification++
	}
	for i := range batch.Observations {
		s.observe(batch, &batch.Observations[i])
	}
	if batch.Complete && batch.scope() != "" {
		s.resolveAbsent(batch)
	}
	for _, unit := range slices.Sorted(maps.Keys(batch.Diagnoses)) {
		if inc := b.open[unit]; inc != nil && batch.Diagnoses[unit].Diagnosis != nil {
			s.diagnosed[inc] = batch.Diagnoses[unit]
			s.touch(inc, false)
		}
	}
	return s.finish(batch.At)
}

// Reevaluation is a fresh triage of an open incident's firing alerts.
type Reevaluation struct {
	IncidentID string
	// Decisions are the new decisions by occurrence key; alerts that stopped
	// firing meanwhile are ignored.
	Decisions map[string]severity.Decision
	Diagnosis Diagnosed // of its most severe alert; none keeps the previous one
}

// Reevaluate folds fresh decisions into open incidents. A change of the
// incident's severity, either way, is announced (SeverityChanged): receivers
// decide what a drop means (PagerDuty does not un-page while alerts fire).
func (b *Book) Reevaluate(at time.Time, rs []Reevaluation) *Changes {
	s := b.newStep()
	for _, r := range rs {
		inc := b.byID[r.IncidentID]
		if inc == nil || inc.Status != Firing || inc.State != StateOpen {
			continue // resolved while it was being re-evaluated
		}
		inc.LastEvaluated = at
		if r.Diagnosis.Diagnosis != nil {
			s.diagnosed[inc] = r.Diagnosis // applied by finish, as Apply's are
		}
		s.touch(inc, false)
		for _, key := range slices.Sorted(maps.Keys(r.Decisions)) {
			a := inc.Alerts[key]
			if a == nil || a.Status != Firing {
				continue
			}
			if d := r.Decisions[key]; !sameDecision(a.Decision, d) {
				a.Decision = d
				s.ch.Decisions++
				s.markAlert(inc, a)
				s.rescan[inc] = true // a lower decision can dethrone the decisive alert
			}
		}
	}
	return s.finish(at)
}

// DueForReevaluation returns the open incidents whose severity has a
// re-evaluation interval that has passed since their last evaluation.
func (b *Book) DueForReevaluation(now time.Time, every map[severity.Level]time.Duration) []*Incident {
	var due []*Incident
	for _, inc := range b.sortedOpen() {
		if interval := every[inc.Severity]; interval > 0 && now.Sub(inc.LastEvaluated) >= interval {
			due = append(due, inc)
		}
	}
	return due
}

func (s *step) observe(batch Batch, o *Observation) {
	b := s.b
	key := o.Alert.Key
	if inc, ok := b.live[key]; ok {
		a := inc.Alerts[key]
		a.seen = b.notification
		switch {
		case o.Alert.Status == Firing && a.Status == Firing:
			// A redelivery. Persist it only when it says something new, or
			// when LastSeen has moved enough to matter for staleness, so the
			// groups Alertmanager resends cost no writes.
			changed := b.move(inc, a, &batch) || !sameDecision(a.Decision, o.Decision) ||
				!maps.Equal(a.Annotations, o.Alert.Annotations) || batch.At.Sub(a.LastSeen) >= lastSeenGranularity
			if !changed {
				return
			}
			a.LastSeen = batch.At
			a.Annotations = o.Alert.Annotations
			a.Decision = o.Decision
			s.ch.Decisions++
		case o.Alert.Status == Resolved && a.Status == Firing:
			b.unindex(a)
			a.Status, a.ResolvedBy, a.EndsAt, a.LastSeen = Resolved, ByAlertmanager, o.Alert.EndsAt, batch.At
			inc.Firing--
		case o.Alert.Status == Resolved && a.ResolvedBy != ByAlertmanager:
			// Alertmanager confirms an inferred resolution: it is now final.
			a.ResolvedBy, a.LastSeen = ByAlertmanager, batch.At
			if !o.Alert.EndsAt.IsZero() {
				a.EndsAt = o.Alert.EndsAt
			}
		case o.Alert.Status == Firing && a.ResolvedBy != ByAlertmanager:
			// An inferred resolution was wrong: the occurrence still fires.
			a.Status, a.ResolvedBy, a.EndsAt, a.LastSeen = Firing, "", time.Time{}, batch.At
			a.Decision = o.Decision
			a.deliveredBy(&batch)
			b.index(inc, a)
			inc.Firing++
			s.ch.Decisions++
		default:
			return // a status already seen: duplicate
		}
		s.touch(inc, false)
		s.markAlert(inc, a)
		return
	}
	rejoins := "" // the incident an inferred resolution took it out of
	if t, ok := b.tombs[key]; ok {
		if o.Alert.Status == Resolved && t.ResolvedBy != ByAlertmanager {
			// Alertmanager confirms an inferred resolution: it is now final.
			t.ResolvedBy = ByAlertmanager
			b.tombs[key] = t
			s.ch.Tombstones[key] = t
			return
		}
		if o.Alert.Status == Resolved || t.ResolvedBy == ByAlertmanager || t.ResolvedBy == ByHand {
			return // duplicate, or a stale firing redelivered after the resolve
		}
		delete(b.tombs, key) // inferred resolution undone below
		delete(s.ch.Tombstones, key)
		s.ch.DeletedTombstones = append(s.ch.DeletedTombstones, key)
		rejoins = t.IncidentID
	}
	if o.Alert.Status == Resolved {
		// Never seen firing (cut by max_alerts, or before we started): remember
		// it so a late redelivery of its firing does not open an incident.
		t := Tombstone{ResolvedBy: ByAlertmanager, At: batch.At}
		b.tombs[key] = t
		s.ch.Tombstones[key] = t
		return
	}
	inc, isNew := b.open[o.groupedBy()], false
	if inc == nil {
		isNew = true
		inc = &Incident{
			ID:          newID(o.Service, o.Unit+key),
			Service:     o.Service,
			Unit:        o.Unit,
			Status:      Firing,
			State:       StateOpen,
			StartedAt:   o.Alert.StartsAt.UTC(),
			ExternalURL: batch.ExternalURL,
			Alerts:      map[string]*Alert{},
		}
		for b.byID[inc.ID] != nil { // the same occurrence can reopen after an inferred resolve
			inc.ID = newID(inc.ID, key)
		}
		inc.Profile = o.Profile
		b.open[o.groupedBy()] = inc
		b.byID[inc.ID] = inc
		inc.note(o.Alert.StartsAt, "detected", "%s firing", o.Alert.Name)
	} else if inc.Alerts == nil { // verifying or monitoring: it reopens
		inc.Alerts = map[string]*Alert{}
	}
	if o.Profile != inc.Profile {
		inc.Profile = "" // an alert outside its profile joined: it is no longer all the profile's
	}
	a := o.Alert
	a.Decision, a.LastSeen, a.seen = o.Decision, batch.At, b.notification
	a.deliveredBy(&batch)
	inc.Alerts[key] = &a
	inc.Firing++
	if rejoins == inc.ID && inc.Left > 0 {
		inc.Left-- // counted once, as a member again
	}
	if a.StartsAt.Before(inc.StartedAt) {
		inc.StartedAt = a.StartsAt.UTC()
	}
	b.live[key] = inc
	b.index(inc, &a)
	s.ch.Decisions++
	s.touch(inc, isNew)
	s.markAlert(inc, &a)
}

func (s *step) resolveAbsent(batch Batch) {
	members := s.b.groups[batch.scope()]
	keys := make([]string, 0, len(members))
	for key, inc := range members {
		if inc.Alerts[key].seen != s.b.notification {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	for _, key := range keys {
		inc := members[key]
		a := inc.Alerts[key]
		s.b.unindex(a)
		a.Status, a.ResolvedBy, a.EndsAt = Resolved, ByAbsence, batch.At
		inc.Firing--
		s.touch(inc, false)
		s.markAlert(inc, a)
	}
}

// SweepStale resolves firing alerts not seen for staleAfter: resolutions cut
// from truncated notifications would otherwise keep incidents open forever.
func (b *Book) SweepStale(now time.Time, staleAfter time.Duration) *Changes {
	s := b.newStep()
	if staleAfter <= 0 {
		return s.ch
	}
	for _, inc := range b.sortedOpen() {
		for _, a := range inc.sortedAlerts() {
			if a.Status == Firing && now.Sub(a.LastSeen) >= staleAfter {
				b.unindex(a)
				a.Status, a.ResolvedBy, a.EndsAt = Resolved, ByStaleness, now
				inc.Firing--
				s.touch(inc, false)
				s.markAlert(inc, a)
			}
		}
	}
	return s.finish(now)
}

// StatusDue emits a StatusUpdate for every open incident whose severity has
// an update interval and whose last event is at least that old.
func (b *Book) StatusDue(now time.Time, every map[severity.Level]time.Duration) *Changes {
	ch := &Changes{Tombstones: map[string]Tombstone{}}
	for _, inc := range b.sortedOpen() {
		interval := every[inc.Severity]
		if interval <= 0 || now.Sub(inc.LastStatus) < interval {
			continue
		}
		inc.LastStatus = now
		ch.Incidents = append(ch.Incidents, inc)
		ch.Events = append(ch.Events, b.event(StatusUpdate, now, inc, 0))
	}
	return ch
}

// Prune forgets closed incidents (resolved for longer than retention) and tombstones older than retention. It
// returns the incident ids and tombstone keys to delete from the store.
func (b *Book) Prune(now time.Time, retention time.Duration) (incidents, tombstones []string) {
	for id, inc := range b.byID {
		if inc.State == StateClosed && now.Sub(cmp.Or(inc.ClosedAt, inc.ResolvedAt)) > retention { // kept for retention after it closed
			delete(b.byID, id)
			incidents = append(incidents, id)
		}
	}
	for k, t := range b.tombs {
		if now.Sub(t.At) > retention {
			delete(b.tombs, k)
			tombstones = append(tombstones, k)
		}
	}
	sort.Strings(incidents)
	sort.Strings(tombstones)
	return incidents, tombstones
}

func (s *step) finish(at time.Time) *Changes {
	for _, inc := range s.order {
		prev := s.touched[inc]
		wasOpen := prev.isNew || prev.state == StateOpen
		if !prev.isNew && prev.state == StateOpen {
			s.b.count(prev.severity, -1)
		}
		s.recompute(inc)
		if prev.isNew { // before its diagnosis, on the timeline
			inc.note(at, "declared", "declared Sev %d: %s", inc.Severity, firstReason(inc))
		}
		s.diagnose(inc, at)
		declared(inc, at)
		resolvedNow, reopened := false, false
		switch {
		case inc.Firing == 0 && wasOpen:
			s.resolve(inc, at)
			resolvedNow = true
		case inc.Firing > 0:
			s.dropResolved(inc, at)
			if !wasOpen {
				s.reopen(inc, at, prev.state)
				reopened = true
			}
		}
		switch {
		case prev.isNew:
			inc.LastStatus, inc.LastEvaluated = at, at
			s.ch.Events = append(s.ch.Events, s.b.event(Opened, at, inc, 0))
			if resolvedNow {
				s.verifying(inc, at)
			}
		case resolvedNow:
			s.verifying(inc, at)
		case reopened:
			inc.LastStatus, inc.LastEvaluated = at, at
			ev := s.b.event(Reopened, at, inc, prev.severity) // a page must follow a rise while verifying
			ev.PreviousState = prev.state
			s.ch.Events = append(s.ch.Events, ev)
		case inc.State == StateOpen && inc.Severity != prev.severity:
			inc.LastStatus = at
			inc.note(at, "severity", "Sev %d → Sev %d: %s", prev.severity, inc.Severity, firstReason(inc))
			s.ch.Events = append(s.ch.Events, s.b.event(SeverityChanged, at, inc, prev.severity))
		}
		if inc.State == StateOpen {
			s.b.count(inc.Severity, 1)
		}
		s.ch.Incidents = append(s.ch.Incidents, inc)
	}
	for _, inc := range s.order {
		if inc.Status == Resolved {
			inc.Alerts = nil // tombstones remember its occurrences
		}
	}
	for inc, set := range s.dirty {
		for a := range set {
			if inc.Status == Firing && inc.Alerts[a.Key] == a {
				s.ch.Alerts = append(s.ch.Alerts, AlertRef{IncidentID: inc.ID, Alert: a})
			}
		}
	}
	sort.Slice(s.ch.Alerts, func(i, j int) bool { return s.ch.Alerts[i].Alert.Key < s.ch.Alerts[j].Alert.Key })
	return s.ch
}

// diagnose keeps the diagnosis of the incident's most severe alerts: a fresh
// one made for a less severe alert joining the incident does not replace it.
func (s *step) diagnose(inc *Incident, at time.Time) {
	d, ok := s.diagnosed[inc]
	if !ok {
		return
	}
	a := inc.Alerts[d.AlertKey]
	if inc.Diagnosis == nil || (a != nil && a.Status == Firing && a.Decision.Severity <= inc.Severity) {
		if inc.Diagnosis == nil || inc.Diagnosis.Summary != d.Diagnosis.Summary {
			inc.note(at, "diagnosis", "%s", d.Diagnosis.Summary)
		}
		inc.Diagnosis = d.Diagnosis
	}
}

// recompute sets the incident's severity to its most severe firing alert's.
// Ties keep the current decisive alert, so the reasons do not flap, and
// otherwise go to the smallest key, so the outcome is independent of order.
// Unless the decisive alert itself changed, only this step's alerts can
// displace it, which keeps a storm's redeliveries O(changed alerts).
func (s *step) recompute(inc *Incident) {
	best := inc.Alerts[inc.Decisive]
	if best != nil && best.Status != Firing {
		best = nil
	}
	better := func(a *Alert) bool {
		if a.Status != Firing || a == best {
			return false
		}
		return best == nil || a.Decision.Severity < best.Decision.Severity ||
			(a.Decision.Severity == best.Decision.Severity && best.Key != inc.Decisive && a.Key < best.Key)
	}
	if best == nil || s.rescan[inc] {
		for _, a := range inc.Alerts {
			if better(a) {
				best = a
			}
		}
	} else {
		for a := range s.dirty[inc] {
			if better(a) {
				best = a
			}
		}
	}
	if best == nil {
		return // all resolved: keep the last decision for the record
	}
	changed := inc.Decisive != best.Key || inc.Severity != best.Decision.Severity
	if inc.Decisive != best.Key {
		inc.Where = where(best.Labels)
	}
	inc.Decisive = best.Key
	inc.Severity = best.Decision.Severity
	inc.Rule = best.Decision.Rule
	inc.Reasons = best.Decision.Reasons
	if inc.PeakSeverity == 0 || inc.Severity < inc.PeakSeverity {
		inc.PeakSeverity = inc.Severity
	}
	// The title follows the decisive alert, and the detection time when an
	// earlier alert joins; a changed summary alone does not retitle.
	if changed || !strings.HasSuffix(inc.Title, sinceUTC(inc.StartedAt)) {
		inc.Title = title(inc.Service, best, inc.StartedAt)
	}
}

// dropResolved takes the members that resolved in this step out of an
// incident that stays open: membership is bounded by what fires, not by
// history. A tombstone remembers each, as for a resolved incident, so a
// redelivery is still a duplicate; one seen firing again after an inferred
// resolution joins the service's incident anew.
func (s *step) dropResolved(inc *Incident, at time.Time) {
	var gone []*Alert
	for a := range s.dirty[inc] {
		if a.Status == Resolved && inc.Alerts[a.Key] == a {
			gone = append(gone, a)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Key < gone[j].Key })
	for _, a := range gone {
		delete(inc.Alerts, a.Key)
		delete(s.b.live, a.Key)
		inc.Left++
		if a.EndsAt.After(inc.LeftEnded) {
			inc.LeftEnded = a.EndsAt
		}
		t := Tombstone{IncidentID: inc.ID, ResolvedBy: a.ResolvedBy, At: at}
		s.b.tombs[a.Key] = t
		s.ch.Tombstones[a.Key] = t
		s.ch.DeletedAlerts = append(s.ch.DeletedAlerts, AlertRef{IncidentID: inc.ID, Alert: a})
	}
}

// verifying starts verifying a resolved incident's recovery; one no check
// can look at moves on to monitoring at once, which resolves it for
// receivers.
func (s *step) verifying(inc *Incident, at time.Time) {
	inc.State = StateVerifying
	inc.VerifyingSince, inc.LastVerified = at.UTC(), time.Time{}
	inc.Verification, inc.VerifyAnnounced, inc.LastChecks = "", false, nil
	if s.b.CloseAtOnce != nil && s.b.CloseAtOnce(inc) {
		inc.State, inc.ClosedAt = StateClosed, at.UTC()
		inc.note(at, "closed", "all alerts resolved; closed")
		delete(s.b.open, inc.GroupedBy())
		s.ch.Events = append(s.ch.Events, s.b.event(ResolvedEvent, at, inc, 0))
		return
	}
	inc.note(at, "resolved", "all alerts resolved; verifying recovery")
	if s.b.Verifies == nil || !s.b.Verifies(inc) {
		s.ch.Events = append(s.ch.Events, s.b.monitor(inc, at, NoSource, ""))
	}
}

// reopen puts a verifying or monitoring incident whose unit fires again
// back to open: the same incident, one recurrence more.
func (s *step) reopen(inc *Incident, at time.Time, from string) {
	inc.State, inc.Status = StateOpen, Firing
	inc.ResolvedAt, inc.VerifyingSince, inc.MonitoringSince = time.Time{}, time.Time{}, time.Time{}
	inc.Verification, inc.VerifyAnnounced, inc.Closure, inc.LastChecks = "", false, "", nil
	inc.Recurrences++
	inc.note(at, "reopened", "alerts firing again while %s: recurrence %d, Sev %d", from, inc.Recurrences, inc.Severity)
}

func firstReason(inc *Incident) string {
	if len(inc.Reasons) > 0 {
		return inc.Reasons[0]
	}
	return inc.Title
}

func (s *step) resolve(inc *Incident, at time.Time) {
	inc.Status = Resolved
	end := inc.LeftEnded
	for _, a := range inc.Alerts {
		if a.EndsAt.After(end) {
			end = a.EndsAt
		}
	}
	if end.IsZero() || end.Before(inc.StartedAt) {
		end = at
	}
	inc.ResolvedAt = end.UTC()
	for key, a := range inc.Alerts {
		t := Tombstone{IncidentID: inc.ID, ResolvedBy: a.ResolvedBy, At: at}
		s.b.tombs[key] = t
		s.ch.Tombstones[key] = t
		delete(s.b.live, key)
		s.ch.DeletedAlerts = append(s.ch.DeletedAlerts, AlertRef{IncidentID: inc.ID, Alert: a})
	}
	sort.Slice(s.ch.DeletedAlerts, func(i, j int) bool {
		return s.ch.DeletedAlerts[i].Alert.Key < s.ch.DeletedAlerts[j].Alert.Key
	})
}

// event snapshots the incident for receivers. It carries what they show:
// the incident's decision and reasons, and of its alerts their labels,
// annotations and severity, with the whole decision of the decisive one
// only. An event is queued for every receiver, so what none of them reads
// is left out.
func (b *Book) event(kind EventKind, at time.Time, inc *Incident, prev severity.Level) Event {
	ev := Event{Kind: kind, At: at, Incident: *inc, PreviousSeverity: prev, AlertsTotal: len(inc.Alerts) + inc.Left}
	ev.Incident.Alerts, ev.Incident.Timeline = nil, nil // receivers never read the timeline
	ev.Incident.LastStatus, ev.Incident.LastEvaluated = time.Time{}, time.Time{}
	for _, a := range inc.sortedAlerts() {
		if len(ev.Alerts) == MaxEventAlerts {
			break
		}
		ea := *a
		if ea.Key != inc.Decisive {
			ea.Decision.Reasons, ea.Decision.Signals = nil, severity.Signals{}
		}
		ea.LastSeen, ea.GroupKey, ea.ExternalURL, ea.Receiver = time.Time{}, "", "", ""
		ev.Alerts = append(ev.Alerts, ea)
	}
	return ev
}

// Snapshot is an event of kind for inc as it is now.
func (b *Book) Snapshot(kind EventKind, at time.Time, inc *Incident) Event {
	return b.event(kind, at, inc, 0)
}

// Firing returns the live firing alert for an occurrence key, and its
// incident; nil if the occurrence is not firing in an open incident.
func (b *Book) Firing(key string) (*Alert, *Incident) {
	inc := b.live[key]
	if inc == nil {
		return nil, nil
	}
	if a := inc.Alerts[key]; a != nil && a.Status == Firing {
		return a, inc
	}
	return nil, nil
}

// CountOpen counts open incidents by severity (index 1..4). The counts
// are kept as steps change incidents: they are read after every commit.
func (b *Book) CountOpen() [5]int { return b.counts }

// count adds delta to the open incidents of severity sev.
func (b *Book) count(sev severity.Level, delta int) {
	if sev >= 1 && sev <= 4 {
		b.counts[sev] += delta
	}
}

// OpenCount is the number of open incidents.
func (b *Book) OpenCount() int {
	n := 0
	for _, inc := range b.open {
		if inc.State == StateOpen {
			n++
		}
	}
	return n
}

// Open returns the open incidents (state open: alerts firing), most severe
// first, then oldest.
func (b *Book) Open() []*Incident { return b.sortedOpen() }

// Get returns an incident by id, open or recently resolved.
func (b *Book) Get(id string) *Incident { return b.byID[id] }

func (b *Book) sortedOpen() []*Incident {
	out := make([]*Incident, 0, len(b.open))
	for _, inc := range b.open {
		if inc.State == StateOpen {
			out = append(out, inc)
		}
	}
	sortIncidents(out)
	return out
}

// sortedAlerts orders members firing first, most severe first, then by key, so
// every walk over them is deterministic.
func (inc *Incident) sortedAlerts() []*Alert {
	out := make([]*Alert, 0, len(inc.Alerts))
	for _, a := range inc.Alerts {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Status == Firing) != (out[j].Status == Firing) {
			return out[i].Status == Firing
		}
		if out[i].Decision.Severity != out[j].Decision.Severity {
			return out[i].Decision.Severity < out[j].Decision.Severity
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// SortedAlerts is the incident's members in display order.
func (inc *Incident) SortedAlerts() []*Alert { return inc.sortedAlerts() }
