package incident

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/severity"
)

// t0 is the fixed reference time of every test: no test reads the clock.
var t0 = time.Date(2025, time.March, 14, 9, 26, 53, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

const externalURL = "http://alertmanager.example:9093"

// occKey is an occurrence key as intake builds it: fingerprint + "@" + startsAt.
func occKey(fp string, startsAt time.Time) string {
	return fp + "@" + startsAt.UTC().Format(time.RFC3339Nano)
}

// ruleFor gives each test severity a distinct, recognisable rule number.
func ruleFor(sev severity.Level) int { return 10 + int(sev) }

func decision(fp string, sev severity.Level) severity.Decision {
	return severity.Decision{
		Severity: sev,
		Rule:     ruleFor(sev),
		Reasons:  []string{fmt.Sprintf("Q%d: %s is sev %d", ruleFor(sev), fp, sev), "signal line for " + fp},
	}
}

// fire is a firing observation of fingerprint fp for service svc, triaged at sev.
func fire(svc, fp string, startsAt time.Time, sev severity.Level) Observation {
	return Observation{
		Service:  svc,
		Decision: decision(fp, sev),
		Alert: Alert{
			Key:          occKey(fp, startsAt),
			Fingerprint:  fp,
			Name:         "Alert" + strings.ToUpper(fp),
			Status:       Firing,
			StartsAt:     startsAt,
			Labels:       map[string]string{"alertname": "Alert" + strings.ToUpper(fp), "service": svc},
			Annotations:  map[string]string{"summary": "summary of " + fp},
			GeneratorURL: "http://prometheus.example/graph?" + fp,
		},
	}
}

// resolve is the resolved notification of the same occurrence, ending at endsAt.
func resolve(svc, fp string, startsAt, endsAt time.Time, sev severity.Level) Observation {
	o := fire(svc, fp, startsAt, sev)
	o.Alert.Status = Resolved
	o.Alert.EndsAt = endsAt
	return o
}

// noSummary drops the summary annotation.
func noSummary(o Observation) Observation {
	o.Alert.Annotations = nil
	return o
}

// withSummary sets the summary annotation.
func withSummary(o Observation, s string) Observation {
	o.Alert.Annotations = map[string]string{"summary": s}
	return o
}

// batch is a notification received at when, from group.
func batch(when time.Time, group string, complete bool, obs ...Observation) Batch {
	return Batch{At: when, GroupKey: group, ExternalURL: externalURL, Complete: complete, Observations: obs}
}

// op is one step applied to a book: an Apply, a SweepStale or a Prune.
type op struct {
	batch      *Batch
	sweep      bool
	prune      bool
	close      bool // CloseQuiet with monitor_for staleAfter
	verify     *Verification
	now        time.Time
	staleAfter time.Duration
}

func apply(b Batch) op { return op{batch: &b} }
func sweep(now time.Time, staleAfter time.Duration) op {
	return op{sweep: true, now: now, staleAfter: staleAfter}
}

// closeQuiet closes the incidents monitoring for at least monitorFor.
func closeQuiet(now time.Time, monitorFor time.Duration) op {
	return op{close: true, now: now, staleAfter: monitorFor}
}
func prune(now time.Time, retention time.Duration) op {
	return op{prune: true, now: now, staleAfter: retention}
}

type pruned struct{ incidents, tombstones []string }

// run applies the op; a prune returns empty Changes and its result in p.
func (o op) run(b *Book) (ch *Changes, p pruned) {
	switch {
	case o.batch != nil:
		return b.Apply(*o.batch), p
	case o.sweep:
		return b.SweepStale(o.now, o.staleAfter), p
	case o.verify != nil:
		return b.Verify(o.now, []Verification{*o.verify}), p
	case o.close:
		return b.CloseQuiet(o.now, o.staleAfter), p
	default:
		p.incidents, p.tombstones = b.Prune(o.now, o.staleAfter)
		return &Changes{}, p
	}
}

// evSummary renders an event compactly so tables can list exact expectations.
func evSummary(ev Event) string {
	s := fmt.Sprintf("%s %s sev%d", ev.Kind, ev.Incident.Service, ev.Incident.Severity)
	if ev.PreviousSeverity != 0 {
		s += fmt.Sprintf(" from sev%d", ev.PreviousSeverity)
	}
	return s + fmt.Sprintf(" firing=%d alerts=%d", ev.Incident.Firing, ev.AlertsTotal)
}

func evSummaries(ch *Changes) []string {
	out := []string{}
	for _, ev := range ch.Events {
		out = append(out, evSummary(ev))
	}
	return out
}

// stepCase is one step of a scenario with its exact expected events.
type stepCase struct {
	name   string
	op     op
	events []string // exact, in order; nil means none
	empty  bool     // Changes.Empty() must be true
	check  func(t *testing.T, b *Book, ch *Changes)
}

// runSteps applies the steps in order to b, checking each.
func runSteps(t *testing.T, b *Book, steps []stepCase) {
	t.Helper()
	for i, st := range steps {
		ch, _ := st.op.run(b)
		label := fmt.Sprintf("step %d (%s)", i, st.name)
		got := evSummaries(ch)
		want := st.events
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: events\n got  %q\n want %q", label, got, want)
		}
		if st.empty && !ch.Empty() {
			t.Errorf("%s: Changes not empty: %d incidents, %d alerts, %d deleted, %d tombstones, %d events",
				label, len(ch.Incidents), len(ch.Alerts), len(ch.DeletedAlerts), len(ch.Tombstones), len(ch.Events))
		}
		checkConsistent(t, label, b)
		if st.check != nil {
			st.check(t, b, ch)
		}
		if t.Failed() {
			t.Logf("%s failed", label)
			return
		}
	}
}

