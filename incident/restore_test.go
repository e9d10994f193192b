package incident

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/amtriage/amtriage/severity"
)

// memStore persists Changes as the daemon's store does: JSON records written
// at commit time, incidents by id, alerts by incident + key, tombstones by key.
type memStore struct {
	incidents map[string][]byte
	alerts    map[string][]byte
	tombs     map[string][]byte
}

func newMemStore() *memStore {
	return &memStore{incidents: map[string][]byte{}, alerts: map[string][]byte{}, tombs: map[string][]byte{}}
}

func (m *memStore) put(t *testing.T, dst map[string][]byte, k string, v any) {
	t.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %s: %v", k, err)
	}
	dst[k] = buf
}

func (m *memStore) commit(t *testing.T, ch *Changes, p pruned) {
	t.Helper()
	for _, inc := range ch.Incidents {
		m.put(t, m.incidents, inc.ID, inc)
	}
	for _, ref := range ch.Alerts {
		m.put(t, m.alerts, ref.IncidentID+"\x00"+ref.Alert.Key, ref.Alert)
	}
	for _, ref := range ch.DeletedAlerts {
		delete(m.alerts, ref.IncidentID+"\x00"+ref.Alert.Key)
	}
	for k, tomb := range ch.Tombstones {
		m.put(t, m.tombs, k, tomb)
	}
	for _, id := range p.incidents {
		delete(m.incidents, id)
	}
	for _, k := range p.tombstones {
		delete(m.tombs, k)
	}
}

// load decodes the store in key order (as bbolt iterates), optionally reversed.
func (m *memStore) load(t *testing.T, reverse bool) (incs []*Incident, alerts []AlertRef, tombs map[string]Tombstone) {
	t.Helper()
	keys := func(mm map[string][]byte) []string {
		out := make([]string, 0, len(mm))
		for k := range mm {
			out = append(out, k)
		}
		sort.Strings(out)
		if reverse {
			slices.Reverse(out)
		}
		return out
	}
	for _, k := range keys(m.incidents) {
		inc := new(Incident)
		if err := json.Unmarshal(m.incidents[k], inc); err != nil {
			t.Fatalf("incident %s: %v", k, err)
		}
		incs = append(incs, inc)
	}
	for _, k := range keys(m.alerts) {
		a := new(Alert)
		if err := json.Unmarshal(m.alerts[k], a); err != nil {
			t.Fatalf("alert %q: %v", k, err)
		}
		id, _, _ := cutAt(k, '\x00')
		alerts = append(alerts, AlertRef{IncidentID: id, Alert: a})
	}
	tombs = map[string]Tombstone{}
	for _, k := range keys(m.tombs) {
		var tomb Tombstone
		if err := json.Unmarshal(m.tombs[k], &tomb); err != nil {
			t.Fatalf("tombstone %q: %v", k, err)
		}
		tombs[k] = tomb
	}
	return incs, alerts, tombs
}

