package incident

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
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

	// SilenceRequested, UnsilenceRequested and RollbackRequested are work
	// for the action receivers (Alertmanager, Kubernetes): Event.Act says
	// what. Their outcome comes back as an ActResult.
	SilenceRequested   EventKind = "silence_requested"
	UnsilenceRequested EventKind = "unsilence_requested"
	RollbackRequested  EventKind = "rollback_requested"
	// Silenced, Unsilenced and RolledBack are those outcomes, for the
	// Slack message and its thread.
	Silenced   EventKind = "silenced"
	Unsilenced EventKind = "unsilenced"
	RolledBack EventKind = "rolled_back"
	// ActionRefused: an act was refused or failed; Event.Act.Text says why,
	// to the user alone (Slack's response_url).
	ActionRefused EventKind = "action_refused"
)

// ActionEvents are the kinds only action receivers and Slack take: the
// outbox queues them for nobody else.
var ActionEvents = []EventKind{SilenceRequested, UnsilenceRequested, RollbackRequested, ActionRefused}

// ActKind is what a responder did.
type ActKind string

const (
	ActAcknowledge ActKind = "acknowledge"
	ActPagerDuty   ActKind = "pagerduty"
	ActSilence     ActKind = "silence"
	ActUnsilence   ActKind = "unsilence"
	ActResolve     ActKind = "resolve"
	ActRollback    ActKind = "rollback"
	// ActResult is an action receiver's outcome of a request (Result).
	ActResult ActKind = "result"
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
	// ByName is who acted in words, where By is a mention ("ana" for
	// "<@U123>"): for places that do not render mentions.
	ByName string
	// ResponseURL is where to answer the Slack user (refusals, failures).
	ResponseURL string
	// PagerDuty is, for ActPagerDuty, its event type (incident.acknowledged,
	// ...); PagerDutyID and PagerDutyURL its incident, recorded on ours.
	PagerDuty, PagerDutyID, PagerDutyURL string
	// Escalation: the PagerDuty event is about the escalation page (dedup
	// key <id>/escalation), not the incident's own page.
	Escalation bool
	// SilenceFor is, for ActSilence, how long.
	SilenceFor time.Duration
	// Rollback is, for ActRollback, the undo the button offered: it must
	// still be the diagnosis's.
	Rollback *diagnosis.Rollback
	// Result is, for ActResult, the outcome.
	Result *ActOutcome
}

// ActOutcome is what an action receiver did with a request.
type ActOutcome struct {
	For        ActKind // ActSilence, ActUnsilence or ActRollback
	RequestKey string  // the request's Act.Key
	// Error, when set, is why it was refused or failed, in words.
	Error string
	// SilenceID, SilenceURL and Until are the silence made (ActSilence).
	SilenceID, SilenceURL string
	Until                 time.Time
	// Text is the rollback done, in words.
	Text string
}

// EventAct is what an event about an act tells receivers.
type EventAct struct {
	// Key is the request's: an action receiver's idempotency key.
	Key         string        `json:"key"`
	By          string        `json:"by,omitempty"`
	ByName      string        `json:"byName,omitempty"`
	ResponseURL string        `json:"responseUrl,omitempty"`
	SilenceFor  time.Duration `json:"silenceFor,omitempty"`
	// SilenceID is the silence to expire (UnsilenceRequested).
	SilenceID string              `json:"silenceId,omitempty"`
	Rollback  *diagnosis.Rollback `json:"rollback,omitempty"`
	// Text is the refusal, the failure or the outcome, in words.
	Text string `json:"text,omitempty"`
	// Labels and Varying describe, for SilenceRequested, all the
	// incident's firing alerts (an event carries at most MaxEventAlerts):
	// the labels every one has with one value, and of the others their
	// values (at most maxVaryingValues each; "<none>" for an alert without).
	Labels  map[string]string   `json:"labels,omitempty"`
	Varying map[string][]string `json:"varying,omitempty"`
}

// maxVaryingValues bounds the values EventAct.Varying lists per label.
const maxVaryingValues = 5