// checkConsistent checks the book's invariants: each open incident's Firing is
// its count of firing members, its severity is theirs, and the indexes agree.
func checkConsistent(t *testing.T, label string, b *Book) {
	t.Helper()
	for svc, inc := range b.open {
		if inc.State == StateVerifying || inc.State == StateMonitoring {
			// Resolved, waiting: no members, reopened by new ones.
			if inc.Status != Resolved || inc.Firing != 0 || inc.Alerts != nil || b.byID[inc.ID] != inc {
				t.Errorf("%s: open[%q] = %s %s status %s firing %d alerts %d", label, svc, inc.ID, inc.State, inc.Status, inc.Firing, len(inc.Alerts))
			}
			continue
		}
		if inc.Status != Firing || inc.State != StateOpen || inc.Service != svc || b.byID[inc.ID] != inc {
			t.Errorf("%s: open[%q] = %s status %s service %s", label, svc, inc.ID, inc.Status, inc.Service)
		}
		firing := 0
		var best severity.Level
		for key, a := range inc.Alerts {
			if a.Key != key {
				t.Errorf("%s: %s: alert stored under %q has key %q", label, inc.ID, key, a.Key)
			}
			if b.live[key] != inc {
				t.Errorf("%s: %s: member %q not indexed live", label, inc.ID, key)
			}
			if a.Status == Firing {
				firing++
				if best == 0 || a.Decision.Severity < best {
					best = a.Decision.Severity
				}
				if g := a.scope(); g != "" && b.groups[g][key] != inc {
					t.Errorf("%s: %s: firing member %q not indexed in group %q", label, inc.ID, key, g)
				}
			} else if a.ResolvedBy == "" {
				t.Errorf("%s: %s: resolved member %q has no ResolvedBy", label, inc.ID, key)
			}
		}
		if firing != inc.Firing || firing == 0 {
			t.Errorf("%s: %s: Firing = %d, firing members = %d", label, inc.ID, inc.Firing, firing)
		}
		if inc.Severity != best {
			t.Errorf("%s: %s: Severity = %d, most severe firing member = %d", label, inc.ID, inc.Severity, best)
		}
		if inc.PeakSeverity > inc.Severity || inc.PeakSeverity == 0 {
			t.Errorf("%s: %s: PeakSeverity %d vs Severity %d", label, inc.ID, inc.PeakSeverity, inc.Severity)
		}
	}
	var counts [5]int
	for _, inc := range b.open {
		if inc.State == StateOpen && inc.Severity >= 1 && inc.Severity <= 4 {
			counts[inc.Severity]++
		}
	}
	if counts != b.CountOpen() {
		t.Errorf("%s: CountOpen = %v, the open incidents count %v", label, b.CountOpen(), counts)
	}
	for key, inc := range b.live {
		if b.open[inc.GroupedBy()] != inc || inc.Alerts[key] == nil {
			t.Errorf("%s: live[%q] points at %s which is not open or lacks it", label, key, inc.ID)
		}
	}
	for g, m := range b.groups {
		if len(m) == 0 {
			t.Errorf("%s: empty group index %q kept", label, g)
		}
		for key, inc := range m {
			if a := inc.Alerts[key]; a == nil || a.Status != Firing || a.scope() != g {
				t.Errorf("%s: groups[%q][%q] is not a firing member of that group", label, g, key)
			}
		}
	}
	for id, inc := range b.byID {
		if inc.ID != id {
			t.Errorf("%s: byID[%q] holds %q", label, id, inc.ID)
		}
		if inc.Status == Resolved && inc.Alerts != nil {
			t.Errorf("%s: resolved %s still holds %d alerts", label, id, len(inc.Alerts))
		}
	}
}

// only returns the single open incident of the book, failing otherwise.
func only(t *testing.T, b *Book) *Incident {
	t.Helper()
	open := b.Open()
	if len(open) != 1 {
		t.Fatalf("open incidents = %d, want 1", len(open))
	}
	return open[0]
}

func keysOf(refs []AlertRef) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.Alert.Key)
	}
	return out
}

func tombKeys(m map[string]Tombstone) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func eventKinds(ch *Changes) []EventKind {
	out := []EventKind{}
	for _, ev := range ch.Events {
		out = append(out, ev.Kind)
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(buf)
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}
