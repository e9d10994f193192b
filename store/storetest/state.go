package storetest

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store"
)

// byID is a loaded state's incidents by id, and its alerts by incident id
// NUL key; a backend may return them in any order.
func byID(ls *store.LoadedState) (map[string]*incident.Incident, map[string]*incident.Alert) {
	incs := map[string]*incident.Incident{}
	for _, inc := range ls.Incidents {
		incs[inc.ID] = inc
	}
	alerts := map[string]*incident.Alert{}
	for _, ref := range ls.Alerts {
		alerts[ref.IncidentID+"\x00"+ref.Alert.Key] = ref.Alert
	}
	return incs, alerts
}

func keys[V any](m map[string]V) []string {
	out := []string{}
	for k := range m {
		out = append(out, strings.ReplaceAll(k, "\x00", "/"))
	}
	sort.Strings(out)
	return out
}

func testStateRoundTrip(t *testing.T, b Backend) {
	s, reopen := b(t)
	if ls := load(t, s); ls.LastSeq != 0 || len(ls.Incidents) != 0 || len(ls.Alerts) != 0 ||
		len(ls.Tombstones) != 0 || len(ls.Heartbeats) != 0 {
		t.Fatalf("fresh store's state: %+v", ls)
	}
	// a: open, its reasons those of its decisive alert (stored once, on
	// the alert). b: its reasons its own. c: resolved, no alerts kept.
	aAlert := newAlert("fa", t0, "Q2: 62% of requests failing [prometheus]", "signal line")
	aOther := newAlert("fa2", t0.Add(time.Second), "other reasons")
	a := newIncident("api-a", aAlert, aAlert.Decision.Reasons...)
	a.Alerts[aOther.Key] = aOther
	a.Firing = 2
	bAlert := newAlert("fb", t0, "fallback: severity=critical")
	bInc := newIncident("api-b", bAlert, "escalated by hand")
	c := newIncident("api-c", newAlert("fc", t0), "gone")
	c.Alerts = nil
	c.Status, c.ResolvedAt, c.State, c.Firing = incident.Resolved, t0.Add(time.Hour), incident.StateClosed, 0
	// d: open, neither it nor its decisive alert has reasons: it has none
	// after a reload either.
	dAlert := newAlert("fd", t0)
	d := newIncident("api-d", dAlert)
	// An alert whose name and fingerprint are not what its labels and key
	// say keeps them.
	odd := newAlert("fo", t0)
	odd.Name, odd.Fingerprint = "Renamed", "other-fp"
	bInc.Alerts[odd.Key] = odd
	beat := t0.Add(42)
	apply(t, s, &store.Commit{
		LastSeq: 7,
		Changes: []*incident.Changes{{
			Incidents: []*incident.Incident{a, bInc, c, d},
			Alerts: []incident.AlertRef{{IncidentID: a.ID, Alert: aAlert}, {IncidentID: a.ID, Alert: aOther},
				{IncidentID: bInc.ID, Alert: bAlert}, {IncidentID: bInc.ID, Alert: odd}, {IncidentID: d.ID, Alert: dAlert}},
			Tombstones: map[string]incident.Tombstone{
				"fc@" + t0.Format(time.RFC3339Nano): {IncidentID: c.ID, ResolvedBy: incident.ByAlertmanager, At: t0.Add(time.Hour)},
				"fz@x":                              {ResolvedBy: incident.ByAbsence, At: t0},
			},
		}},
		Heartbeats: map[string]time.Time{"http://am:9093": beat, "http://am2:9093": t0},
	})
	// A sweep's commit (no LastSeq) leaves LastSeq alone.
	apply(t, s, &store.Commit{})

	check := func(when string, ls *store.LoadedState) {
		t.Helper()
		if ls.LastSeq != 7 {
			t.Errorf("%s: LastSeq = %d, want 7", when, ls.LastSeq)
		}
		incs, alerts := byID(ls)
		if got, want := keys(incs), []string{"api-a", "api-b", "api-c", "api-d"}; !slices.Equal(got, want) {
			t.Fatalf("%s: incidents %v, want %v", when, got, want)
		}
		for _, want := range []*incident.Incident{a, bInc, c, d} {
			if got := jsonOf(t, incs[want.ID]); got != jsonOf(t, want) {
				t.Errorf("%s: incident %s\n got %s\nwant %s", when, want.ID, got, jsonOf(t, want))
			}
		}
		wantAlerts := map[string]*incident.Alert{
			a.ID + "\x00" + aAlert.Key: aAlert, a.ID + "\x00" + aOther.Key: aOther,
			bInc.ID + "\x00" + bAlert.Key: bAlert, bInc.ID + "\x00" + odd.Key: odd,
			d.ID + "\x00" + dAlert.Key: dAlert,
		}
		if got, want := keys(alerts), keys(wantAlerts); !slices.Equal(got, want) {
			t.Fatalf("%s: alerts %v, want %v", when, got, want)
		}
		for k, want := range wantAlerts {
			if got := jsonOf(t, alerts[k]); got != jsonOf(t, want) {
				t.Errorf("%s: alert %s\n got %s\nwant %s", when, k, got, jsonOf(t, want))
			}
		}
		if got := len(ls.Tombstones); got != 2 {
			t.Errorf("%s: %d tombstones, want 2", when, got)
		}
		if ts := ls.Tombstones["fc@"+t0.Format(time.RFC3339Nano)]; ts.IncidentID != c.ID || ts.ResolvedBy != incident.ByAlertmanager || !ts.At.Equal(t0.Add(time.Hour)) {
			t.Errorf("%s: tombstone of fc = %+v", when, ts)
		}
		if got := ls.Heartbeats["http://am:9093"]; got.UnixNano() != beat.UnixNano() || got.Location() != time.UTC {
			t.Errorf("%s: heartbeat = %v, want %v in UTC", when, got, beat)
		}
		if len(ls.Heartbeats) != 2 {
			t.Errorf("%s: heartbeats %v, want 2", when, ls.Heartbeats)
		}
	}
	check("before reopen", load(t, s))
	s = reopen()
	check("after reopen", load(t, s))
}

