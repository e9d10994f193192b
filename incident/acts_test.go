package incident

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
)

func TestActs(t *testing.T) {
	b := NewBook()
	ch := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1)))
	if len(ch.Incidents) != 1 {
		t.Fatalf("opened %d incidents", len(ch.Incidents))
	}
	id := ch.Incidents[0].ID
	ack := Act{Key: "slack:T:U1:ack:1", Kind: ActAcknowledge, At: t0.Add(time.Minute), By: "<@U1>"}
	got, err := b.Act(id, ack)
	if err != nil || len(got.Events) != 1 || got.Events[0].Kind != Acknowledged {
		t.Fatalf("acknowledge: %+v, %v; want one Acknowledged event", got, err)
	}
	inc := b.Get(id)
	if inc.AcknowledgedBy != "<@U1>" || !inc.AcknowledgedAt.Equal(ack.At) {
		t.Errorf("acknowledged by %q at %v", inc.AcknowledgedBy, inc.AcknowledgedAt)
	}
	// Slack retries the same click: nothing changes.
	if again, err := b.Act(id, ack); err != nil || len(again.Events) != 0 || len(again.Incidents) != 0 {
		t.Errorf("a redelivered act changed %+v (%v)", again, err)
	}
	// A second click by someone else: noted, no second acknowledge.
	second, _ := b.Act(id, Act{Key: "slack:T:U2:ack:2", Kind: ActAcknowledge, At: t0.Add(2 * time.Minute), By: "<@U2>"})
	if len(second.Events) != 0 || b.Get(id).AcknowledgedBy != "<@U1>" {
		t.Errorf("a second acknowledge emitted %d events, acknowledged by %q", len(second.Events), b.Get(id).AcknowledgedBy)
	}
	pd, _ := b.Act(id, Act{Key: "PD1", Kind: ActPagerDuty, At: t0.Add(3 * time.Minute), By: "Ana (PagerDuty)", PagerDuty: "incident.unacknowledged"})
	if len(pd.Events) != 1 || pd.Events[0].Kind != PagerDutyChanged || b.Get(id).AcknowledgedBy != "" {
		t.Errorf("PagerDuty unacknowledged: %+v; acknowledged by %q", pd.Events, b.Get(id).AcknowledgedBy)
	}
	last := b.Get(id).Timeline[len(b.Get(id).Timeline)-1]
	if last.Kind != "pagerduty" || last.Text != "PagerDuty: incident.unacknowledged by Ana (PagerDuty)" {
		t.Errorf("timeline ends with %+v", last)
	}
	if _, err := b.Act("nope", ack); err != ErrNoIncident {
		t.Errorf("act on an unknown incident: %v", err)
	}
	for i := range MaxActKeys + 5 {
		b.Act(id, Act{Key: string(rune('a' + i)), Kind: ActPagerDuty, At: t0, By: "x", PagerDuty: "incident.reassigned"})
	}
	if n := len(b.Get(id).ActKeys); n != MaxActKeys {
		t.Errorf("%d act keys kept, want %d", n, MaxActKeys)
	}
}

// act applies one act and returns the kinds of the events it emitted.
func actKinds(t *testing.T, b *Book, id string, a Act) []EventKind {
	t.Helper()
	ch, err := b.Act(id, a)
	if err != nil {
		t.Fatalf("%s %s: %v", a.Kind, a.Key, err)
	}
	return eventKinds(ch)
}