func cutAt(s string, c byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (m *memStore) restore(t *testing.T, reverse bool) *Book {
	t.Helper()
	b := NewBook()
	b.Restore(m.load(t, reverse))
	return b
}

// bookState renders what a book knows, for comparing an original with its restore.
func bookState(t *testing.T, b *Book) string {
	t.Helper()
	type member struct {
		Incident string
		Alert    *Alert
	}
	var ids []string
	for id := range b.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var incs []*Incident
	var members []member
	for _, id := range ids {
		inc := b.byID[id]
		incs = append(incs, inc)
		for _, a := range inc.sortedAlerts() {
			members = append(members, member{id, a})
		}
	}
	groups := map[string][]string{}
	for g, m := range b.groups {
		for k, inc := range m {
			groups[g] = append(groups[g], inc.ID+" "+k)
		}
		sort.Strings(groups[g])
	}
	var open []string
	for _, inc := range b.Open() {
		open = append(open, inc.ID)
	}
	// A tombstone whose occurrence fired again is dropped from memory but not
	// from the store (Changes cannot delete one); the live occurrence shadows
	// it, so compare only the tombstones of occurrences not live.
	tombs := map[string]Tombstone{}
	for k, tomb := range b.tombs {
		if b.live[k] == nil {
			tombs[k] = tomb
		}
	}
	return mustJSON(t, map[string]any{"incidents": incs, "members": members, "groups": groups, "open": open, "tombstones": tombs})
}

func TestRestoreReplaysIdentically(t *testing.T) {
	g, h := "{}:{service=\"api\"}", "{}:{service=\"db\"}"
	storm := func(n int, status string) []Observation {
		var out []Observation
		for i := range n {
			o := fire("api", fmt.Sprintf("s%03d", i), t0, severity.Level(1+i%4))
			if status == Resolved {
				o.Alert.Status, o.Alert.EndsAt = Resolved, at(time.Duration(i)*time.Second)
			}
			out = append(out, o)
		}
		return out
	}
	A, B, C := fire("api", "a", t0, 3), fire("api", "b", at(-time.Minute), 2), fire("api", "c", at(time.Minute), 1)
	X := fire("db", "x", t0, 2)
	tests := []struct {
		name   string
		before []op
		after  []op
	}{
		{
			name: "open incident: severity moves, then resolves, then a new occurrence",
			before: []op{
				apply(batch(t0, g, false, A, B)),
				apply(batch(at(time.Minute), g, false, C)),
			},
			after: []op{
				apply(batch(at(2*time.Minute), g, false, resolve("api", "c", at(time.Minute), at(2*time.Minute), 1))),
				apply(batch(at(3*time.Minute), g, false, A, B)),
				apply(batch(at(3*time.Minute+time.Second), g, false, A, B)),
				apply(batch(at(4*time.Minute), g, false, resolve("api", "a", t0, at(4*time.Minute), 3), resolve("api", "b", at(-time.Minute), at(3*time.Minute), 2))),
				apply(batch(at(5*time.Minute), g, false, fire("api", "a", at(5*time.Minute), 4))),
			},
		},
		{
			name: "resolved incident: duplicates ignored, new occurrence opens",
			before: []op{
				apply(batch(t0, g, false, A)),
				apply(batch(at(time.Minute), g, false, resolve("api", "a", t0, at(time.Minute), 3))),
				apply(batch(at(2*time.Minute), g, false, resolve("api", "z", t0, at(time.Minute), 3))),
			},
			after: []op{
				apply(batch(at(3*time.Minute), g, false, A, fire("api", "z", t0, 1))),
				apply(batch(at(4*time.Minute), g, true, resolve("api", "a", t0, at(time.Minute), 3))),
				apply(batch(at(5*time.Minute), g, false, fire("api", "a", at(5*time.Minute), 2))),
			},
		},
		{
			name: "absent member reopens; group index rebuilt",
			before: []op{
				apply(batch(t0, g, true, A, B)),
				apply(batch(at(time.Minute), h, false, C)),
				apply(batch(at(2*time.Minute), g, true, B)),
			},
			after: []op{
				apply(batch(at(3*time.Minute), g, true, B)),
				apply(batch(at(4*time.Minute), g, false, A)),
				apply(batch(at(5*time.Minute), g, true)),
				apply(batch(at(6*time.Minute), h, true)),
				apply(batch(at(7*time.Minute), g, false, A)),
			},
		},
		{
			name: "complete batch right after restore resolves absent members",
			before: []op{
				apply(batch(t0, g, true, A, B, C)),
			},
			after: []op{
				apply(batch(at(time.Minute), g, true, B)),
				apply(batch(at(2*time.Minute), g, true)),
			},
		},
		{
			name: "stale, resolved, reopened under a derived id",
			before: []op{
				apply(batch(t0, g, false, A, B)),
				apply(batch(t0, h, false, X)),
				sweep(at(15*time.Minute), 10*time.Minute),
				apply(batch(at(16*time.Minute), g, false, A)),
			},
			after: []op{
				apply(batch(at(17*time.Minute), g, false, B)),
				sweep(at(40*time.Minute), 10*time.Minute),
				apply(batch(at(41*time.Minute), g, false, A)),
				apply(batch(at(42*time.Minute), h, false, X)),
			},
		},
		{
			name: "storm with truncated notifications closed by staleness",
			before: []op{
				apply(batch(t0, g, false, storm(120, Firing)...)),
				apply(batch(at(time.Minute), g, false, storm(60, Resolved)...)),
			},
			after: []op{
				apply(batch(at(2*time.Minute), g, false, storm(117, Resolved)[60:]...)),
				apply(batch(at(3*time.Minute), g, false, storm(120, Firing)...)),
				sweep(at(20*time.Minute), 10*time.Minute),
			},
		},
		{
			name: "decisive alert kept on ties after restore",
			before: []op{
				apply(batch(t0, g, false, fire("api", "b", t0, 2))),
				apply(batch(at(time.Minute), g, false, fire("api", "a", t0, 2))),
			},
			after: []op{
				apply(batch(at(2*time.Minute), g, false, fire("api", "c", t0, 2))),
				apply(batch(at(3*time.Minute), g, false, func() Observation {
					o := fire("api", "b", t0, 3)
					return o
				}())),
				apply(batch(at(4*time.Minute), g, false, fire("api", "b", t0, 1))),
			},
		},
		{
			name: "LastSeen not persisted within the granularity is not refreshed either",
			before: []op{
				apply(batch(t0, g, false, A)),
				apply(batch(at(30*time.Second), g, false, A)),
			},
			after: []op{
				sweep(at(10*time.Minute-time.Nanosecond), 10*time.Minute),
				sweep(at(10*time.Minute), 10*time.Minute),
			},
		},
		{
			name: "inferred resolution confirmed by Alertmanager stays final",
			before: []op{
				apply(batch(t0, g, true, A, B)),
				apply(batch(at(time.Minute), g, true, B)),
				apply(batch(at(2*time.Minute), g, false, resolve("api", "a", t0, at(30*time.Second), 3))),
			},
			after: []op{
				apply(batch(at(3*time.Minute), g, false, A)),
				apply(batch(at(4*time.Minute), g, true)),
				apply(batch(at(5*time.Minute), g, false, A, B)),
			},
		},
		{
			name: "pruned state",
			before: []op{
				apply(batch(t0, g, false, A)),
				apply(batch(t0, h, false, X)),
				apply(batch(at(time.Hour), g, false, resolve("api", "a", t0, at(time.Hour), 3))),
				apply(batch(at(time.Hour), g, false, resolve("api", "z", t0, at(time.Hour), 3))),
				prune(at(3*time.Hour), time.Hour),
			},
			after: []op{
				prune(at(3*time.Hour), time.Hour),
				apply(batch(at(3*time.Hour), g, false, A)),
				apply(batch(at(3*time.Hour), h, false, resolve("db", "x", t0, at(3*time.Hour), 2))),
				prune(at(10*time.Hour), time.Hour),
			},
		},
		{
			name: "replay of the last notification after a crash",
			before: []op{
				apply(batch(t0, g, true, A, B)),
			},
			after: []op{
				apply(batch(t0, g, true, A, B)),
				apply(batch(at(time.Minute), g, true, A)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := NewBook()
			store := newMemStore()
			for _, o := range tt.before {
				ch, p := o.run(orig)
				store.commit(t, ch, p)
			}
			restored := []*Book{store.restore(t, false), store.restore(t, true)}
			want := bookState(t, orig)
			for i, r := range restored {
				if got := bookState(t, r); got != want {
					t.Fatalf("restore %d differs from the original:\n got  %s\n want %s", i, got, want)
				}
				checkConsistent(t, fmt.Sprintf("restore %d", i), r)
			}

			nEvents := 0
			for step, o := range tt.after {
				ch, p := o.run(orig)
				nEvents += len(ch.Events)
				wantCh, wantEv := mustJSON(t, ch), mustJSON(t, ch.Events)
				for i, r := range restored {
					rch, rp := o.run(r)
					if got := mustJSON(t, rch.Events); got != wantEv {
						t.Errorf("step %d, restore %d: events differ:\n got  %s\n want %s", step, i, got, wantEv)
					}
					if got := mustJSON(t, rch); got != wantCh {
						t.Errorf("step %d, restore %d: changes differ:\n got  %s\n want %s", step, i, got, wantCh)
					}
					equal(t, fmt.Sprintf("step %d, restore %d: pruned", step, i), rp, p)
				}
			}
			if nEvents == 0 {
				t.Error("scenario produced no events after restore: it checks too little")
			}
			for i, r := range restored {
				if got := bookState(t, r); got != bookState(t, orig) {
					t.Errorf("restore %d ends in a different state:\n got  %s\n want %s", i, got, bookState(t, orig))
				}
			}
		})
	}
}