func testStateDeletesAndPrunes(t *testing.T, b Backend) {
	s, reopen := b(t)
	commit, incs := opened(1, nil, "api-1", "api-2")
	extra := newAlert("fx", t0.Add(time.Minute), "x")
	commit.Changes[0].Alerts = append(commit.Changes[0].Alerts, incident.AlertRef{IncidentID: "api-1", Alert: extra})
	commit.Changes[0].Tombstones = map[string]incident.Tombstone{"t1": {ResolvedBy: incident.ByAbsence, At: t0}, "t2": {ResolvedBy: incident.ByStaleness, At: t0}, "t3": {At: t0}}
	commit.Heartbeats = map[string]time.Time{"http://a": t0, "http://b": t0}
	apply(t, s, commit)

	// An alert resolves and leaves; one tombstone is undone, another
	// pruned; a silent Alertmanager is forgotten; api-2, resolved (its
	// alert gone) is pruned.
	apply(t, s, &store.Commit{
		LastSeq: 2,
		Changes: []*incident.Changes{{
			DeletedAlerts: []incident.AlertRef{{IncidentID: "api-1", Alert: extra},
				{IncidentID: incs[1].ID, Alert: incs[1].Alerts[incs[1].Decisive]}},
			DeletedTombstones: []string{"t1"},
			Tombstones:        map[string]incident.Tombstone{"t4": {At: t0}},
		}},
		PrunedIncidents:  []string{incs[1].ID},
		PrunedTombstones: []string{"t2"},
		ForgetHeartbeats: []string{"http://a"},
		Heartbeats:       map[string]time.Time{"http://c": t0},
	})
	check := func(when string, ls *store.LoadedState) {
		t.Helper()
		incs, alerts := byID(ls)
		if got := keys(incs); !slices.Equal(got, []string{"api-1"}) {
			t.Errorf("%s: incidents %v, want [api-1]", when, got)
		}
		if got, want := keys(alerts), []string{"api-1/" + incs["api-1"].Decisive}; !slices.Equal(got, want) {
			t.Errorf("%s: alerts %v, want %v", when, got, want)
		}
		if got := keys(ls.Tombstones); !slices.Equal(got, []string{"t3", "t4"}) {
			t.Errorf("%s: tombstones %v, want [t3 t4]", when, got)
		}
		if got := keys(ls.Heartbeats); !slices.Equal(got, []string{"http://b", "http://c"}) {
			t.Errorf("%s: heartbeats %v, want [http://b http://c]", when, got)
		}
		if ls.LastSeq != 2 {
			t.Errorf("%s: LastSeq %d, want 2", when, ls.LastSeq)
		}
	}
	check("before reopen", load(t, s))
	s = reopen()
	check("after reopen", load(t, s))
}

