package incident

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/amtriage/amtriage/severity"
)

func TestApplyOpensIncident(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name         string
		obs          []Observation
		wantFirstKey string // the occurrence the id derives from
		wantTitle    string
		wantStarted  time.Time
		wantSev      severity.Level
		wantDecisive string
	}{
		{
			name:         "summary annotation",
			obs:          []Observation{fire("checkout", "a", at(-3*time.Minute), 2)},
			wantFirstKey: occKey("a", at(-3*time.Minute)),
			wantTitle:    "INCIDENT: checkout - summary of a since 09:23 UTC",
			wantStarted:  at(-3 * time.Minute),
			wantSev:      2,
			wantDecisive: occKey("a", at(-3*time.Minute)),
		},
		{
			name:         "alertname without summary",
			obs:          []Observation{noSummary(fire("checkout", "a", at(-3*time.Minute), 3))},
			wantFirstKey: occKey("a", at(-3*time.Minute)),
			wantTitle:    "INCIDENT: checkout - AlertA since 09:23 UTC",
			wantStarted:  at(-3 * time.Minute),
			wantSev:      3,
			wantDecisive: occKey("a", at(-3*time.Minute)),
		},
		{
			name:         "startsAt in another zone is detected in UTC",
			obs:          []Observation{fire("checkout", "a", time.Date(2025, 3, 14, 0, 15, 0, 0, cet), 1)},
			wantFirstKey: occKey("a", time.Date(2025, 3, 13, 23, 15, 0, 0, time.UTC)),
			wantTitle:    "INCIDENT: checkout - summary of a since 23:15 UTC",
			wantStarted:  time.Date(2025, 3, 13, 23, 15, 0, 0, time.UTC),
			wantSev:      1,
			wantDecisive: occKey("a", time.Date(2025, 3, 13, 23, 15, 0, 0, time.UTC)),
		},
		{
			name: "several alerts: earliest start, most severe decides",
			obs: []Observation{
				fire("checkout", "a", at(-1*time.Minute), 3),
				withSummary(fire("checkout", "b", at(-2*time.Minute), 1), "checkout down"),
				fire("checkout", "c", at(-40*time.Minute), 2),
				fire("checkout", "d", at(0), 4),
			},
			wantFirstKey: occKey("a", at(-1*time.Minute)),
			wantTitle:    "INCIDENT: checkout - checkout down since 08:46 UTC",
			wantStarted:  at(-40 * time.Minute),
			wantSev:      1,
			wantDecisive: occKey("b", at(-2*time.Minute)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := batch(t0, "g", false, tt.obs...)
			b := NewBook()
			ch := b.Apply(in)

			if len(ch.Events) != 1 {
				t.Fatalf("events = %q, want one opened", evSummaries(ch))
			}
			ev := ch.Events[0]
			wantID := newID("checkout", tt.wantFirstKey)
			equal(t, "event kind", ev.Kind, Opened)
			equal(t, "event at", ev.At, t0)
			equal(t, "previous severity", ev.PreviousSeverity, severity.Level(0))
			equal(t, "event alerts total", ev.AlertsTotal, len(tt.obs))
			equal(t, "event alerts", len(ev.Alerts), len(tt.obs))
			if ev.Incident.Alerts != nil {
				t.Error("event snapshot carries the live alert map")
			}

			inc := b.Get(wantID)
			if inc == nil {
				t.Fatalf("no incident %q; open: %v", wantID, b.Open())
			}
			for _, got := range []Incident{ev.Incident, *inc} {
				equal(t, "id", got.ID, wantID)
				equal(t, "service", got.Service, "checkout")
				equal(t, "title", got.Title, tt.wantTitle)
				equal(t, "status", got.Status, Firing)
				if !got.StartedAt.Equal(tt.wantStarted) || got.StartedAt.Location() != time.UTC {
					t.Errorf("StartedAt = %v, want %v in UTC", got.StartedAt, tt.wantStarted)
				}
				equal(t, "firing", got.Firing, len(tt.obs))
				equal(t, "severity", got.Severity, tt.wantSev)
				equal(t, "peak severity", got.PeakSeverity, tt.wantSev)
				equal(t, "rule", got.Rule, ruleFor(tt.wantSev))
				equal(t, "decisive", got.Decisive, tt.wantDecisive)
				equal(t, "reasons", got.Reasons, inc.Alerts[tt.wantDecisive].Decision.Reasons)
				equal(t, "external url", got.ExternalURL, externalURL)
				if !got.ResolvedAt.IsZero() {
					t.Errorf("ResolvedAt = %v on an open incident", got.ResolvedAt)
				}
			}
			equal(t, "open", b.Open(), []*Incident{inc})

			// What the caller persists.
			if len(ch.Incidents) != 1 || ch.Incidents[0] != inc {
				t.Errorf("Changes.Incidents = %v, want the new incident", ch.Incidents)
			}
			wantKeys := []string{}
			for _, o := range tt.obs {
				wantKeys = append(wantKeys, o.Alert.Key)
			}
			sort.Strings(wantKeys)
			equal(t, "alert keys put", keysOf(ch.Alerts), wantKeys)
			for _, ref := range ch.Alerts {
				a := ref.Alert
				if ref.IncidentID != wantID || a.Status != Firing || !a.LastSeen.Equal(t0) || a.GroupKey != "g" ||
					a.ResolvedBy != "" || !a.EndsAt.IsZero() || a.Decision.Severity == 0 || inc.Alerts[a.Key] != a {
					t.Errorf("alert put %+v under %q", a, ref.IncidentID)
				}
			}
			if len(ch.DeletedAlerts) != 0 || len(ch.Tombstones) != 0 {
				t.Errorf("deleted %v, tombstones %v: want none", ch.DeletedAlerts, ch.Tombstones)
			}
			equal(t, "decisions", ch.Decisions, len(tt.obs))
			checkConsistent(t, "after open", b)

			// Deterministic: another book given the same notification agrees.
			other := NewBook().Apply(in)
			equal(t, "id in another book", other.Events[0].Incident.ID, wantID)
			equal(t, "event JSON in another book", mustJSON(t, other.Events), mustJSON(t, ch.Events))
		})
	}
}