// Silence, Unsilence and their outcomes: one silence at a time, a second
// click refused (never a second silence), a failure told to the user, and
// an expired silence gone.
func TestSilenceActs(t *testing.T) {
	b := NewBook()
	id := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1))).Incidents[0].ID
	silence := func(key string, at time.Time) Act {
		return Act{Key: key, Kind: ActSilence, At: at, By: "<@U1>", ResponseURL: "https://hooks.slack.com/r/" + key, SilenceFor: time.Hour}
	}
	result := func(key string, at time.Time, o ActOutcome) Act {
		return Act{Key: "result:" + key, Kind: ActResult, At: at, By: "amtriage", ResponseURL: "https://hooks.slack.com/r/" + o.RequestKey, Result: &o}
	}
	m := time.Minute
	steps := []struct {
		name string
		act  Act
		want []EventKind
		text string // in the Act of the last event, when set
	}{
		{"silence", silence("s1", at(m)), []EventKind{SilenceRequested}, ""},
		{"a second click while it is made", silence("s2", at(2*m)), []EventKind{ActionRefused}, "is being made"},
		{"it fails", result("s1", at(3*m), ActOutcome{For: ActSilence, RequestKey: "s1", Error: "Alertmanager said 400: bad matchers"}), []EventKind{ActionRefused}, "bad matchers"},
		{"silence again", silence("s3", at(4*m)), []EventKind{SilenceRequested}, ""},
		{"made", result("s3", at(5*m), ActOutcome{For: ActSilence, RequestKey: "s3", SilenceID: "sil-1", SilenceURL: "http://am/#/silences/sil-1", Until: at(64 * m)}), []EventKind{Silenced}, "http://am/#/silences/sil-1"},
		{"a click while it is active", silence("s4", at(6*m)), []EventKind{ActionRefused}, "already silenced by <@U1> until 10:30 UTC (silence sil-1)"},
		{"unsilence", Act{Key: "u1", Kind: ActUnsilence, At: at(7 * m), By: "<@U2>"}, []EventKind{UnsilenceRequested}, ""},
		{"unsilence twice", Act{Key: "u2", Kind: ActUnsilence, At: at(8 * m), By: "<@U2>"}, []EventKind{ActionRefused}, "is being expired"},
		{"expired", result("u1", at(9*m), ActOutcome{For: ActUnsilence, RequestKey: "u1", SilenceID: "sil-1"}), []EventKind{Unsilenced}, ""},
		{"unsilence with none", Act{Key: "u3", Kind: ActUnsilence, At: at(10 * m), By: "<@U2>"}, []EventKind{ActionRefused}, "no active amtriage silence"},
		{"silence once more", silence("s5", at(11*m)), []EventKind{SilenceRequested}, ""},
		{"made for 1 minute", result("s5", at(12*m), ActOutcome{For: ActSilence, RequestKey: "s5", SilenceID: "sil-2", Until: at(13 * m)}), []EventKind{Silenced}, ""},
		{"after it ended, a new one may be made", silence("s6", at(20*m)), []EventKind{SilenceRequested}, ""},
		{"its outcome never comes (dead-lettered): unsilence has nothing to expire", Act{Key: "u4", Kind: ActUnsilence, At: at(41 * m), By: "<@U2>"}, []EventKind{ActionRefused}, "no active amtriage silence"},
		{"and a new click is taken", silence("s7", at(41*m)), []EventKind{SilenceRequested}, ""},
	}
	for _, s := range steps {
		ch, err := b.Act(id, s.act)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := eventKinds(ch); !slices.Equal(got, s.want) {
			t.Fatalf("%s: events %v, want %v", s.name, got, s.want)
		}
		ev := ch.Events[len(ch.Events)-1]
		if ev.Act == nil || ev.Act.Key != strings.TrimPrefix(s.act.Key, "result:") {
			t.Errorf("%s: event act %+v does not name the request %s", s.name, ev.Act, s.act.Key)
		} else if s.text != "" && !strings.Contains(ev.Act.Text, s.text) {
			t.Errorf("%s: event text %q lacks %q", s.name, ev.Act.Text, s.text)
		}
		if ev.Kind == ActionRefused && ev.Act.ResponseURL != s.act.ResponseURL {
			t.Errorf("%s: refusal answers %q, want the click's %q", s.name, ev.Act.ResponseURL, s.act.ResponseURL)
		}
		if ev.Kind == Unsilenced && ev.Act.By != "<@U2>" {
			t.Errorf("%s: unsilenced by %q, want who asked", s.name, ev.Act.By)
		}
		if ev.Kind == UnsilenceRequested && ev.Act.SilenceID != "sil-1" {
			t.Errorf("%s: unsilence names silence %q", s.name, ev.Act.SilenceID)
		}
		if ev.Kind == SilenceRequested && ev.Act.SilenceFor != time.Hour {
			t.Errorf("%s: silence for %s", s.name, ev.Act.SilenceFor)
		}
	}
	inc := b.Get(id)
	if inc.Silence == nil || !inc.Silence.Pending() || inc.Silence.RequestKey != "s7" {
		t.Errorf("silence %+v, want s7 pending", inc.Silence)
	}
	var kinds []string
	for _, e := range inc.Timeline {
		kinds = append(kinds, e.Kind)
	}
	for _, k := range []string{"silence", "refused", "failed", "silenced", "unsilence", "unsilenced"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("timeline lacks %q: %v", k, kinds)
		}
	}
}