func testPruneTakesReceiverStateAndEvidence(t *testing.T, b Backend) {
	s, reopen := b(t)
	commit, _ := opened(1, nil, "api-keep", "api-gone")
	apply(t, s, commit)
	for _, id := range []string{"api-keep", "api-gone"} {
		for _, r := range []string{"slack", "grafana"} {
			if err := s.SaveReceiverState(r, id, map[string]string{"ts": r + id}); err != nil {
				t.Fatalf("SaveReceiverState: %v", err)
			}
		}
		if _, err := s.PutEvidence([]store.EvidenceRecord{{ID: id, JSON: []byte(`{"id":"` + id + `"}`), PNGs: map[int64][]byte{3: []byte("png")}}}); err != nil {
			t.Fatalf("PutEvidence: %v", err)
		}
	}
	apply(t, s, &store.Commit{PrunedIncidents: []string{"api-gone"}})
	check := func(when string) {
		t.Helper()
		for _, tc := range []struct {
			id   string
			want bool
		}{{"api-keep", true}, {"api-gone", false}} {
			for _, r := range []string{"slack", "grafana"} {
				var v map[string]string
				found, err := s.LoadReceiverState(r, tc.id, &v)
				if err != nil || found != tc.want {
					t.Errorf("%s: %s state of %s: found %v (%v), want %v", when, r, tc.id, found, err, tc.want)
				}
			}
			if _, ok, err := s.Evidence(tc.id); err != nil || ok != tc.want {
				t.Errorf("%s: evidence of %s: %v (%v), want %v", when, tc.id, ok, err, tc.want)
			}
			if _, ok, err := s.EvidencePNG(tc.id, 3); err != nil || ok != tc.want {
				t.Errorf("%s: evidence PNG of %s: %v (%v), want %v", when, tc.id, ok, err, tc.want)
			}
		}
	}
	check("before reopen")
	s = reopen()
	check("after reopen")
}