func TestOneIncidentPerService(t *testing.T) {
	tests := []struct {
		name      string
		batches   []Batch
		wantOpens []string // every event over all batches
		wantOpen  map[string]int
	}{
		{
			name: "one service, one batch",
			batches: []Batch{batch(t0, "g", false,
				fire("api", "a", t0, 3), fire("api", "b", t0, 3), fire("api", "c", t0, 3))},
			wantOpens: []string{"opened api sev3 firing=3 alerts=3"},
			wantOpen:  map[string]int{"api": 3},
		},
		{
			name: "one service, across batches and groups",
			batches: []Batch{
				batch(t0, "g1", false, fire("api", "a", t0, 3)),
				batch(at(time.Minute), "g2", true, fire("api", "b", at(time.Minute), 3)),
				batch(at(2*time.Minute), "g3", false, fire("api", "c", at(2*time.Minute), 3), fire("api", "d", at(2*time.Minute), 4)),
			},
			wantOpens: []string{"opened api sev3 firing=1 alerts=1"},
			wantOpen:  map[string]int{"api": 4},
		},
		{
			name: "different services in one batch",
			batches: []Batch{batch(t0, "g", false,
				fire("api", "a", t0, 3), fire("db", "b", t0, 2), fire("api", "c", t0, 3), fire("web", "d", t0, 1))},
			wantOpens: []string{
				"opened api sev3 firing=2 alerts=2",
				"opened db sev2 firing=1 alerts=1",
				"opened web sev1 firing=1 alerts=1",
			},
			wantOpen: map[string]int{"api": 2, "db": 1, "web": 1},
		},
		{
			name: "different services across batches",
			batches: []Batch{
				batch(t0, "g", false, fire("api", "a", t0, 3)),
				batch(at(time.Minute), "g", false, fire("db", "b", t0, 2), fire("api", "c", t0, 3)),
			},
			wantOpens: []string{"opened api sev3 firing=1 alerts=1", "opened db sev2 firing=1 alerts=1"},
			wantOpen:  map[string]int{"api": 2, "db": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBook()
			events := []string{}
			for _, in := range tt.batches {
				events = append(events, evSummaries(b.Apply(in))...)
			}
			equal(t, "events", events, tt.wantOpens)
			got := map[string]int{}
			ids := map[string]bool{}
			for _, inc := range b.Open() {
				got[inc.Service] = inc.Firing
				ids[inc.ID] = true
			}
			equal(t, "open incidents (service → firing)", got, tt.wantOpen)
			equal(t, "distinct ids", len(ids), len(tt.wantOpen))
			checkConsistent(t, tt.name, b)
		})
	}
}

func TestAlertStorm(t *testing.T) {
	storm := func(svc string, from, n int, startsAt time.Time) []Observation {
		out := make([]Observation, 0, n)
		for i := from; i < from+n; i++ {
			out = append(out, fire(svc, fmt.Sprintf("fp%04d", i), startsAt, severity.Level(1+i%4)))
		}
		return out
	}
	tests := []struct {
		name    string
		batches [][]Observation
	}{
		{"one notification", [][]Observation{storm("api", 0, 1000, t0)}},
		{"ten notifications", func() [][]Observation {
			var out [][]Observation
			for i := range 10 {
				out = append(out, storm("api", i*100, 100, at(time.Duration(i)*time.Second)))
			}
			return out
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBook()
			var opened []Event
			for i, obs := range tt.batches {
				ch := b.Apply(batch(at(time.Duration(i)*time.Second), "storm", false, obs...))
				for _, ev := range ch.Events {
					if ev.Kind != Opened {
						t.Errorf("batch %d: unexpected %s", i, evSummary(ev))
					}
					opened = append(opened, ev)
				}
			}
			if len(opened) != 1 {
				t.Fatalf("opened events = %d, want 1", len(opened))
			}
			inc := only(t, b)
			equal(t, "firing", inc.Firing, 1000)
			equal(t, "members", len(inc.Alerts), 1000)
			equal(t, "severity", inc.Severity, severity.Level(1))
			ev := opened[0]
			equal(t, "opened alerts carried", len(ev.Alerts), MaxEventAlerts)
			wantTotal := len(tt.batches[0])
			equal(t, "opened alerts total", ev.AlertsTotal, wantTotal)
			checkConsistent(t, "storm", b)

			// Redelivering the whole storm changes nothing anyone is told about.
			for i, obs := range tt.batches {
				ch := b.Apply(batch(at(time.Hour+time.Duration(i)), "storm", false, obs...))
				if len(ch.Events) != 0 || len(ch.Alerts) != len(obs) {
					t.Errorf("redelivery %d: %d events, %d alerts put", i, len(ch.Events), len(ch.Alerts))
				}
			}

			// The storm resolves as one.
			var res []Observation
			for i := range 1000 {
				o := fire("api", fmt.Sprintf("fp%04d", i), t0, severity.Level(1+i%4))
				if len(tt.batches) > 1 {
					o = fire("api", fmt.Sprintf("fp%04d", i), at(time.Duration(i/100)*time.Second), severity.Level(1+i%4))
				}
				o.Alert.Status, o.Alert.EndsAt = Resolved, at(2*time.Hour)
				res = append(res, o)
			}
			ch := b.Apply(batch(at(2*time.Hour), "storm", false, res...))
			equal(t, "resolve events", evSummaries(ch), []string{"resolved api sev1 firing=0 alerts=1000"})
			equal(t, "resolved alerts carried", len(ch.Events[0].Alerts), MaxEventAlerts)
			equal(t, "deleted alerts", len(ch.DeletedAlerts), 1000)
			equal(t, "tombstones", len(ch.Tombstones), 1000)
			equal(t, "alerts put", len(ch.Alerts), 0)
			equal(t, "open", len(b.Open()), 0)
			checkConsistent(t, "storm resolved", b)
		})
	}
}

