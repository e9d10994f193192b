package incident

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/diagnosis"
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
