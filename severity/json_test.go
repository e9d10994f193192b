package severity

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A decision survives encoding exactly, whether its signal lines are rebuilt
// (Decide's shape) or its reasons are written whole (any other shape).
func TestDecisionJSONRoundTrip(t *testing.T) {
	decided := Decide(Signals{
		ErrorRatio: Float{Known: true, Value: 0.62, Source: "prometheus"},
		Reachable:  Bool{Known: false, Note: "probe: 404"},
	}, DefaultThresholds())
	withNotes := decided
	withNotes.Reasons = append(append([]string(nil), decided.Reasons...), "kubernetes unavailable: caches not synced")
	tampered := decided
	tampered.Reasons = append([]string(nil), decided.Reasons...)
	tampered.Reasons[3] = "latency_factor=3× [a line the signals do not say]"
	for name, d := range map[string]Decision{
		"decided":           decided,
		"with notes":        withNotes,
		"other signal line": tampered,
		"few reasons":       {Severity: 3, Rule: 13, Reasons: []string{"only this"}},
		"none":              {Severity: 4, Rule: 12},
		"nothing known":     Decide(Signals{}, DefaultThresholds()),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back Decision
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, d) && !(len(d.Reasons) == 0 && len(back.Reasons) == 0) {
				t.Fatalf("round trip changed it:\n got %#v\nwant %#v\njson %s", back, d, b)
			}
		})
	}
	// The rebuilt form is the smaller one, and a reader of the JSON still
	// finds the deciding reason.
	whole, _ := json.Marshal(struct {
		Reasons []string
		Signals Signals
	}{decided.Reasons, decided.Signals})
	compact, _ := json.Marshal(decided)
	if len(compact) >= len(whole) || !strings.Contains(string(compact), `"reason":"Q2: 62%`) {
		t.Errorf("compact %d bytes vs %d whole: %s", len(compact), len(whole), compact)
	}
	// Decisions stored before this encoding (every reason written) read back.
	var old Decision
	if err := json.Unmarshal([]byte(`{"severity":1,"rule":2,"reasons":["a","b"],"signals":{"error_ratio":{"known":true,"value":0.6}}}`), &old); err != nil ||
		!reflect.DeepEqual(old.Reasons, []string{"a", "b"}) || old.Signals.ErrorRatio.Value != 0.6 {
		t.Errorf("old form: %+v, %v", old, err)
	}
}