func TestSeverity(t *testing.T) {
	keyA, keyB, keyC := occKey("a", at(-2*time.Minute)), occKey("b", at(-time.Minute)), occKey("c", at(0))
	a := fire("api", "a", at(-2*time.Minute), 3)
	bb := fire("api", "b", at(-time.Minute), 1)
	c := fire("api", "c", at(0), 2)
	reeval := func(o Observation, sev severity.Level) Observation {
		o.Decision = decision(o.Alert.Fingerprint, sev)
		return o
	}
	incIs := func(sev, peak severity.Level, decisive, titleFP string) func(*testing.T, *Book, *Changes) {
		return func(t *testing.T, b *Book, ch *Changes) {
			t.Helper()
			inc := b.Get(newID("api", keyA))
			if inc == nil {
				t.Fatal("incident gone")
			}
			equal(t, "severity", inc.Severity, sev)
			equal(t, "peak", inc.PeakSeverity, peak)
			equal(t, "decisive", inc.Decisive, decisive)
			equal(t, "rule", inc.Rule, ruleFor(sev))
			if inc.Status == Firing {
				equal(t, "reasons", inc.Reasons, inc.Alerts[decisive].Decision.Reasons)
			}
			equal(t, "title", inc.Title, "INCIDENT: api - summary of "+titleFP+" since 09:24 UTC")
			for _, ev := range ch.Events {
				equal(t, "event snapshot severity", ev.Incident.Severity, sev)
				equal(t, "event snapshot decisive", ev.Incident.Decisive, decisive)
			}
		}
	}
	runSteps(t, NewBook(), []stepCase{
		{name: "sev3 opens", op: apply(batch(t0, "g", false, a)),
			events: []string{"opened api sev3 firing=1 alerts=1"}, check: incIs(3, 3, keyA, "a")},
		{name: "sev1 joins", op: apply(batch(at(time.Minute), "g", false, bb)),
			events: []string{"severity_changed api sev1 from sev3 firing=2 alerts=2"}, check: incIs(1, 1, keyB, "b")},
		{name: "sev2 joins: no change", op: apply(batch(at(2*time.Minute), "g", false, c)),
			check: incIs(1, 1, keyB, "b")},
		{name: "decisive resolves: severity drops", op: apply(batch(at(3*time.Minute), "g", false, resolve("api", "b", at(-time.Minute), at(150*time.Second), 1))),
			events: []string{"severity_changed api sev2 from sev1 firing=2 alerts=3"}, check: incIs(2, 1, keyC, "c")},
		{name: "re-evaluation raises", op: apply(batch(at(4*time.Minute), "g", false, reeval(a, 1))),
			events: []string{"severity_changed api sev1 from sev2 firing=2 alerts=3"}, check: incIs(1, 1, keyA, "a")},
		{name: "re-evaluation lowers a second later", op: apply(batch(at(4*time.Minute+time.Second), "g", false, reeval(a, 4))),
			events: []string{"severity_changed api sev2 from sev1 firing=2 alerts=3"}, check: incIs(2, 1, keyC, "c")},
		{name: "same decision again: nothing", op: apply(batch(at(6*time.Minute), "g", false, reeval(a, 4), c)),
			check: incIs(2, 1, keyC, "c")},
		{name: "all resolve: last decision kept", op: apply(batch(at(7*time.Minute), "g", false,
			resolve("api", "a", at(-2*time.Minute), at(6*time.Minute), 4), resolve("api", "c", at(0), at(7*time.Minute), 2))),
			events: []string{"resolved api sev2 firing=0 alerts=3"}, check: incIs(2, 1, keyC, "c")},
	})

	t.Run("previous severity in the event", func(t *testing.T) {
		b := NewBook()
		b.Apply(batch(t0, "g", false, fire("api", "a", t0, 4)))
		ch := b.Apply(batch(at(time.Minute), "g", false, fire("api", "b", t0, 2)))
		if len(ch.Events) != 1 || ch.Events[0].Kind != SeverityChanged || ch.Events[0].PreviousSeverity != 4 || ch.Events[0].Incident.Severity != 2 {
			t.Fatalf("events = %q", evSummaries(ch))
		}
	})

	t.Run("tie keeps the decisive alert", func(t *testing.T) {
		keyB, keyA := occKey("b", t0), occKey("a", t0)
		runSteps(t, NewBook(), []stepCase{
			{name: "b opens", op: apply(batch(t0, "g", false, fire("svc", "b", t0, 2))),
				events: []string{"opened svc sev2 firing=1 alerts=1"}},
			{name: "a ties (and sorts first): b stays decisive", op: apply(batch(at(time.Minute), "g", false, fire("svc", "a", t0, 2))),
				check: func(t *testing.T, b *Book, _ *Changes) {
					inc := only(t, b)
					equal(t, "decisive", inc.Decisive, keyB)
					equal(t, "title", inc.Title, "INCIDENT: svc - summary of b since 09:26 UTC")
				}},
			{name: "b resolves: a decides at the same severity, no event", op: apply(batch(at(2*time.Minute), "g", false, resolve("svc", "b", t0, at(time.Minute), 2))),
				check: func(t *testing.T, b *Book, _ *Changes) {
					inc := only(t, b)
					equal(t, "decisive", inc.Decisive, keyA)
					equal(t, "reasons", inc.Reasons, decision("a", 2).Reasons)
					equal(t, "title", inc.Title, "INCIDENT: svc - summary of a since 09:26 UTC")
				}},
		})
	})
}

func TestResolve(t *testing.T) {
	keyA, keyB := occKey("a", at(-5*time.Minute)), occKey("b", at(-time.Minute))
	firstID := newID("api", keyA)
	runSteps(t, NewBook(), []stepCase{
		{name: "open", op: apply(batch(t0, "g", false, fire("api", "a", at(-5*time.Minute), 2), fire("api", "b", at(-time.Minute), 3))),
			events: []string{"opened api sev2 firing=2 alerts=2"}},
		{name: "a resolves", op: apply(batch(at(5*time.Minute), "g", false, resolve("api", "a", at(-5*time.Minute), at(4*time.Minute), 2))),
			events: []string{"severity_changed api sev3 from sev2 firing=1 alerts=2"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				// A resolved member leaves the incident that stays open: its
				// record goes, a tombstone remembers it.
				equal(t, "alerts put", len(ch.Alerts), 0)
				equal(t, "deleted", keysOf(ch.DeletedAlerts), []string{keyA})
				a := ch.DeletedAlerts[0].Alert
				if a.Status != Resolved || a.ResolvedBy != ByAlertmanager || !a.EndsAt.Equal(at(4*time.Minute)) || !a.LastSeen.Equal(at(5*time.Minute)) {
					t.Errorf("resolved alert = %+v", a)
				}
				equal(t, "tombstones", ch.Tombstones, map[string]Tombstone{keyA: {IncidentID: firstID, ResolvedBy: ByAlertmanager, At: at(5 * time.Minute)}})
				inc := b.Get(firstID)
				equal(t, "members", len(inc.Alerts), 1)
				equal(t, "left", inc.Left, 1)
				equal(t, "live", len(b.live), 1)
				equal(t, "ch.Decisions", ch.Decisions, 0)
			}},
		{name: "a's resolve redelivered: a duplicate", op: apply(batch(at(5*time.Minute+30*time.Second), "g", false, resolve("api", "a", at(-5*time.Minute), at(4*time.Minute), 2))),
			check: func(t *testing.T, b *Book, ch *Changes) {
				if !ch.Empty() {
					t.Errorf("a redelivered resolve of a member that left changed %+v", ch)
				}
			}},
		{name: "b resolves: incident resolves", op: apply(batch(at(6*time.Minute), "g", false, resolve("api", "b", at(-time.Minute), at(3*time.Minute), 3))),
			events: []string{"resolved api sev3 firing=0 alerts=2"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				inc := b.Get(firstID)
				if inc == nil {
					t.Fatal("resolved incident not kept")
				}
				equal(t, "status", inc.Status, Resolved)
				equal(t, "resolved at (latest endsAt)", inc.ResolvedAt, at(4*time.Minute))
				equal(t, "duration", inc.Duration(at(time.Hour)), 9*time.Minute)
				equal(t, "firing", inc.Firing, 0)
				equal(t, "peak", inc.PeakSeverity, severity.Level(2))
				ev := ch.Events[0]
				equal(t, "event status", ev.Incident.Status, Resolved)
				equal(t, "event resolved at", ev.Incident.ResolvedAt, at(4*time.Minute))
				equal(t, "event alerts", len(ev.Alerts), 1)
				equal(t, "event alerts total", ev.AlertsTotal, 2)
				if len(ch.Incidents) != 1 || ch.Incidents[0] != inc {
					t.Errorf("incidents put = %v", ch.Incidents)
				}
				equal(t, "alerts put", len(ch.Alerts), 0)
				equal(t, "deleted", keysOf(ch.DeletedAlerts), []string{keyB})
				for _, ref := range ch.DeletedAlerts {
					equal(t, "deleted from", ref.IncidentID, firstID)
				}
				equal(t, "tombstones", ch.Tombstones, map[string]Tombstone{
					keyB: {IncidentID: firstID, ResolvedBy: ByAlertmanager, At: at(6 * time.Minute)},
				})
				equal(t, "book tombstones", b.tombs, map[string]Tombstone{
					keyA: {IncidentID: firstID, ResolvedBy: ByAlertmanager, At: at(5 * time.Minute)},
					keyB: {IncidentID: firstID, ResolvedBy: ByAlertmanager, At: at(6 * time.Minute)},
				})
				equal(t, "open", len(b.Open()), 0)
				equal(t, "live", len(b.live), 0)
				equal(t, "groups", len(b.groups), 0)
			}},
		{name: "monitoring passes quietly: closed", op: closeQuiet(at(19*time.Minute), time.Minute),
			events: []string{"closed api sev3 firing=0 alerts=1"}},
		{name: "new occurrence: new incident", op: apply(batch(at(20*time.Minute), "g", false, fire("api", "a", at(19*time.Minute), 2))),
			events: []string{"opened api sev2 firing=1 alerts=1"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				inc := only(t, b)
				if inc.ID == firstID {
					t.Fatalf("new occurrence reused id %s", firstID)
				}
				equal(t, "id", inc.ID, newID("api", occKey("a", at(19*time.Minute))))
				equal(t, "started", inc.StartedAt, at(19*time.Minute))
				equal(t, "old incident", b.Get(firstID).Status, Resolved)
			}},
	})

	t.Run("resolvedAt", func(t *testing.T) {
		cet := time.FixedZone("CET", 3600)
		tests := []struct {
			name   string
			endsAt time.Time
			want   time.Time
		}{
			{"endsAt", at(10 * time.Minute), at(10 * time.Minute)},
			{"endsAt in another zone, stored in UTC", at(10 * time.Minute).In(cet), at(10 * time.Minute)},
			{"no endsAt: when received", time.Time{}, at(30 * time.Minute)},
			{"endsAt before start: when received", at(-time.Hour), at(30 * time.Minute)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				b := NewBook()
				b.Apply(batch(t0, "g", false, fire("api", "a", t0, 2)))
				ch := b.Apply(batch(at(30*time.Minute), "g", false, resolve("api", "a", t0, tt.endsAt, 2)))
				equal(t, "events", eventKinds(ch), []EventKind{ResolvedEvent})
				got := ch.Incidents[0].ResolvedAt
				if !got.Equal(tt.want) || got.Location() != time.UTC {
					t.Errorf("ResolvedAt = %v, want %v UTC", got, tt.want)
				}
			})
		}
	})
}

