package severity

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

// signalNames are every annotation and label FromAnnotations reads.
var signalNames = []string{
	"reachable", "error_ratio", "latency_ratio", "p99_latency", "latency_baseline",
	"recovering", "data_loss", "user_action", "impact", "severity",
}

// FuzzParseSignal feeds one string to every parser and, as every annotation
// and label at once, through FromAnnotations and Decide. Annotations come
// from rule authors and templates, so any string can arrive.
func FuzzParseSignal(f *testing.F) {
	for _, seed := range []string{
		"37%", "0.37", "100%", "101%", "1.5", "-0.1", "NaN", "Inf", "-Inf", "", " ",
		"2500ms", "2.5s", "1.2", "-1s", "abc", "12.3%", "1d", "12x", "12×", "true",
		"off", "none", "NONE", "1e999", "0x1p-2", "1m30s", "5q", "%", "0", "-0",
		"1e-400", "9999999999999999999999y", "..5s", "1.s", "µs", "0.5000001", "2.001",
	} {
		f.Add(seed)
	}
	th := DefaultThresholds()
	f.Fuzz(func(t *testing.T, in string) {
		if v, err := ParseRatio(in); err == nil && (math.IsNaN(v) || v < 0 || v > 1 || math.Signbit(v)) {
			t.Errorf("ParseRatio(%q) = %v, want a ratio in 0..1", in, v)
		}
		if v, err := ParseSeconds(in); err == nil && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || math.Signbit(v)) {
			t.Errorf("ParseSeconds(%q) = %v, want finite and ≥ 0", in, v)
		}
		if v, err := ParseFactor(in); err == nil && (math.IsNaN(v) || math.IsInf(v, 0) || v < 0) {
			t.Errorf("ParseFactor(%q) = %v, want finite and ≥ 0", in, v)
		}
		if _, err := ParseBool(in); err != nil && err.Error() == "" {
			t.Errorf("ParseBool(%q): empty error message", in)
		}

		all := make(map[string]string, len(signalNames))
		for _, name := range signalNames {
			all[name] = in
		}
		checkDecision(t, in, Decide(FromAnnotations(all, all), th))
		checkDecision(t, in, Decide(FromAnnotations(nil, all), th))

		// The raw number, if it is one, as every measured signal: Decide must
		// cope with whatever a Prometheus query returns, NaN and Inf included.
		// (A syntax error gives 0, a range error ±Inf; both are fine inputs.)
		{
			v, _ := strconv.ParseFloat(in, 64)
			s := Signals{
				ErrorRatio: known(v, "fuzz"), LatencyFactor: known(v, "fuzz"),
				P99Latency: known(v, "fuzz"), LatencyBaseline: known(v, "fuzz"), AlertSeverity: in,
			}
			checkDecision(t, in, Decide(s, th))
			s.LatencyFactor = Float{}
			checkDecision(t, in, Decide(s, th))
		}
	})
}

func checkDecision(t *testing.T, in string, d Decision) {
	t.Helper()
	if d.Severity < 1 || d.Severity > 4 || d.Rule < 1 || d.Rule > 13 || len(d.Reasons) == 0 || d.Reasons[0] == "" {
		t.Fatalf("input %q: Decide = Sev %d, rule %d, reasons %q", in, d.Severity, d.Rule, d.Reasons)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatalf("input %q: decision does not encode: %v", in, err)
	}
}