// labelSpread is what inc's firing alerts' labels have in common, and how
// the others vary.
func labelSpread(inc *Incident) (map[string]string, map[string][]string) {
	var common map[string]string
	values := map[string]map[string]bool{} // of every label name some alert has: its values seen
	var firing []*Alert
	for _, a := range inc.sortedAlerts() {
		if a.Status != Firing {
			continue
		}
		firing = append(firing, a)
		if common == nil {
			common = map[string]string{}
			for k, v := range a.Labels {
				if v != "" {
					common[k] = v
				}
			}
		}
		for k, v := range common {
			if a.Labels[k] != v {
				delete(common, k)
			}
		}
		for k, v := range a.Labels {
			if v != "" && values[k] == nil {
				values[k] = map[string]bool{}
			}
		}
	}
	varying := map[string][]string{}
	for k, seen := range values {
		if _, ok := common[k]; ok {
			continue
		}
		for _, a := range firing {
			if len(seen) == maxVaryingValues {
				break
			}
			seen[cmp.Or(a.Labels[k], "<none>")] = true
		}
		varying[k] = slices.Sorted(maps.Keys(seen))
	}
	return common, varying
}

// Silence is an amtriage silence of an incident's alerts in Alertmanager.
type Silence struct {
	// RequestKey is the Silence act that asked for it; ID, URL and Until
	// are set once Alertmanager made it (empty: requested, pending).
	RequestKey string    `json:"requestKey"`
	By         string    `json:"by"`
	ID         string    `json:"id,omitempty"`
	URL        string    `json:"url,omitempty"`
	Until      time.Time `json:"until,omitzero"`
	// Unsilencing: an Unsilence was requested and not done yet.
	Unsilencing bool `json:"unsilencing,omitempty"`
}

// PendingFor is how long a request without an outcome holds back another:
// longer than the action receivers keep retrying (15 minutes) before they
// report a failure, so two requests never run at once.
const PendingFor = 20 * time.Minute

// Pending reports whether the silence was requested and not made yet.
func (s *Silence) Pending() bool { return s.ID == "" }

// RollbackDone is a rollback applied to the incident's Deployment.
type RollbackDone struct {
	By     string              `json:"by"`
	At     time.Time           `json:"at"`
	Text   string              `json:"text"`
	Target *diagnosis.Rollback `json:"target,omitempty"`
}

// Request is a request sent to an action receiver and not answered yet:
// its outcome is told with who asked.
type Request struct {
	Key      string              `json:"key"`
	Kind     ActKind             `json:"kind"`
	By       string              `json:"by"`
	At       time.Time           `json:"at"`
	Rollback *diagnosis.Rollback `json:"rollback,omitempty"`
}

// MaxRequests bounds the requests an incident awaits (one silence, one
// unsilence, one rollback at a time; the rest are refused).
const MaxRequests = 8

// request records a request awaited, dropping the oldest beyond MaxRequests.
func (inc *Incident) request(r Request) {
	inc.Requests = append(inc.Requests, r)
	if over := len(inc.Requests) - MaxRequests; over > 0 {
		inc.Requests = append(inc.Requests[:0:0], inc.Requests[over:]...)
	}
}

// answered removes and returns the request keyed key (nil if unknown).
func (inc *Incident) answered(key string) *Request {
	for i, r := range inc.Requests {
		if r.Key == key {
			inc.Requests = slices.Delete(slices.Clone(inc.Requests), i, i+1)
			return &r
		}
	}
	return nil
}

// awaiting is the request of kind still awaited at t, or nil.
func (inc *Incident) awaiting(kind ActKind, t time.Time) *Request {
	for i := len(inc.Requests) - 1; i >= 0; i-- {
		if r := inc.Requests[i]; r.Kind == kind && t.Sub(r.At) < PendingFor {
			return &r
		}
	}
	return nil
}

// ByHand is the resolution of an alert whose incident a responder resolved
// by hand: final for that occurrence, like Alertmanager's (the same alert
// re-sent firing is not a new incident; a new occurrence is).
const ByHand = "hand"

// MaxActKeys bounds the act keys an incident remembers: redeliveries come
// within minutes, so the last few suffice.
const MaxActKeys = 32