func TestIdempotency(t *testing.T) {
	a := fire("api", "a", t0, 2)
	bb := fire("api", "b", t0, 3)
	resA := resolve("api", "a", t0, at(5*time.Minute), 2)
	resB := resolve("api", "b", t0, at(5*time.Minute), 3)
	keyA, keyB := occKey("a", t0), occKey("b", t0)
	tests := []struct {
		name      string
		prep      []Batch
		dup       Batch
		wantEmpty bool
		check     func(t *testing.T, b *Book, ch *Changes)
	}{
		{
			name:      "firing batch applied twice (replay after a crash)",
			prep:      []Batch{batch(t0, "g", false, a, bb)},
			dup:       batch(t0, "g", false, a, bb),
			wantEmpty: true,
		},
		{
			name:      "firing batch redelivered within lastSeenGranularity: nothing to persist",
			prep:      []Batch{batch(t0, "g", false, a, bb)},
			dup:       batch(at(lastSeenGranularity-time.Second), "g", true, a, bb),
			wantEmpty: true,
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "LastSeen kept", only(t, b).Alerts[keyA].LastSeen, t0)
			},
		},
		{
			name: "firing batch redelivered later: LastSeen refreshed",
			prep: []Batch{batch(t0, "g", false, a, bb)},
			dup:  batch(at(lastSeenGranularity), "g", false, a, bb),
			check: func(t *testing.T, b *Book, ch *Changes) {
				inc := only(t, b)
				equal(t, "firing", inc.Firing, 2)
				equal(t, "severity", inc.Severity, severity.Level(2))
				equal(t, "peak", inc.PeakSeverity, severity.Level(2))
				for _, ref := range ch.Alerts {
					equal(t, ref.Alert.Key+" LastSeen", ref.Alert.LastSeen, at(lastSeenGranularity))
					equal(t, ref.Alert.Key+" status", ref.Alert.Status, Firing)
					equal(t, ref.Alert.Key+" incident", ref.IncidentID, inc.ID)
				}
				equal(t, "alerts re-put", keysOf(ch.Alerts), []string{keyA, keyB})
				equal(t, "incident put", len(ch.Incidents), 1)
				if len(ch.Tombstones)+len(ch.DeletedAlerts) != 0 {
					t.Error("tombstones or deletions from a firing duplicate")
				}
			},
		},
		{
			name: "firing redelivered by another group at once: group recorded",
			prep: []Batch{batch(t0, "g", false, a, bb)},
			dup:  batch(at(time.Second), "h", false, a),
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "alerts put", keysOf(ch.Alerts), []string{keyA})
				equal(t, "group", ch.Alerts[0].Alert.GroupKey, "h")
				equal(t, "LastSeen", ch.Alerts[0].Alert.LastSeen, at(time.Second))
			},
		},
		{
			name: "firing redelivered with new annotations at once: persisted",
			prep: []Batch{batch(t0, "g", false, a, bb)},
			dup:  batch(at(time.Second), "g", false, withSummary(a, "new words")),
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "alerts put", keysOf(ch.Alerts), []string{keyA})
				equal(t, "annotations", ch.Alerts[0].Alert.Annotations, map[string]string{"summary": "new words"})
			},
		},
		{
			name:      "resolving batch applied twice",
			prep:      []Batch{batch(t0, "g", false, a, bb), batch(at(5*time.Minute), "g", false, resA, resB)},
			dup:       batch(at(5*time.Minute), "g", false, resA, resB),
			wantEmpty: true,
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "open", len(b.Open()), 0)
				equal(t, "resolved", b.Get(newID("api", keyA)).Status, Resolved)
			},
		},
		{
			name:      "resolving batch redelivered later",
			prep:      []Batch{batch(t0, "g", true, a, bb), batch(at(5*time.Minute), "g", true, resA, resB)},
			dup:       batch(at(6*time.Minute), "g", true, resA, resB),
			wantEmpty: true,
		},
		{
			name: "mixed batch (a resolved, b firing) applied twice",
			prep: []Batch{batch(t0, "g", false, a, bb), batch(at(5*time.Minute), "g", false, resA, bb)},
			dup:  batch(at(6*time.Minute), "g", false, resA, bb),
			check: func(t *testing.T, b *Book, ch *Changes) {
				inc := only(t, b)
				equal(t, "firing", inc.Firing, 1)
				equal(t, "severity", inc.Severity, severity.Level(3))
				equal(t, "alerts put", keysOf(ch.Alerts), []string{keyB})
				// a left the incident when it resolved; its tombstone is final.
				if inc.Alerts[keyA] != nil {
					t.Errorf("resolved a is still a member: %+v", inc.Alerts[keyA])
				}
				equal(t, "a's tombstone", b.tombs[keyA], Tombstone{IncidentID: inc.ID, ResolvedBy: ByAlertmanager, At: at(5 * time.Minute)})
			},
		},
		{
			name: "same fingerprint, new startsAt: a new occurrence joins",
			prep: []Batch{batch(t0, "g", false, a)},
			dup:  batch(at(time.Minute), "g", false, fire("api", "a", at(time.Minute), 2)),
			check: func(t *testing.T, b *Book, ch *Changes) {
				inc := only(t, b)
				equal(t, "firing", inc.Firing, 2)
				equal(t, "alerts put", keysOf(ch.Alerts), []string{occKey("a", at(time.Minute))})
				equal(t, "decisions", ch.Decisions, 1)
			},
		},
		{
			name:      "firing redelivered after resolve, incident open",
			prep:      []Batch{batch(t0, "g", false, a, bb), batch(at(5*time.Minute), "g", false, resA)},
			dup:       batch(at(6*time.Minute), "other", false, a),
			wantEmpty: true,
			check: func(t *testing.T, b *Book, ch *Changes) {
				inc := only(t, b)
				equal(t, "firing", inc.Firing, 1)
				equal(t, "severity", inc.Severity, severity.Level(3))
				if inc.Alerts[keyA] != nil {
					t.Errorf("resolved a is still a member")
				}
				equal(t, "a groups", len(b.groups["other"]), 0)
			},
		},
		{
			name:      "firing redelivered after resolve, incident resolved",
			prep:      []Batch{batch(t0, "g", false, a), batch(at(5*time.Minute), "g", false, resA)},
			dup:       batch(at(6*time.Minute), "g", true, a),
			wantEmpty: true,
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "open", len(b.Open()), 0)
				equal(t, "tombstone", b.tombs[keyA].ResolvedBy, ByAlertmanager)
			},
		},
		{
			name:      "resolved never seen firing, applied twice",
			prep:      []Batch{batch(t0, "g", false, resA)},
			dup:       batch(at(time.Minute), "g", true, resA),
			wantEmpty: true,
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "tombstone", b.tombs, map[string]Tombstone{keyA: {ResolvedBy: ByAlertmanager, At: t0}})
			},
		},
		{
			name:      "firing redelivered after a resolve never seen firing",
			prep:      []Batch{batch(t0, "g", false, resA)},
			dup:       batch(at(time.Minute), "g", false, a),
			wantEmpty: true,
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "open", len(b.Open()), 0)
				equal(t, "incidents", len(b.byID), 0)
			},
		},
		{
			name: "the same occurrence twice in one notification",
			dup:  batch(t0, "g", false, a, a),
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "events", evSummaries(ch), []string{"opened api sev2 firing=1 alerts=1"})
				equal(t, "alerts put", keysOf(ch.Alerts), []string{keyA})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBook()
			for _, in := range tt.prep {
				b.Apply(in)
			}
			var before []*Incident
			for _, inc := range b.Open() {
				cp := *inc
				before = append(before, &cp)
			}
			ch := b.Apply(tt.dup)
			if len(tt.prep) > 0 && len(ch.Events) != 0 {
				t.Errorf("duplicate produced events %q", evSummaries(ch))
			}
			if got := ch.Empty(); got != tt.wantEmpty {
				t.Errorf("Empty() = %v, want %v (%d incidents, %d alerts, %d deleted, %d tombstones)",
					got, tt.wantEmpty, len(ch.Incidents), len(ch.Alerts), len(ch.DeletedAlerts), len(ch.Tombstones))
			}
			for _, was := range before {
				now := b.Get(was.ID)
				if now.Severity != was.Severity || now.PeakSeverity != was.PeakSeverity || now.Decisive != was.Decisive ||
					now.Title != was.Title || now.Status != was.Status || !now.StartedAt.Equal(was.StartedAt) {
					t.Errorf("incident %s changed: %+v → %+v", was.ID, *was, *now)
				}
			}
			checkConsistent(t, tt.name, b)
			if tt.check != nil {
				tt.check(t, b, ch)
			}
		})
	}
}