// Roll back is taken only as the diagnosis offers it; its outcome is kept
// with who did it.
func TestRollbackActs(t *testing.T) {
	b := NewBook()
	id := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1))).Incidents[0].ID
	target := &diagnosis.Rollback{Namespace: "shop", Deployment: "api", From: 2, To: 1}
	rb := func(key string, r *diagnosis.Rollback) Act {
		return Act{Key: key, Kind: ActRollback, At: at(time.Minute), By: "<@U1>", Rollback: r}
	}
	if got := actKinds(t, b, id, rb("r1", target)); !slices.Equal(got, []EventKind{ActionRefused}) {
		t.Errorf("rollback with no diagnosis: %v, want refused", got)
	}
	b.Get(id).Diagnosis = &diagnosis.Diagnosis{Rollback: &diagnosis.Rollback{Namespace: "shop", Deployment: "api", From: 3, To: 2}}
	ch, _ := b.Act(id, rb("r2", target))
	if k := eventKinds(ch); !slices.Equal(k, []EventKind{ActionRefused}) || !strings.Contains(ch.Events[0].Act.Text, "from revision 3 to 2") {
		t.Errorf("rollback the diagnosis no longer offers: %v %+v", k, ch.Events)
	}
	b.Get(id).Diagnosis.Rollback = &diagnosis.Rollback{Namespace: "shop", Deployment: "api", From: 2, To: 1}
	ch, _ = b.Act(id, rb("r3", target))
	if k := eventKinds(ch); !slices.Equal(k, []EventKind{RollbackRequested}) || *ch.Events[0].Act.Rollback != *target {
		t.Fatalf("rollback as offered: %v %+v", k, ch.Events)
	}
	ch, _ = b.Act(id, rb("r4", target))
	if k := eventKinds(ch); !slices.Equal(k, []EventKind{ActionRefused}) || !strings.Contains(ch.Events[0].Act.Text, "in progress") {
		t.Errorf("a second click while it is done: %v %+v", k, ch.Events)
	}
	done := Act{Key: "result:r3", Kind: ActResult, At: at(2 * time.Minute), By: "someone (amtriage)",
		Result: &ActOutcome{For: ActRollback, RequestKey: "r3", Text: "deployment shop/api rolled back from revision 2 to revision 1"}}
	if got := actKinds(t, b, id, done); !slices.Equal(got, []EventKind{RolledBack}) {
		t.Errorf("rollback done: %v", got)
	}
	if r := b.Get(id).RolledBack; r == nil || r.By != "<@U1>" || !strings.Contains(r.Text, "revision 1") {
		t.Errorf("rolled back %+v, want by who asked", r)
	}
	ch, _ = b.Act(id, rb("r5", target))
	if k := eventKinds(ch); !slices.Equal(k, []EventKind{ActionRefused}) || !strings.Contains(ch.Events[0].Act.Text, "rolled it back already") {
		t.Errorf("the same rollback again: %v %+v", k, ch.Events)
	}
	if n := len(b.Get(id).Requests); n != 0 {
		t.Errorf("%d requests still awaited", n)
	}
}