// ErrNoIncident is an act on an incident the book does not hold (never
// opened here, or pruned after incidents.retention).
var ErrNoIncident = errors.New("no such incident")

// Act applies a responder's act to incident id and returns what to commit
// (empty for a redelivery). A PagerDuty act with no id is matched by the
// PagerDuty incident id recorded earlier.
func (b *Book) Act(id string, a Act) (*Changes, error) {
	ch := &Changes{Tombstones: map[string]Tombstone{}}
	inc := b.byID[id]
	if inc == nil && a.Kind == ActPagerDuty && a.PagerDutyID != "" {
		inc = b.byPagerDutyID(a.PagerDutyID)
	}
	if inc == nil {
		return ch, ErrNoIncident
	}
	switch a.Kind {
	case ActAcknowledge, ActPagerDuty, ActSilence, ActUnsilence, ActRollback, ActResolve, ActResult:
	default:
		return ch, errors.New("unknown act " + string(a.Kind))
	}
	if slices.Contains(inc.ActKeys, a.Key) {
		return ch, nil
	}
	inc.ActKeys = append(inc.ActKeys, a.Key)
	if over := len(inc.ActKeys) - MaxActKeys; over > 0 {
		inc.ActKeys = append(inc.ActKeys[:0:0], inc.ActKeys[over:]...)
	}
	ch.Incidents = append(ch.Incidents, inc)
	refuse := func(format string, args ...any) (*Changes, error) {
		text := fmt.Sprintf(format, args...)
		inc.note(a.At, "refused", "%s by %s refused: %s", a.Kind, a.By, text)
		ch.Events = append(ch.Events, b.actEvent(ActionRefused, a.At, inc, &EventAct{Key: a.Key, By: a.By, ResponseURL: a.ResponseURL, Text: text}))
		return ch, nil
	}
	closed := inc.State == StateClosed
	switch a.Kind {
	case ActAcknowledge:
		switch {
		case closed:
			return refuse("incident %s is closed", inc.ID)
		case inc.AcknowledgedAt.IsZero():
			inc.AcknowledgedAt, inc.AcknowledgedBy = a.At.UTC(), a.By
			inc.note(a.At, "acknowledged", "acknowledged by %s", a.By)
			ch.Events = append(ch.Events, b.event(Acknowledged, a.At, inc, 0))
		default:
			inc.note(a.At, "acknowledged", "acknowledged again by %s (first by %s)", a.By, inc.AcknowledgedBy)
		}
	case ActPagerDuty:
		if a.Escalation {
			inc.note(a.At, "pagerduty", "PagerDuty escalation page: %s by %s", a.PagerDuty, a.By)
			ch.Events = append(ch.Events, b.actEvent(PagerDutyChanged, a.At, inc, &EventAct{Key: a.Key, By: a.By, Text: "escalation page: " + a.PagerDuty}))
			break
		}
		if a.PagerDutyID != "" && a.PagerDutyID != inc.PagerDutyID {
			inc.PagerDutyID, inc.PagerDutyURL = a.PagerDutyID, a.PagerDutyURL
		} else if a.PagerDutyURL != "" {
			inc.PagerDutyURL = a.PagerDutyURL
		}
		inc.note(a.At, "pagerduty", "PagerDuty: %s by %s", a.PagerDuty, a.By)
		switch a.PagerDuty {
		case "incident.acknowledged":
			if inc.AcknowledgedAt.IsZero() {
				inc.AcknowledgedAt, inc.AcknowledgedBy = a.At.UTC(), a.By
			}
		case "incident.unacknowledged":
			inc.AcknowledgedAt, inc.AcknowledgedBy = time.Time{}, ""
		}
		ch.Events = append(ch.Events, b.actEvent(PagerDutyChanged, a.At, inc, &EventAct{Key: a.Key, By: a.By, Text: a.PagerDuty}))
	case ActSilence:
		switch s := inc.Silence; {
		case closed:
			return refuse("incident %s is closed", inc.ID)
		case s != nil && s.Pending() && inc.awaiting(ActSilence, a.At) != nil:
			return refuse("a silence requested by %s is being made", s.By)
		case s != nil && a.At.Before(s.Until):
			return refuse("already silenced by %s until %s UTC (silence %s): unsilence first", s.By, s.Until.UTC().Format("15:04"), s.ID)
		}
		inc.Silence = &Silence{RequestKey: a.Key, By: a.By}
		inc.request(Request{Key: a.Key, Kind: ActSilence, By: a.By, At: a.At.UTC()})
		inc.note(a.At, "silence", "silence for %s requested by %s", a.SilenceFor, a.By)
		common, varying := labelSpread(inc)
		ch.Events = append(ch.Events, b.actEvent(SilenceRequested, a.At, inc, &EventAct{Key: a.Key, By: a.By, ByName: a.ByName, ResponseURL: a.ResponseURL, SilenceFor: a.SilenceFor,
			Labels: common, Varying: varying}))
	case ActUnsilence:
		s := inc.Silence
		switch {
		case s == nil || (!s.Pending() && !a.At.Before(s.Until)) || (s.Pending() && inc.awaiting(ActSilence, a.At) == nil):
			return refuse("incident %s has no active amtriage silence", inc.ID)
		case s.Pending():
			return refuse("the silence requested by %s is not made yet: unsilence once it is", s.By)
		case s.Unsilencing && inc.awaiting(ActUnsilence, a.At) != nil:
			return refuse("silence %s is being expired", s.ID)
		}
		s.Unsilencing = true
		inc.request(Request{Key: a.Key, Kind: ActUnsilence, By: a.By, At: a.At.UTC()})
		inc.note(a.At, "unsilence", "unsilence of %s requested by %s", s.ID, a.By)
		ch.Events = append(ch.Events, b.actEvent(UnsilenceRequested, a.At, inc, &EventAct{Key: a.Key, By: a.By, ResponseURL: a.ResponseURL, SilenceID: s.ID}))
	case ActRollback:
		var want *diagnosis.Rollback
		if inc.Diagnosis != nil {
			want = inc.Diagnosis.Rollback
		}
		switch {
		case closed:
			return refuse("incident %s is closed", inc.ID)
		case a.Rollback == nil || want == nil || *a.Rollback != *want:
			return refuse("the diagnosis no longer offers this rollback (it now offers %s)", rollbackWords(want))
		}
		if p := inc.awaiting(ActRollback, a.At); p != nil {
			return refuse("a rollback requested by %s is in progress", p.By)
		}
		if d := inc.RolledBack; d != nil && d.Target != nil && *d.Target == *a.Rollback {
			return refuse("%s rolled it back already at %s UTC", d.By, d.At.Format("15:04"))
		}
		r := *a.Rollback
		inc.request(Request{Key: a.Key, Kind: ActRollback, By: a.By, At: a.At.UTC(), Rollback: &r})
		inc.note(a.At, "rollback", "rollback of deployment %s/%s from revision %d to %d requested by %s", r.Namespace, r.Deployment, r.From, r.To, a.By)
		ch.Events = append(ch.Events, b.actEvent(RollbackRequested, a.At, inc, &EventAct{Key: a.Key, By: a.By, ResponseURL: a.ResponseURL, Rollback: &r}))
	case ActResolve:
		if closed {
			return refuse("incident %s is already closed", inc.ID)
		}
		ch.Events = append(ch.Events, b.resolveByHand(inc, a.At, a.By, ch))
	case ActResult:
		b.outcome(inc, a, ch)
	}
	return ch, nil
}