func TestAbsentMembers(t *testing.T) {
	keyA, keyB, keyC := occKey("a", t0), occKey("b", t0), occKey("c", t0)
	a, bb, c := fire("api", "a", t0, 1), fire("api", "b", t0, 3), fire("api", "c", t0, 3)
	firstID := newID("api", keyA)
	// member checks an alert: firing in its incident, or resolved (by whom),
	// which takes it out of the incident and leaves a tombstone.
	member := func(key, status, by string, endsAt time.Time) func(*testing.T, *Book, *Changes) {
		return func(t *testing.T, b *Book, _ *Changes) {
			t.Helper()
			if status == Resolved {
				if inc := b.live[key]; inc != nil {
					t.Errorf("%s resolved but still a member of %s", key, inc.ID)
				}
				if tomb, ok := b.tombs[key]; !ok || tomb.ResolvedBy != by {
					t.Errorf("%s: tombstone %+v (%v), want resolved by %q", key, tomb, ok, by)
				}
				return
			}
			inc := b.live[key]
			if inc == nil {
				t.Fatalf("%s not live", key)
			}
			x := inc.Alerts[key]
			if x.Status != status || x.ResolvedBy != by || !x.EndsAt.Equal(endsAt) {
				t.Errorf("%s: status %s by %q endsAt %v; want %s by %q endsAt %v", key, x.Status, x.ResolvedBy, x.EndsAt, status, by, endsAt)
			}
		}
	}
	t.Run("lifecycle", func(t *testing.T) {
		runSteps(t, NewBook(), []stepCase{
			{name: "open from group g", op: apply(batch(t0, "g", true, a, bb)),
				events: []string{"opened api sev1 firing=2 alerts=2"}},
			{name: "truncated batch never resolves absent members", op: apply(batch(at(time.Minute), "g", false, bb)),
				check: member(keyA, Firing, "", time.Time{})},
			{name: "other group's complete batch does not touch g", op: apply(batch(at(2*time.Minute), "h", true, c)),
				check: func(t *testing.T, b *Book, ch *Changes) {
					member(keyA, Firing, "", time.Time{})(t, b, ch)
					member(keyB, Firing, "", time.Time{})(t, b, ch)
					equal(t, "firing", only(t, b).Firing, 3)
				}},
			{name: "complete batch without group key resolves nothing", op: apply(batch(at(3*time.Minute), "", true, bb)),
				check: member(keyA, Firing, "", time.Time{})},
			{name: "b moves back to g", op: apply(batch(at(4*time.Minute), "g", false, bb))},
			{name: "complete g batch without a: a absent", op: apply(batch(at(5*time.Minute), "g", true, bb)),
				events: []string{"severity_changed api sev3 from sev1 firing=2 alerts=3"},
				check: func(t *testing.T, b *Book, ch *Changes) {
					member(keyA, Resolved, ByAbsence, at(5*time.Minute))(t, b, ch)
					equal(t, "alerts put", keysOf(ch.Alerts), []string{keyB})
					equal(t, "deleted", keysOf(ch.DeletedAlerts), []string{keyA})
					equal(t, "tombstones", ch.Tombstones, map[string]Tombstone{keyA: {IncidentID: firstID, ResolvedBy: ByAbsence, At: at(5 * time.Minute)}})
				}},
			{name: "same complete batch again", op: apply(batch(at(6*time.Minute), "g", true, bb)),
				check: member(keyA, Resolved, ByAbsence, at(5*time.Minute))},
			{name: "a seen firing again: rejoins the open incident", op: apply(batch(at(7*time.Minute), "g", false, a, bb)),
				events: []string{"severity_changed api sev1 from sev3 firing=3 alerts=3"},
				check: func(t *testing.T, b *Book, ch *Changes) {
					member(keyA, Firing, "", time.Time{})(t, b, ch)
					inc := only(t, b)
					equal(t, "id", inc.ID, firstID)
					equal(t, "a LastSeen", inc.Alerts[keyA].LastSeen, at(7*time.Minute))
					equal(t, "decisive", inc.Decisive, keyA)
				}},
			{name: "empty complete g batch: a and b absent", op: apply(batch(at(8*time.Minute), "g", true)),
				events: []string{"severity_changed api sev3 from sev1 firing=1 alerts=3"},
				check: func(t *testing.T, b *Book, ch *Changes) {
					member(keyA, Resolved, ByAbsence, at(8*time.Minute))(t, b, ch)
					member(keyB, Resolved, ByAbsence, at(8*time.Minute))(t, b, ch)
					equal(t, "alerts put", len(ch.Alerts), 0)
					equal(t, "deleted", keysOf(ch.DeletedAlerts), []string{keyA, keyB})
				}},
			{name: "empty complete h batch: incident resolves", op: apply(batch(at(9*time.Minute), "h", true)),
				events: []string{"resolved api sev3 firing=0 alerts=3"},
				check: func(t *testing.T, b *Book, ch *Changes) {
					inc := b.Get(firstID)
					equal(t, "status", inc.Status, Resolved)
					equal(t, "resolved at", inc.ResolvedAt, at(9*time.Minute))
					equal(t, "tombstones", ch.Tombstones, map[string]Tombstone{keyC: {IncidentID: firstID, ResolvedBy: ByAbsence, At: at(9 * time.Minute)}})
					equal(t, "deleted", keysOf(ch.DeletedAlerts), []string{keyC})
				}},
			{name: "monitoring passes: closed", op: closeQuiet(at(10*time.Minute), time.Minute),
				events: []string{"closed api sev3 firing=0 alerts=2"}},
			{name: "a seen firing again: a new incident", op: apply(batch(at(10*time.Minute), "g", false, a)),
				events: []string{"opened api sev1 firing=1 alerts=1"},
				check: func(t *testing.T, b *Book, ch *Changes) {
					inc := only(t, b)
					if inc.ID == firstID {
						t.Fatalf("reopened under the resolved incident's id %s", firstID)
					}
					equal(t, "id", inc.ID, newID(firstID, keyA))
					equal(t, "started", inc.StartedAt, t0)
					if _, ok := b.tombs[keyA]; ok {
						t.Error("tombstone of the reopened occurrence kept in memory")
					}
					equal(t, "old incident", b.Get(firstID).Status, Resolved)
				}},
			{name: "c seen firing again joins it", op: apply(batch(at(11*time.Minute), "h", false, c)),
				check: func(t *testing.T, b *Book, ch *Changes) { equal(t, "firing", only(t, b).Firing, 2) }},
			{name: "its redelivery changes nothing", op: apply(batch(at(12*time.Minute), "h", false, c))},
		})
	})

	t.Run("member last delivered by another group", func(t *testing.T) {
		runSteps(t, NewBook(), []stepCase{
			{name: "g delivers a and b", op: apply(batch(t0, "g", true, a, bb)), events: []string{"opened api sev1 firing=2 alerts=2"}},
			{name: "h delivers a", op: apply(batch(at(time.Minute), "h", false, a))},
			{name: "g complete without a or b: only b is g's", op: apply(batch(at(2*time.Minute), "g", true)),
				check: func(t *testing.T, b *Book, ch *Changes) {
					member(keyA, Firing, "", time.Time{})(t, b, ch)
					member(keyB, Resolved, ByAbsence, at(2*time.Minute))(t, b, ch)
				}},
		})
	})

	t.Run("an Alertmanager resolve after an inferred one is final (open)", func(t *testing.T) {
		runSteps(t, NewBook(), []stepCase{
			{name: "open", op: apply(batch(t0, "g", true, a, bb)), events: []string{"opened api sev1 firing=2 alerts=2"}},
			{name: "a absent", op: apply(batch(at(time.Minute), "g", true, bb)),
				events: []string{"severity_changed api sev3 from sev1 firing=1 alerts=2"}},
			{name: "Alertmanager resolves a", op: apply(batch(at(2*time.Minute), "g", false, resolve("api", "a", t0, at(30*time.Second), 1))),
				check: member(keyA, Resolved, ByAlertmanager, at(30*time.Second))},
			{name: "the resolve again", op: apply(batch(at(3*time.Minute), "g", false, resolve("api", "a", t0, at(30*time.Second), 1))), empty: true},
			{name: "a stale firing redelivery is ignored", op: apply(batch(at(4*time.Minute), "g", false, a)), empty: true,
				check: member(keyA, Resolved, ByAlertmanager, at(30*time.Second))},
		})
	})

	t.Run("an Alertmanager resolve after an inferred one is final (resolved)", func(t *testing.T) {
		runSteps(t, NewBook(), []stepCase{
			{name: "open", op: apply(batch(t0, "g", true, a)), events: []string{"opened api sev1 firing=1 alerts=1"}},
			{name: "a absent: resolved", op: apply(batch(at(time.Minute), "g", true)),
				events: []string{"resolved api sev1 firing=0 alerts=1"}},
			{name: "Alertmanager resolves a", op: apply(batch(at(2*time.Minute), "g", false, resolve("api", "a", t0, at(30*time.Second), 1))),
				check: func(t *testing.T, b *Book, ch *Changes) {
					want := Tombstone{IncidentID: firstID, ResolvedBy: ByAlertmanager, At: at(time.Minute)}
					equal(t, "tombstone put", ch.Tombstones, map[string]Tombstone{keyA: want})
					equal(t, "tombstone", b.tombs[keyA], want)
				}},
			{name: "the resolve again", op: apply(batch(at(3*time.Minute), "g", false, resolve("api", "a", t0, at(30*time.Second), 1))), empty: true},
			{name: "a stale firing redelivery is ignored", op: apply(batch(at(4*time.Minute), "g", false, a)), empty: true,
				check: func(t *testing.T, b *Book, _ *Changes) { equal(t, "open", len(b.Open()), 0) }},
		})
	})
}