// A webhook's fingerprints and externalURL become record keys (alerts,
// tombstones, heartbeats). JSON lets them hold a NUL; a store that cannot
// keep one would fail every commit of that notification, and the pipeline
// would retry it for ever.
func testStateKeysHoldAnyBytes(t *testing.T, b Backend) {
	s, reopen := b(t)
	a := newAlert("fp\x00é", t0, "r")
	gone := newAlert("gone\x00", t0, "r")
	inc := newIncident("api-1", a, "r")
	url, forgotten := "http://am\x00:9093/é", "http://old\x00"
	apply(t, s, &store.Commit{LastSeq: 1, Changes: []*incident.Changes{{
		Incidents:  []*incident.Incident{inc},
		Alerts:     []incident.AlertRef{{IncidentID: inc.ID, Alert: a}, {IncidentID: inc.ID, Alert: gone}},
		Tombstones: map[string]incident.Tombstone{gone.Key: {ResolvedBy: incident.ByAlertmanager, At: t0}, "undone\x00": {At: t0}, "pruned\x00": {At: t0}},
	}}, Heartbeats: map[string]time.Time{url: t0, forgotten: t0}})
	apply(t, s, &store.Commit{LastSeq: 2, Changes: []*incident.Changes{{
		DeletedAlerts:     []incident.AlertRef{{IncidentID: inc.ID, Alert: gone}},
		DeletedTombstones: []string{"undone\x00"},
	}}, PrunedTombstones: []string{"pruned\x00"}, ForgetHeartbeats: []string{forgotten}})
	s = reopen()
	ls := load(t, s)
	_, alerts := byID(ls)
	if got := alerts[inc.ID+"\x00"+a.Key]; got == nil || got.Fingerprint != a.Fingerprint || len(alerts) != 1 {
		t.Errorf("alerts %q, want only %q with fingerprint %q", keys(alerts), a.Key, a.Fingerprint)
	}
	if got := keys(ls.Tombstones); !slices.Equal(got, []string{strings.ReplaceAll(gone.Key, "\x00", "/")}) {
		t.Errorf("tombstones %q, want only %q", got, gone.Key)
	}
	if _, ok := ls.Heartbeats[url]; !ok || len(ls.Heartbeats) != 1 {
		t.Errorf("heartbeats %q, want only %q", keys(ls.Heartbeats), url)
	}
}

// Keys as large as a webhook may make them: an 8 KiB externalURL is a
// heartbeat's key and its missing-heartbeat alert's fingerprint. A store
// that cannot hold them would fail every commit of that notification.
func testStateKeysAtTheWebhooksLimits(t *testing.T, b Backend) {
	s, reopen := b(t)
	// Incompressible, as a database may compress what repeats.
	noise := func(n int) string {
		var b strings.Builder
		for x := uint32(1); b.Len() < n; {
			x = x*1664525 + 1013904223
			b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[x>>26%36])
		}
		return b.String()
	}
	url := "http://am.example:9093/" + noise(8<<10-len("http://am.example:9093/"))
	a := newAlert("heartbeat:"+url, t0, "r")
	inc := newIncident("heartbeat-1", a, "r")
	gone := newAlert(noise(128)+"-"+noise(8<<10), t0, "r")
	apply(t, s, &store.Commit{LastSeq: 1, Changes: []*incident.Changes{{
		Incidents:  []*incident.Incident{inc},
		Alerts:     []incident.AlertRef{{IncidentID: inc.ID, Alert: a}, {IncidentID: inc.ID, Alert: gone}},
		Tombstones: map[string]incident.Tombstone{gone.Key: {ResolvedBy: incident.ByAlertmanager, At: t0}},
	}}, Heartbeats: map[string]time.Time{url: t0}})
	apply(t, s, &store.Commit{LastSeq: 2, Changes: []*incident.Changes{{
		DeletedAlerts: []incident.AlertRef{{IncidentID: inc.ID, Alert: gone}},
	}}})
	s = reopen()
	ls := load(t, s)
	_, alerts := byID(ls)
	if got := alerts[inc.ID+"\x00"+a.Key]; got == nil || len(alerts) != 1 {
		t.Errorf("%d alerts after the commits; want only the 8 KiB heartbeat alert", len(alerts))
	}
	if _, ok := ls.Tombstones[gone.Key]; !ok || len(ls.Tombstones) != 1 {
		t.Errorf("%d tombstones; want only the 8 KiB one", len(ls.Tombstones))
	}
	if _, ok := ls.Heartbeats[url]; !ok {
		t.Errorf("the heartbeat of an 8 KiB externalURL was not kept")
	}
	// A second heartbeat of the same URL replaces the first.
	apply(t, s, &store.Commit{Heartbeats: map[string]time.Time{url: t0.Add(time.Minute)}})
	if at := load(t, s).Heartbeats[url]; !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("heartbeat at %v after its update, want %v", at, t0.Add(time.Minute))
	}
}