// outcome applies an action receiver's result.
func (b *Book) outcome(inc *Incident, a Act, ch *Changes) {
	r := a.Result
	if r == nil {
		return
	}
	var target *diagnosis.Rollback
	req := inc.answered(r.RequestKey)
	if req != nil {
		a.By, target = req.By, req.Rollback // told with who asked
	}
	s := inc.Silence
	if r.Error != "" {
		inc.note(a.At, "failed", "%s failed: %s", r.For, r.Error)
		switch {
		case r.For == ActSilence && s != nil && s.RequestKey == r.RequestKey:
			inc.Silence = nil
		case r.For == ActUnsilence && s != nil && (req != nil || r.SilenceID == s.ID):
			s.Unsilencing = false // the silence stands: it may be expired again
		}
		ch.Events = append(ch.Events, b.actEvent(ActionRefused, a.At, inc, &EventAct{Key: r.RequestKey, By: a.By, ResponseURL: a.ResponseURL, Text: r.Error}))
		return
	}
	switch r.For {
	case ActSilence:
		if s == nil || s.RequestKey != r.RequestKey && !s.Pending() {
			inc.note(a.At, "silenced", "silence %s made for an earlier request", r.SilenceID)
			return
		}
		s.RequestKey, s.ID, s.URL, s.Until = r.RequestKey, r.SilenceID, r.SilenceURL, r.Until.UTC()
		inc.note(a.At, "silenced", "silenced by %s until %s UTC: silence %s %s", s.By, s.Until.Format("15:04"), s.ID, s.URL)
		ch.Events = append(ch.Events, b.actEvent(Silenced, a.At, inc, &EventAct{Key: r.RequestKey, By: s.By, Text: s.URL}))
	case ActUnsilence:
		id := r.SilenceID
		if s != nil && (id == "" || s.ID == id) {
			inc.Silence = nil
		}
		inc.note(a.At, "unsilenced", "silence %s expired by %s", id, a.By)
		ch.Events = append(ch.Events, b.actEvent(Unsilenced, a.At, inc, &EventAct{Key: r.RequestKey, By: a.By, SilenceID: id}))
	case ActRollback:
		inc.RolledBack = &RollbackDone{By: a.By, At: a.At.UTC(), Text: r.Text, Target: target}
		inc.note(a.At, "rolled_back", "%s, by %s", r.Text, a.By)
		ch.Events = append(ch.Events, b.actEvent(RolledBack, a.At, inc, &EventAct{Key: r.RequestKey, By: a.By, Text: r.Text}))
	}
}