func TestSweepStale(t *testing.T) {
	keyA, keyX := occKey("a", t0), occKey("x", t0)
	a, bb, x := fire("api", "a", t0, 1), fire("api", "b", t0, 3), fire("db", "x", t0, 2)
	apiID, dbID := newID("api", keyA), newID("db", keyX)
	runSteps(t, NewBook(), []stepCase{
		{name: "api opens", op: apply(batch(t0, "g", false, a, bb)), events: []string{"opened api sev1 firing=2 alerts=2"}},
		{name: "db opens", op: apply(batch(t0, "g2", false, x)), events: []string{"opened db sev2 firing=1 alerts=1"}},
		{name: "b seen again", op: apply(batch(at(10*time.Minute), "g", false, bb))},
		{name: "0 disables", op: sweep(at(time.Hour), 0), empty: true},
		{name: "negative disables", op: sweep(at(time.Hour), -time.Minute), empty: true},
		{name: "nothing old enough", op: sweep(at(15*time.Minute), 20*time.Minute), empty: true},
		{name: "a and x stale", op: sweep(at(15*time.Minute), 10*time.Minute),
			events: []string{"severity_changed api sev3 from sev1 firing=1 alerts=2", "resolved db sev2 firing=0 alerts=1"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				// a leaves the api incident, stale; x's db incident resolves.
				if ra := b.Get(apiID).Alerts[keyA]; ra != nil {
					t.Errorf("stale a still a member: %+v", ra)
				}
				equal(t, "b", b.Get(apiID).Alerts[occKey("b", t0)].Status, Firing)
				db := b.Get(dbID)
				equal(t, "db status", db.Status, Resolved)
				equal(t, "db resolved at", db.ResolvedAt, at(15*time.Minute))
				equal(t, "tombstones", ch.Tombstones, map[string]Tombstone{
					keyA: {IncidentID: apiID, ResolvedBy: ByStaleness, At: at(15 * time.Minute)},
					keyX: {IncidentID: dbID, ResolvedBy: ByStaleness, At: at(15 * time.Minute)},
				})
				equal(t, "alerts put", len(ch.Alerts), 0)
				equal(t, "deleted", keysOf(ch.DeletedAlerts), []string{keyA, keyX})
				equal(t, "incidents put", len(ch.Incidents), 2)
			}},
		{name: "sweeping again changes nothing", op: sweep(at(16*time.Minute), 10*time.Minute), empty: true},
		{name: "a seen firing again: reopened", op: apply(batch(at(17*time.Minute), "g", false, a)),
			events: []string{"severity_changed api sev1 from sev3 firing=2 alerts=2"},
			check: func(t *testing.T, b *Book, _ *Changes) {
				ra := b.Get(apiID).Alerts[keyA]
				if ra.Status != Firing || ra.ResolvedBy != "" || !ra.EndsAt.IsZero() || !ra.LastSeen.Equal(at(17*time.Minute)) {
					t.Errorf("a = %+v", ra)
				}
			}},
		{name: "all api alerts stale: resolves", op: sweep(at(30*time.Minute), 10*time.Minute),
			events: []string{"resolved api sev1 firing=0 alerts=2"},
			check: func(t *testing.T, b *Book, ch *Changes) {
				equal(t, "resolved at", b.Get(apiID).ResolvedAt, at(30*time.Minute))
				equal(t, "tombstones", tombKeys(ch.Tombstones), []string{keyA, occKey("b", t0)})
				equal(t, "alerts had", b.Get(apiID).Left+len(b.Get(apiID).Alerts), 0) // none kept once resolved
				for _, tomb := range ch.Tombstones {
					equal(t, "tombstone by", tomb.ResolvedBy, ByStaleness)
				}
				equal(t, "open", len(b.Open()), 0)
			}},
		{name: "monitoring passes: both closed", op: closeQuiet(at(31*time.Minute), time.Minute),
			events: []string{"closed api sev1 firing=0 alerts=0", "closed db sev2 firing=0 alerts=0"}},
		{name: "x seen firing again: new db incident", op: apply(batch(at(31*time.Minute), "g2", false, x)),
			events: []string{"opened db sev2 firing=1 alerts=1"},
			check: func(t *testing.T, b *Book, _ *Changes) {
				if inc := only(t, b); inc.ID == dbID || inc.Service != "db" {
					t.Errorf("reopened as %s", inc.ID)
				}
			}},
	})

	t.Run("boundary", func(t *testing.T) {
		tests := []struct {
			name      string
			age       time.Duration
			wantStale bool
		}{
			{"just fresh", 10*time.Minute - time.Nanosecond, false},
			{"exactly stale_after (current: stale)", 10 * time.Minute, true},
			{"older", 10*time.Minute + time.Nanosecond, true},
		}
		for _, tt := range tests {
			b := NewBook()
			b.Apply(batch(t0, "g", false, a))
			ch := b.SweepStale(t0.Add(tt.age), 10*time.Minute)
			if got := len(ch.Events) == 1 && ch.Events[0].Kind == ResolvedEvent; got != tt.wantStale {
				t.Errorf("%s: events %q, want stale=%v", tt.name, evSummaries(ch), tt.wantStale)
			}
		}
	})

	t.Run("Alertmanager-resolved members are not swept", func(t *testing.T) {
		b := NewBook()
		b.Apply(batch(t0, "g", false, a, bb))
		b.Apply(batch(at(time.Minute), "g", false, resolve("api", "a", t0, at(30*time.Second), 1)))
		b.Apply(batch(at(20*time.Minute), "g", false, bb))
		ch := b.SweepStale(at(25*time.Minute), 10*time.Minute)
		if !ch.Empty() {
			t.Fatalf("sweep touched a resolved member: %q, %d alerts", evSummaries(ch), len(ch.Alerts))
		}
		equal(t, "a's tombstone", b.tombs[keyA].ResolvedBy, ByAlertmanager)
	})
}

