package incident

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/severity"
)

// The incident shows the diagnosis of its most severe alerts: a less severe
// alert joining does not replace it, an equally or more severe one does, and
// an incident without a diagnosis takes whatever comes.
func TestDiagnosisFollowsMostSevereAlert(t *testing.T) {
	type joining struct {
		fp       string
		sev      severity.Level
		diagnose bool
	}
	cases := []struct {
		name  string
		steps []joining
		want  string // summary of the diagnosis left, "" for none
	}{
		{"first alert's diagnosis", []joining{{"a", 1, true}}, "diagnosis of a"},
		{"less severe joiner keeps it", []joining{{"a", 1, true}, {"b", 3, true}}, "diagnosis of a"},
		{"equally severe joiner replaces it", []joining{{"a", 2, true}, {"b", 2, true}}, "diagnosis of b"},
		{"more severe joiner replaces it", []joining{{"a", 3, true}, {"b", 1, true}}, "diagnosis of b"},
		{"none yet: a less severe joiner's is taken", []joining{{"a", 1, false}, {"b", 4, true}}, "diagnosis of b"},
		{"no diagnosis keeps the previous one", []joining{{"a", 1, true}, {"b", 1, false}}, "diagnosis of a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBook()
			for i, j := range tc.steps {
				o := fire("api", j.fp, at(time.Duration(i)*time.Minute), j.sev)
				bt := batch(at(time.Duration(i)*time.Minute), "g-"+j.fp, false, o)
				if j.diagnose {
					bt.Diagnoses = map[string]Diagnosed{"api": {
						AlertKey:  o.Alert.Key,
						Diagnosis: &diagnosis.Diagnosis{Summary: "diagnosis of " + j.fp},
					}}
				}
				ch := b.Apply(bt)
				// What receivers get must match the book.
				for _, ev := range ch.Events {
					if got, want := summaryOf(ev.Incident.Diagnosis), summaryOf(only(t, b).Diagnosis); got != want {
						t.Fatalf("step %d: %s event carries %q, the incident has %q", i, ev.Kind, got, want)
					}
				}
			}
			if got := summaryOf(only(t, b).Diagnosis); got != tc.want {
				t.Fatalf("diagnosis %q, want %q", got, tc.want)
			}
		})
	}
}

func summaryOf(d *diagnosis.Diagnosis) string {
	if d == nil {
		return ""
	}
	return d.Summary
}

// Re-evaluation refreshes the diagnosis by the same rule: the most severe
// alert's replaces it, one for an alert the incident no longer has does not.
func TestReevaluationDiagnosisFollowsTheSameRule(t *testing.T) {
	b := NewBook()
	o := fire("api", "a", at(0), 1)
	bt := batch(at(0), "g", false, o)
	bt.Diagnoses = map[string]Diagnosed{"api": {AlertKey: o.Alert.Key, Diagnosis: &diagnosis.Diagnosis{Summary: "first"}}}
	b.Apply(bt)
	id := only(t, b).ID
	reeval := func(key, summary string) string {
		b.Reevaluate(at(time.Minute), []Reevaluation{{IncidentID: id, Decisions: map[string]severity.Decision{o.Alert.Key: decision("a", 1)},
			Diagnosis: Diagnosed{AlertKey: key, Diagnosis: &diagnosis.Diagnosis{Summary: summary}}}})
		return summaryOf(only(t, b).Diagnosis)
	}
	if got := reeval(o.Alert.Key, "fresh"); got != "fresh" {
		t.Fatalf("after re-evaluating the decisive alert: %q, want fresh", got)
	}
	if got := reeval("gone@2025-01-01T00:00:00Z", "stray"); got != "fresh" {
		t.Fatalf("a diagnosis for an alert the incident lacks replaced it: %q", got)
	}
	b.Reevaluate(at(2*time.Minute), []Reevaluation{{IncidentID: id}})
	if got := summaryOf(only(t, b).Diagnosis); got != "fresh" {
		t.Fatalf("a re-evaluation without a diagnosis changed it to %q", got)
	}
}