// resolveByHand closes an incident a responder resolved: its firing alerts
// are resolved ByHand, and receivers hear it resolved (PagerDuty resolves,
// Slack and Grafana end it) unless they already did (monitoring).
func (b *Book) resolveByHand(inc *Incident, at time.Time, by string, ch *Changes) Event {
	was := inc.State
	if was == StateOpen {
		b.count(inc.Severity, -1)
	}
	keys := make([]string, 0, len(inc.Alerts))
	for key := range inc.Alerts {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		a := inc.Alerts[key]
		if a.Status == Firing {
			b.unindex(a)
			a.Status, a.ResolvedBy, a.EndsAt = Resolved, ByHand, at.UTC()
			inc.Firing--
		}
		t := Tombstone{IncidentID: inc.ID, ResolvedBy: a.ResolvedBy, At: at}
		b.tombs[key] = t
		ch.Tombstones[key] = t
		delete(b.live, key)
		ch.DeletedAlerts = append(ch.DeletedAlerts, AlertRef{IncidentID: inc.ID, Alert: a})
	}
	inc.Alerts = nil
	inc.Firing = 0
	inc.Status, inc.State, inc.ClosedAt, inc.ClosedBy = Resolved, StateClosed, at.UTC(), by
	if inc.ResolvedAt.IsZero() {
		inc.ResolvedAt = at.UTC()
	}
	inc.note(at, "closed", "resolved by hand by %s (was %s); closed", by, was)
	delete(b.open, inc.GroupedBy())
	if was == StateMonitoring {
		return b.event(Closed, at, inc, 0) // receivers were told it resolved
	}
	return b.event(ResolvedEvent, at, inc, 0)
}

// byPagerDutyID finds the incident a PagerDuty incident id was recorded on.
// PagerDuty events are rare: a scan of the incidents kept is enough.
func (b *Book) byPagerDutyID(pdID string) *Incident {
	for _, inc := range b.byID {
		if inc.PagerDutyID == pdID {
			return inc
		}
	}
	return nil
}

// actEvent is an event about an act.
func (b *Book) actEvent(kind EventKind, at time.Time, inc *Incident, act *EventAct) Event {
	ev := b.event(kind, at, inc, 0)
	ev.Act = act
	return ev
}

func rollbackWords(r *diagnosis.Rollback) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("deployment %s/%s from revision %d to %d", r.Namespace, r.Deployment, r.From, r.To)
}