func TestPrune(t *testing.T) {
	keyA, keyB, keyD := occKey("a", t0), occKey("b", t0), occKey("d", t0)
	build := func() (*Book, [3]string) {
		b := NewBook()
		b.Apply(batch(t0, "g", false, fire("p", "a", t0, 2), fire("q", "b", t0, 2), fire("r", "c", at(-24*time.Hour), 1)))
		b.Apply(batch(at(30*time.Minute), "g", false, resolve("s", "d", t0, at(20*time.Minute), 3)))
		b.Apply(batch(at(time.Hour), "g", false, resolve("p", "a", t0, at(time.Hour), 2)))
		b.CloseQuiet(at(time.Hour), 0) // only closed incidents are pruned, retention after they closed
		b.Apply(batch(at(2*time.Hour), "g", false, resolve("q", "b", t0, at(2*time.Hour), 2)))
		b.CloseQuiet(at(2*time.Hour), 0)
		return b, [3]string{newID("p", keyA), newID("q", keyB), newID("r", occKey("c", at(-24*time.Hour)))}
	}
	tests := []struct {
		name           string
		now            time.Time
		retention      time.Duration
		wantIncidents  []string // by index into the ids: 0 p, 1 q
		wantTombstones []string
	}{
		{"nothing old enough", at(2 * time.Hour), 90 * time.Minute, nil, nil},
		{"p and the never-firing tombstone", at(3 * time.Hour), 90 * time.Minute, []string{"p"}, []string{keyA, keyD}},
		{"exactly retention is kept", at(3*time.Hour + 30*time.Minute), 90 * time.Minute, []string{"p"}, []string{keyA, keyD}},
		{"just past retention", at(3*time.Hour + 30*time.Minute + time.Nanosecond), 90 * time.Minute, []string{"p", "q"}, []string{keyA, keyB, keyD}},
		{"everything resolved", at(1000 * time.Hour), time.Hour, []string{"p", "q"}, []string{keyA, keyB, keyD}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ids := build()
			named := map[string]string{"p": ids[0], "q": ids[1]}
			var wantInc []string
			for _, n := range tt.wantIncidents {
				wantInc = append(wantInc, named[n])
			}
			sort.Strings(wantInc)
			incs, tombs := b.Prune(tt.now, tt.retention)
			equal(t, "pruned incidents", incs, wantInc)
			equal(t, "pruned tombstones", tombs, tt.wantTombstones)
			if !sort.StringsAreSorted(incs) || !sort.StringsAreSorted(tombs) {
				t.Error("not sorted")
			}
			for _, id := range incs {
				if b.Get(id) != nil {
					t.Errorf("%s still in the book", id)
				}
			}
			for _, k := range tombs {
				if _, ok := b.tombs[k]; ok {
					t.Errorf("tombstone %s kept", k)
				}
			}
			if r := b.Get(ids[2]); r == nil || r.Status != Firing {
				t.Error("the open incident was pruned")
			}
			equal(t, "open", len(b.Open()), 1)
			incs, tombs = b.Prune(tt.now, tt.retention)
			if len(incs)+len(tombs) != 0 {
				t.Errorf("second prune: %v %v", incs, tombs)
			}
			checkConsistent(t, tt.name, b)
		})
	}
}