// Resolve closes the incident by hand: receivers hear it resolved, the
// same alerts re-sent open nothing, a new occurrence opens a new incident,
// and nothing more can be done to the closed one but unsilence.
func TestResolveByHand(t *testing.T) {
	b := NewBook()
	ch := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1), fire("api", "a2", t0, 2)))
	id := ch.Incidents[0].ID
	if b.CountOpen()[1] != 1 {
		t.Fatalf("open counts %v", b.CountOpen())
	}
	res, err := b.Act(id, Act{Key: "k1", Kind: ActResolve, At: at(time.Minute), By: "<@U1>"})
	if err != nil || !slices.Equal(eventKinds(res), []EventKind{ResolvedEvent}) {
		t.Fatalf("resolve: %v %v", eventKinds(res), err)
	}
	inc := b.Get(id)
	if inc.State != StateClosed || inc.Status != Resolved || inc.ClosedBy != "<@U1>" || inc.Firing != 0 || b.CountOpen()[1] != 0 {
		t.Errorf("after resolve: state %s status %s by %q firing %d counts %v", inc.State, inc.Status, inc.ClosedBy, inc.Firing, b.CountOpen())
	}
	if got := tombKeys(res.Tombstones); len(got) != 2 || res.Tombstones[got[0]].ResolvedBy != ByHand {
		t.Errorf("tombstones %v", res.Tombstones)
	}
	if len(res.DeletedAlerts) != 2 {
		t.Errorf("deleted alerts %v, want both", keysOf(res.DeletedAlerts))
	}
	checkConsistent(t, "after resolve by hand", b)
	// Alertmanager re-sends the same firing alerts: nothing opens.
	again := b.Apply(batch(at(5*time.Minute), "g", true, fire("api", "a1", t0, 1), fire("api", "a2", t0, 2)))
	if len(again.Incidents) != 0 || len(again.Events) != 0 {
		t.Errorf("re-sent alerts changed %d incidents, events %v", len(again.Incidents), eventKinds(again))
	}
	// A new occurrence is a new incident.
	fresh := b.Apply(batch(at(10*time.Minute), "g", true, fire("api", "a1", at(9*time.Minute), 1)))
	if len(fresh.Incidents) != 1 || fresh.Incidents[0].ID == id || !slices.Equal(eventKinds(fresh), []EventKind{Opened}) {
		t.Errorf("a new occurrence: %v", eventKinds(fresh))
	}
	for _, a := range []Act{
		{Key: "k2", Kind: ActResolve, At: at(11 * time.Minute), By: "<@U2>"},
		{Key: "k3", Kind: ActAcknowledge, At: at(11 * time.Minute), By: "<@U2>"},
		{Key: "k4", Kind: ActSilence, At: at(11 * time.Minute), By: "<@U2>", SilenceFor: time.Hour},
	} {
		if got := actKinds(t, b, id, a); !slices.Equal(got, []EventKind{ActionRefused}) {
			t.Errorf("%s on the closed incident: %v, want refused", a.Kind, got)
		}
	}
	// Resolving one in monitoring (receivers already told it resolved) closes it.
	b2 := NewBook()
	id2 := b2.Apply(batch(t0, "g", true, fire("web", "w1", t0, 3))).Incidents[0].ID
	b2.Apply(batch(at(time.Minute), "g", true, resolve("web", "w1", t0, at(time.Minute), 3)))
	if st := b2.Get(id2).State; st != StateMonitoring {
		t.Fatalf("state %s, want monitoring (no verifier)", st)
	}
	if got := actKinds(t, b2, id2, Act{Key: "k", Kind: ActResolve, At: at(2 * time.Minute), By: "<@U1>"}); !slices.Equal(got, []EventKind{Closed}) {
		t.Errorf("resolve while monitoring: %v, want closed", got)
	}
}

// A PagerDuty event without our dedup key finds its incident by the
// PagerDuty incident id an earlier one recorded.
func TestPagerDutyEventsMatchByTheirIncidentID(t *testing.T) {
	b := NewBook()
	id := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1))).Incidents[0].ID
	if _, err := b.Act("", Act{Key: "p0", Kind: ActPagerDuty, At: t0, By: "x", PagerDuty: "incident.reassigned", PagerDutyID: "PABC"}); err != ErrNoIncident {
		t.Fatalf("before any was recorded: %v", err)
	}
	actKinds(t, b, id, Act{Key: "p1", Kind: ActPagerDuty, At: t0, By: "x", PagerDuty: "incident.acknowledged", PagerDutyID: "PABC", PagerDutyURL: "https://acme.pagerduty.com/incidents/PABC"})
	ch, err := b.Act("", Act{Key: "p2", Kind: ActPagerDuty, At: t0, By: "y", PagerDuty: "incident.reassigned", PagerDutyID: "PABC"})
	if err != nil || len(ch.Incidents) != 1 || ch.Incidents[0].ID != id {
		t.Fatalf("matched by PagerDuty id: %+v, %v", ch.Incidents, err)
	}
	if b.Get(id).PagerDutyURL != "https://acme.pagerduty.com/incidents/PABC" {
		t.Errorf("PagerDuty URL %q", b.Get(id).PagerDutyURL)
	}
}