// wantOrder sorts alerts as events and SortedAlerts must: firing first, most
// severe first, then by key.
func wantOrder(alerts []Alert) []string {
	sorted := slices.Clone(alerts)
	sort.Slice(sorted, func(i, j int) bool {
		fi, fj := sorted[i].Status == Firing, sorted[j].Status == Firing
		if fi != fj {
			return fi
		}
		if sorted[i].Decision.Severity != sorted[j].Decision.Severity {
			return sorted[i].Decision.Severity < sorted[j].Decision.Severity
		}
		return sorted[i].Key < sorted[j].Key
	})
	out := []string{}
	for _, a := range sorted {
		out = append(out, a.Key)
	}
	return out
}

func TestEventAlerts(t *testing.T) {
	eventKeys := func(ev Event) []string {
		out := []string{}
		for _, a := range ev.Alerts {
			out = append(out, a.Key)
		}
		return out
	}
	sevs := []severity.Level{3, 2, 4, 2, 3, 4}
	tests := []struct {
		name    string
		n       int
		resolve []int // indexes resolved in the second notification
	}{
		{"few", len(sevs), []int{1}},
		{"one below the cap", MaxEventAlerts - 1, []int{0, 7}},
		{"exactly the cap", MaxEventAlerts, []int{0, 7}},
		{"over the cap", 137, []int{3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs []Observation
			var all []Alert
			for i := range tt.n {
				// Keys run against insertion order so that sorting shows.
				o := fire("api", fmt.Sprintf("k%03d", tt.n-i), t0, sevs[i%len(sevs)])
				obs = append(obs, o)
				a := o.Alert
				a.Decision = o.Decision
				all = append(all, a)
			}
			b := NewBook()
			ch := b.Apply(batch(t0, "g", false, obs...))
			ev := ch.Events[0]
			equal(t, "opened total", ev.AlertsTotal, tt.n)
			equal(t, "opened carried", len(ev.Alerts), min(tt.n, MaxEventAlerts))
			equal(t, "opened order", eventKeys(ev), wantOrder(all)[:min(tt.n, MaxEventAlerts)])

			// Second notification: some resolve and leave, and a sev 1 alert
			// whose key sorts last joins, in one severity_changed event.
			var next []Observation
			gone := map[int]bool{}
			for _, i := range tt.resolve {
				o := obs[i]
				o.Alert.Status, o.Alert.EndsAt = Resolved, at(time.Minute)
				next = append(next, o)
				gone[i] = true
			}
			var members []Alert
			for i, a := range all {
				if !gone[i] {
					members = append(members, a)
				}
			}
			late := fire("api", "zzz", t0, 1)
			next = append(next, late)
			a := late.Alert
			a.Decision = late.Decision
			all = append(members, a)

			ch = b.Apply(batch(at(time.Minute), "g", false, next...))
			if len(ch.Events) != 1 || ch.Events[0].Kind != SeverityChanged {
				t.Fatalf("events %q", evSummaries(ch))
			}
			ev = ch.Events[0]
			total := tt.n + 1
			equal(t, "total (with those that left)", ev.AlertsTotal, total)
			equal(t, "carried", len(ev.Alerts), min(len(all), MaxEventAlerts))
			order := wantOrder(all)
			equal(t, "first carried", ev.Alerts[0].Key, occKey("zzz", t0))
			equal(t, "order", eventKeys(ev), order[:min(len(all), MaxEventAlerts)])
			for _, a := range ev.Alerts {
				if a.Status != Firing {
					t.Errorf("carried alert %s is %s: resolved members leave", a.Key, a.Status)
				}
			}
			inc := b.Get(ev.Incident.ID)
			var sorted []string
			for _, a := range inc.SortedAlerts() {
				sorted = append(sorted, a.Key)
			}
			equal(t, "SortedAlerts", sorted, order)

			// Deterministic: the same input gives byte-identical events.
			b2 := NewBook()
			b2.Apply(batch(t0, "g", false, obs...))
			equal(t, "replayed events", mustJSON(t, b2.Apply(batch(at(time.Minute), "g", false, next...)).Events), mustJSON(t, ch.Events))
		})
	}
}

func TestEventIsSnapshot(t *testing.T) {
	b := NewBook()
	opened := b.Apply(batch(t0, "g", false, fire("api", "a", t0, 3)))
	before := mustJSON(t, opened.Events)
	b.Apply(batch(at(time.Minute), "g", false, fire("api", "b", t0, 1)))
	b.Apply(batch(at(2*time.Minute), "g", false, resolve("api", "a", t0, at(time.Minute), 3)))
	b.Apply(batch(at(3*time.Minute), "g", false, resolve("api", "b", t0, at(time.Minute), 1)))
	if after := mustJSON(t, opened.Events); after != before {
		t.Errorf("event changed after later steps:\n%s\n%s", before, after)
	}
	ev := opened.Events[0]
	if ev.Incident.Severity != 3 || ev.Incident.Status != Firing || ev.Alerts[0].Status != Firing {
		t.Errorf("snapshot = %+v", ev)
	}
}

func TestOpenOrder(t *testing.T) {
	b := NewBook()
	b.Apply(batch(t0, "g", false,
		fire("s1", "a", t0, 2),
		fire("s2", "b", at(5*time.Minute), 1),
		fire("s3", "c", at(-5*time.Minute), 2),
		fire("s4", "d", at(-5*time.Minute), 2),
		fire("s5", "e", at(-time.Hour), 4),
	))
	id3, id4 := newID("s3", occKey("c", at(-5*time.Minute))), newID("s4", occKey("d", at(-5*time.Minute)))
	want := []string{"s2", "s3", "s4", "s1", "s5"}
	if id4 < id3 {
		want = []string{"s2", "s4", "s3", "s1", "s5"}
	}
	var got []string
	for _, inc := range b.Open() {
		got = append(got, inc.Service)
	}
	equal(t, "open order", got, want)
	if b.Get("no-such-id") != nil {
		t.Error("Get of an unknown id")
	}
}