// A silence request describes all the incident's alerts, not the first
// MaxEventAlerts an event carries: a label the first 50 share and the
// others lack is not common.
func TestSilenceRequestDescribesAllAlerts(t *testing.T) {
	b := NewBook()
	var obs []Observation
	for i := range MaxEventAlerts + 10 {
		o := fire("api", fmt.Sprintf("a%03d", i), t0, 2)
		o.Alert.Labels["cluster"] = "eu"
		if i >= MaxEventAlerts {
			o.Alert.Labels["cluster"] = "us"
			o.Alert.Labels["alertname"] = "HighLatency"
		}
		o.Alert.Labels["pod"] = fmt.Sprintf("api-%d", i)
		obs = append(obs, o)
	}
	id := b.Apply(batch(t0, "g", true, obs...)).Incidents[0].ID
	ch, err := b.Act(id, Act{Key: "s1", Kind: ActSilence, At: at(time.Minute), By: "<@U1>", SilenceFor: time.Hour})
	if err != nil || len(ch.Events) != 1 {
		t.Fatalf("silence: %v %v", eventKinds(ch), err)
	}
	ev := ch.Events[0]
	if len(ev.Alerts) != MaxEventAlerts {
		t.Fatalf("the event carries %d alerts", len(ev.Alerts))
	}
	if want := map[string]string{"service": "api"}; !maps.Equal(ev.Act.Labels, want) {
		t.Errorf("common labels %v, want %v", ev.Act.Labels, want)
	}
	if got := ev.Act.Varying["cluster"]; !slices.Equal(got, []string{"eu", "us"}) {
		t.Errorf("cluster varies as %v", got)
	}
	if got := ev.Act.Varying["pod"]; len(got) != maxVaryingValues {
		t.Errorf("pod values listed: %v, want %d of them", got, maxVaryingValues)
	}
	if _, ok := ev.Act.Varying["alertname"]; !ok {
		t.Errorf("alertname does not vary: %v", ev.Act.Varying)
	}
}

// The escalation page's events are noted, but change neither who
// acknowledged the incident's page nor which PagerDuty incident it is.
func TestEscalationPageEventsAreNotThePages(t *testing.T) {
	b := NewBook()
	id := b.Apply(batch(t0, "g", true, fire("api", "a1", t0, 1))).Incidents[0].ID
	actKinds(t, b, id, Act{Key: "p1", Kind: ActPagerDuty, At: t0, By: "x", PagerDuty: "incident.triggered", PagerDutyID: "PMAIN", PagerDutyURL: "https://pd/PMAIN"})
	ch, err := b.Act(id, Act{Key: "p2", Kind: ActPagerDuty, At: t0, By: "Senior", PagerDuty: "incident.acknowledged", PagerDutyID: "PESC", PagerDutyURL: "https://pd/PESC", Escalation: true})
	if err != nil || !slices.Equal(eventKinds(ch), []EventKind{PagerDutyChanged}) || !strings.Contains(ch.Events[0].Act.Text, "escalation page") {
		t.Fatalf("escalation acknowledged: %v %v", eventKinds(ch), err)
	}
	inc := b.Get(id)
	if !inc.AcknowledgedAt.IsZero() || inc.PagerDutyID != "PMAIN" || inc.PagerDutyURL != "https://pd/PMAIN" {
		t.Errorf("the escalation page changed the page: acknowledged %v, PagerDuty %s %s", inc.AcknowledgedAt, inc.PagerDutyID, inc.PagerDutyURL)
	}
}

// An incident keeps the profile its alerts matched, until one that did not
// joins it.
func TestIncidentProfile(t *testing.T) {
	b := NewBook()
	o := fire("checkout", "p1", t0, 2)
	o.Profile = "checkout"
	id := b.Apply(batch(t0, "g", true, o)).Incidents[0].ID
	if p := b.Get(id).Profile; p != "checkout" {
		t.Fatalf("profile %q, want checkout", p)
	}
	b.Apply(batch(at(time.Minute), "g", true, o, fire("checkout", "s1", t0, 2))) // staging's job="checkout"
	if p := b.Get(id).Profile; p != "" {
		t.Errorf("profile %q after an alert outside it joined, want none", p)
	}
}
