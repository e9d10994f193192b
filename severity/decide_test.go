package severity

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func known(v float64, source string) Float { return Float{Known: true, Value: v, Source: source} }
func yes(source string) Bool               { return Bool{Known: true, Value: true, Source: source} }
func no(source string) Bool                { return Bool{Known: true, Value: false, Source: source} }

// overridden returns the default thresholds changed by f.
func overridden(f func(*Thresholds)) Thresholds {
	t := DefaultThresholds()
	f(&t)
	return t
}

type decideCase struct {
	name   string
	s      Signals
	t      *Thresholds // nil: DefaultThresholds
	sev    Level
	rule   int
	reason string // first reason, checked when set
}

func runDecideCases(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			th := DefaultThresholds()
			if c.t != nil {
				th = *c.t
			}
			d := Decide(c.s, th)
			if d.Severity != c.sev || d.Rule != c.rule {
				t.Errorf("Decide = Sev %d by rule %d, want Sev %d by rule %d\nreasons: %q", d.Severity, d.Rule, c.sev, c.rule, d.Reasons)
			}
			if c.reason != "" && (len(d.Reasons) == 0 || d.Reasons[0] != c.reason) {
				t.Errorf("first reason = %q, want %q", first(d.Reasons), c.reason)
			}
			checkSignalLines(t, d)
		})
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return "<none>"
	}
	return s[0]
}

// checkSignalLines asserts that Reasons has the rule's reason plus one line
// per signal, and that every known signal's line names its source.
func checkSignalLines(t *testing.T, d Decision) {
	t.Helper()
	if len(d.Reasons) != 1+signalCount {
		t.Fatalf("len(Reasons) = %d, want %d: %q", len(d.Reasons), 1+signalCount, d.Reasons)
	}
	s := d.Signals
	type sig struct {
		name   string
		known  bool
		source string
	}
	sigs := []sig{
		{"reachable", s.Reachable.Known, s.Reachable.Source},
		{"error_ratio", s.ErrorRatio.Known, s.ErrorRatio.Source},
		{"latency_factor", s.LatencyFactor.Known, s.LatencyFactor.Source},
		{"p99_latency", s.P99Latency.Known, s.P99Latency.Source},
		{"latency_baseline", s.LatencyBaseline.Known, s.LatencyBaseline.Source},
		{"recovering", s.Recovering.Known, s.Recovering.Source},
		{"data_loss", s.DataLoss.Known, s.DataLoss.Source},
		{"impact", s.ImpactNone.Known, s.ImpactNone.Source},
	}
	for i, g := range sigs {
		line := d.Reasons[1+i]
		if g.known {
			if !strings.HasPrefix(line, g.name+"=") || !strings.Contains(line, "["+g.source+"]") {
				t.Errorf("line for known %s = %q, want %s=<value> [%s]", g.name, line, g.name, g.source)
			}
		} else if !strings.HasPrefix(line, g.name+" unknown") {
			t.Errorf("line for unknown %s = %q, want %q prefix", g.name, line, g.name+" unknown")
		}
	}
}

func TestDecideRules(t *testing.T) {
	runDecideCases(t, []decideCase{
		{name: "1 unreachable", s: Signals{Reachable: no("probe")}, sev: 1, rule: 1,
			reason: "Q1: no user can reach the service (reachable=false) [probe]"},
		{name: "1 beats everything", s: Signals{Reachable: no("kubernetes"), ErrorRatio: known(0.001, "prometheus"), ImpactNone: yes("label")}, sev: 1, rule: 1},
		{name: "2 outage error ratio", s: Signals{ErrorRatio: known(0.62, "prometheus")}, sev: 1, rule: 2,
			reason: "Q2: 62% of requests failing (> 50%) [prometheus]"},
		{name: "3 major error ratio", s: Signals{ErrorRatio: known(0.123, "annotation")}, sev: 2, rule: 3,
			reason: "Q2: 12.3% of requests failing (≥ 10%) [annotation]"},
		{name: "4 major latency", s: Signals{LatencyFactor: known(12, "annotation")}, sev: 2, rule: 4,
			reason: "Sev 2: p99 latency 12× normal (≥ 10×) [annotation]"},
		{name: "5 minor error ratio", s: Signals{ErrorRatio: known(0.07, "label")}, sev: 3, rule: 5,
			reason: "Q2: 7% of requests failing (≥ 5%) [label]"},
		{name: "5 four significant digits", s: Signals{ErrorRatio: known(0.067312, "label")}, sev: 3, rule: 5,
			reason: "Q2: 6.731% of requests failing (≥ 5%) [label]"},
		{name: "6 minor latency factor", s: Signals{LatencyFactor: known(2.5, "prometheus")}, sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 2.5× normal (≥ 2×) [prometheus]"},
		{name: "6 derived latency factor", s: Signals{P99Latency: known(0.75, "annotation"), LatencyBaseline: known(0.25, "profile")}, sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 3× normal (≥ 2×) [p99_latency[annotation] ÷ latency_baseline[profile]]"},
		{name: "6 high p99 without baseline", s: Signals{P99Latency: known(2.5, "annotation")}, sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 2.5s (> 2s) with no baseline known [annotation]"},
		{name: "6 high p99 with zero baseline is no baseline", s: Signals{P99Latency: known(2.5, "annotation"), LatencyBaseline: known(0, "profile")}, sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 2.5s (> 2s) with no baseline known [annotation]"},
		{name: "7 no impact", s: Signals{ImpactNone: yes("label")}, sev: 4, rule: 7,
			reason: "Sev 4: no user impact (impact=none) [label]"},
		{name: "7 before recovery and data loss", s: Signals{ImpactNone: yes("label"), ErrorRatio: known(0.02, "prometheus"), Recovering: no("prometheus"), DataLoss: yes("profile")}, sev: 4, rule: 7},
		{name: "8 staying broken", s: Signals{Recovering: no("annotation")}, sev: 2, rule: 8,
			reason: "Q3: not recovering on its own (staying broken) [annotation]"},
		{name: "8 before data loss", s: Signals{Recovering: no("annotation"), DataLoss: yes("annotation")}, sev: 2, rule: 8},
		{name: "9 data loss", s: Signals{DataLoss: yes("annotation")}, sev: 2, rule: 9,
			reason: "Q4: user action required or data loss (data_loss=true) [annotation]"},
		{name: "9 before recovering", s: Signals{DataLoss: yes("annotation"), Recovering: yes("prometheus")}, sev: 2, rule: 9},
		{name: "10 recovering", s: Signals{Recovering: yes("annotation")}, sev: 3, rule: 10,
			reason: "Q4: recovering on its own, no user action or data loss [annotation]"},
		{name: "10 recovering without data loss", s: Signals{Recovering: yes("annotation"), DataLoss: no("profile")}, sev: 3, rule: 10},
		{name: "11 impact floor", s: Signals{ErrorRatio: known(0.02, "annotation")}, sev: 3, rule: 11,
			reason: "2% of requests failing (≥ 1% impact floor), recovery not yet known: re-evaluated [annotation]"},
		{name: "12 reachable, low error ratio", s: Signals{Reachable: yes("probe"), ErrorRatio: known(0.001, "prometheus")}, sev: 4, rule: 12,
			reason: "no user impact measured: error ratio below the impact floor, all measured signals healthy"},
		{name: "12 low error ratio", s: Signals{ErrorRatio: known(0.001, "prometheus")}, sev: 4, rule: 12},
		{name: "12 zero error ratio", s: Signals{ErrorRatio: known(0, "prometheus")}, sev: 4, rule: 12},
		{name: "12 normal latency factor", s: Signals{ErrorRatio: known(0, "prometheus"), LatencyFactor: known(1, "prometheus")}, sev: 4, rule: 12},
		{name: "12 fast p99", s: Signals{ErrorRatio: known(0, "prometheus"), P99Latency: known(0.2, "prometheus")}, sev: 4, rule: 12},
		{name: "12 healthy derived factor hides high p99", s: Signals{ErrorRatio: known(0, "prometheus"), P99Latency: known(3, "prometheus"), LatencyBaseline: known(2, "profile")}, sev: 4, rule: 12},
		// Without the error ratio Q2 is unanswered: a probe answering 200
		// or a normal latency does not say how many requests fail, and a
		// broken error-ratio query must not make an outage Sev 4.
		{name: "13 reachable, error ratio unknown", s: Signals{Reachable: yes("probe"), AlertSeverity: "critical"}, sev: 2, rule: 13,
			reason: `error ratio unknown, so Q2 is unanswered: alert severity label "critical" → Sev 2 (fallback)`},
		{name: "13 normal latency factor, error ratio unknown", s: Signals{LatencyFactor: known(1, "prometheus"), AlertSeverity: "warning"}, sev: 3, rule: 13},
		{name: "13 fast p99, error ratio unknown", s: Signals{P99Latency: known(0.2, "prometheus"), AlertSeverity: "critical"}, sev: 2, rule: 13},
		{name: "13 reachable, error ratio unknown, label info", s: Signals{Reachable: yes("probe"), AlertSeverity: "info"}, sev: 4, rule: 13},
		{name: "13 warning", s: Signals{AlertSeverity: "warning"}, sev: 3, rule: 13,
			reason: `no signal measured: alert severity label "warning" → Sev 3 (fallback)`},
		{name: "13 critical", s: Signals{AlertSeverity: "critical"}, sev: 2, rule: 13,
			reason: `no signal measured: alert severity label "critical" → Sev 2 (fallback)`},
		{name: "13 upper case", s: Signals{AlertSeverity: "CRITICAL"}, sev: 2, rule: 13},
		{name: "13 error", s: Signals{AlertSeverity: "error"}, sev: 2, rule: 13},
		{name: "13 info", s: Signals{AlertSeverity: "info"}, sev: 4, rule: 13},
		{name: "13 other", s: Signals{AlertSeverity: "page"}, sev: 3, rule: 13,
			reason: `no signal measured: alert severity label "page" → Sev 3 (fallback)`},
		{name: "13 missing", s: Signals{}, sev: 3, rule: 13,
			reason: "no signal measured: alert severity label missing → Sev 3 (fallback)"},
		// Signals outside rule 12's list are not measurements of user impact.
		{name: "13 only data_loss=false", s: Signals{DataLoss: no("profile"), AlertSeverity: "info"}, sev: 4, rule: 13},
		{name: "13 only impact other than none", s: Signals{ImpactNone: no("label"), AlertSeverity: "critical"}, sev: 2, rule: 13},
		{name: "13 only baseline", s: Signals{LatencyBaseline: known(0.3, "profile")}, sev: 3, rule: 13},
	})
}

// TestDecideSpecExamples is the SPEC's examples table, read from annotations
// and labels as an alert would state them.
func TestDecideSpecExamples(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		labels      map[string]string
		sev         Level
	}{
		{"reachable=false", map[string]string{"reachable": "false"}, nil, 1},
		{"error_ratio=0.62", map[string]string{"error_ratio": "0.62"}, nil, 1},
		{"error_ratio=0.50", map[string]string{"error_ratio": "0.50"}, nil, 2},
		{"error_ratio=0.10", map[string]string{"error_ratio": "0.10"}, nil, 2},
		{"error_ratio=0.07, latency_ratio=12", map[string]string{"error_ratio": "0.07", "latency_ratio": "12"}, nil, 2},
		{"error_ratio=0.07", map[string]string{"error_ratio": "0.07"}, nil, 3},
		{"p99_latency=2.5s, no baseline", map[string]string{"p99_latency": "2.5s"}, nil, 3},
		{"error_ratio=0.02, recovering=false", map[string]string{"error_ratio": "0.02", "recovering": "false"}, nil, 2},
		{"error_ratio=0.02, recovering=true, data_loss=true", map[string]string{"error_ratio": "0.02", "recovering": "true", "data_loss": "true"}, nil, 2},
		{"error_ratio=0.02, recovering=true", map[string]string{"error_ratio": "0.02", "recovering": "true"}, nil, 3},
		{"impact=none", map[string]string{"impact": "none"}, nil, 4},
		{"error_ratio=0.001, reachable=true", map[string]string{"error_ratio": "0.001", "reachable": "true"}, nil, 4},
		{"reachable=true, error_ratio unknown, label severity=critical", map[string]string{"reachable": "true"}, map[string]string{"severity": "critical"}, 2},
		{"no signal, label severity=warning", nil, map[string]string{"severity": "warning"}, 3},
		{"error_ratio=0.07, latency_factor=12", map[string]string{"error_ratio": "0.07", "latency_factor": "12"}, nil, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(FromAnnotations(c.annotations, c.labels), DefaultThresholds())
			if d.Severity != c.sev {
				t.Errorf("Sev %d (rule %d), want Sev %d\nreasons: %q", d.Severity, d.Rule, c.sev, d.Reasons)
			}
			checkSignalLines(t, d)
		})
	}
}

func TestDecideBoundaries(t *testing.T) {
	er := func(v float64) Signals { return Signals{ErrorRatio: known(v, "annotation")} }
	lf := func(v float64) Signals { return Signals{LatencyFactor: known(v, "annotation")} }
	p99 := func(v float64) Signals { return Signals{P99Latency: known(v, "annotation")} }
	runDecideCases(t, []decideCase{
		{name: "50% is not an outage", s: er(0.50), sev: 2, rule: 3},
		{name: "just over 50% is", s: er(0.5000001), sev: 1, rule: 2,
			reason: "Q2: 50.00001% of requests failing (> 50%) [annotation]"},
		{name: "10% is major", s: er(0.10), sev: 2, rule: 3,
			reason: "Q2: 10% of requests failing (≥ 10%) [annotation]"},
		{name: "just under 10% is minor", s: er(0.0999), sev: 3, rule: 5},
		{name: "a p99 over a baseline that overflows the factor is beyond 10×", s: Signals{P99Latency: known(1e308, "annotation"), LatencyBaseline: known(1e-308, "annotation")}, sev: 2, rule: 4},
		{name: "5% is minor", s: er(0.05), sev: 3, rule: 5},
		{name: "just under 5% reaches the impact floor", s: er(0.0499), sev: 3, rule: 11},
		{name: "1% is the impact floor", s: er(0.01), sev: 3, rule: 11},
		{name: "just under 1% is healthy", s: er(0.0099), sev: 4, rule: 12},
		{name: "10× latency is major", s: lf(10), sev: 2, rule: 4},
		{name: "just under 10× is minor", s: lf(9.99), sev: 3, rule: 6},
		{name: "2× latency is minor", s: lf(2), sev: 3, rule: 6},
		{name: "just under 2× is healthy", s: lf(1.99), sev: 3, rule: 13},
		{name: "p99 of 2s is not high", s: p99(2.0), sev: 3, rule: 13},
		{name: "p99 just over 2s is", s: p99(2.001), sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 2.001s (> 2s) with no baseline known [annotation]"},
		{name: "p99 a hair over 2s reads as over", s: p99(2.0000001), sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 2.0000001s (> 2s) with no baseline known [annotation]"},
		{name: "2.5s over a 250ms baseline is 10×", s: Signals{P99Latency: known(2.5, "annotation"), LatencyBaseline: known(0.25, "profile")}, sev: 2, rule: 4,
			reason: "Sev 2: p99 latency 10× normal (≥ 10×) [p99_latency[annotation] ÷ latency_baseline[profile]]"},
	})
}

func TestDecideThresholdOverrides(t *testing.T) {
	major6 := overridden(func(t *Thresholds) { t.MajorErrorRatio = 0.06 })
	outage5 := overridden(func(t *Thresholds) { t.OutageErrorRatio = 0.05 })
	minor3 := overridden(func(t *Thresholds) { t.MinorErrorRatio = 0.03 })
	floor := overridden(func(t *Thresholds) { t.ImpactFloor = 0.001 })
	major3x := overridden(func(t *Thresholds) { t.MajorLatencyFactor = 3 })
	minor3x := overridden(func(t *Thresholds) { t.MinorLatencyFactor = 3 })
	slow := overridden(func(t *Thresholds) { t.HighP99 = 5 * time.Second })
	quiet := overridden(func(t *Thresholds) { t.Fallback["warning"] = 4 })
	loud := overridden(func(t *Thresholds) { t.FallbackDefault = 2 })
	broken := overridden(func(t *Thresholds) { t.Fallback["warning"] = 9; t.FallbackDefault = 0 })
	runDecideCases(t, []decideCase{
		{name: "major error ratio lowered", s: Signals{ErrorRatio: known(0.07, "label")}, t: &major6, sev: 2, rule: 3,
			reason: "Q2: 7% of requests failing (≥ 6%) [label]"},
		{name: "outage error ratio lowered", s: Signals{ErrorRatio: known(0.07, "label")}, t: &outage5, sev: 1, rule: 2,
			reason: "Q2: 7% of requests failing (> 5%) [label]"},
		{name: "minor error ratio lowered", s: Signals{ErrorRatio: known(0.04, "label")}, t: &minor3, sev: 3, rule: 5},
		{name: "impact floor lowered", s: Signals{ErrorRatio: known(0.002, "label")}, t: &floor, sev: 3, rule: 11,
			reason: "0.2% of requests failing (≥ 0.1% impact floor), recovery not yet known: re-evaluated [label]"},
		{name: "major latency lowered", s: Signals{LatencyFactor: known(4, "label")}, t: &major3x, sev: 2, rule: 4,
			reason: "Sev 2: p99 latency 4× normal (≥ 3×) [label]"},
		{name: "minor latency raised", s: Signals{ErrorRatio: known(0, "label"), LatencyFactor: known(2.5, "label")}, t: &minor3x, sev: 4, rule: 12},
		{name: "high p99 raised", s: Signals{ErrorRatio: known(0, "label"), P99Latency: known(2.5, "label")}, t: &slow, sev: 4, rule: 12},
		{name: "high p99 raised, exceeded", s: Signals{P99Latency: known(6, "label")}, t: &slow, sev: 3, rule: 6,
			reason: "Sev 3: p99 latency 6s (> 5s) with no baseline known [label]"},
		{name: "fallback overridden", s: Signals{AlertSeverity: "warning"}, t: &quiet, sev: 4, rule: 13},
		{name: "fallback default overridden", s: Signals{AlertSeverity: "page"}, t: &loud, sev: 2, rule: 13},
		{name: "invalid fallback levels give 3", s: Signals{AlertSeverity: "warning"}, t: &broken, sev: 3, rule: 13},
		{name: "zero thresholds still decide", s: Signals{AlertSeverity: "info"}, t: &Thresholds{}, sev: 3, rule: 13},
	})
}

func TestDecideSignalLines(t *testing.T) {
	s := Signals{
		Reachable:       yes("probe"),
		ErrorRatio:      known(0.02, "prometheus"),
		LatencyFactor:   known(1.5, "annotation"),
		P99Latency:      known(0.3, "annotation"),
		LatencyBaseline: known(0.2, "profile"),
		Recovering:      yes("prometheus"),
		DataLoss:        no("profile"),
		ImpactNone:      no("label"),
	}
	d := Decide(s, DefaultThresholds())
	want := []string{
		"Q4: recovering on its own, no user action or data loss [prometheus]",
		"reachable=true [probe]",
		"error_ratio=2% [prometheus]",
		"latency_factor=1.5× [annotation]",
		"p99_latency=0.3s [annotation]",
		"latency_baseline=0.2s [profile]",
		"recovering=true [prometheus]",
		"data_loss=false [profile]",
		"impact=not none [label]",
	}
	assertLines(t, d.Reasons, want)

	d = Decide(Signals{
		ErrorRatio:    Float{Note: "prometheus returned NaN"},
		ImpactNone:    yes("label"),
		P99Latency:    known(2.5, "annotation"),
		LatencyFactor: Float{Note: "no latency query"},
		DataLoss:      Bool{Known: true, Value: true, Source: "label", Note: `annotation data_loss="maybe" unparseable: invalid syntax`},
	}, DefaultThresholds())
	want = []string{
		"Sev 3: p99 latency 2.5s (> 2s) with no baseline known [annotation]",
		"reachable unknown",
		"error_ratio unknown: prometheus returned NaN",
		"latency_factor unknown: no latency query",
		"p99_latency=2.5s [annotation]",
		"latency_baseline unknown",
		"recovering unknown",
		`data_loss=true [label] (annotation data_loss="maybe" unparseable: invalid syntax)`,
		"impact=none [label]",
	}
	assertLines(t, d.Reasons, want)
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestDecideDerivedFactor(t *testing.T) {
	d := Decide(Signals{P99Latency: known(2.5, "annotation"), LatencyBaseline: known(0.25, "profile")}, DefaultThresholds())
	want := Float{Known: true, Value: 10, Source: "p99_latency[annotation] ÷ latency_baseline[profile]", Note: "derived"}
	if d.Signals.LatencyFactor != want {
		t.Errorf("derived factor = %+v, want %+v", d.Signals.LatencyFactor, want)
	}
	if got, line := d.Reasons[3], "latency_factor=10× [p99_latency[annotation] ÷ latency_baseline[profile]] (derived)"; got != line {
		t.Errorf("factor line = %q, want %q", got, line)
	}

	// A stated factor wins over the derivation.
	d = Decide(Signals{ErrorRatio: known(0, "prometheus"), LatencyFactor: known(1, "prometheus"), P99Latency: known(2.5, "annotation"), LatencyBaseline: known(0.25, "profile")}, DefaultThresholds())
	if d.Signals.LatencyFactor != known(1, "prometheus") || d.Rule != 12 {
		t.Errorf("stated factor: got %+v by rule %d, want factor 1 by rule 12", d.Signals.LatencyFactor, d.Rule)
	}

	// A negative baseline is no baseline either.
	d = Decide(Signals{P99Latency: known(2.5, "annotation"), LatencyBaseline: known(-1, "profile")}, DefaultThresholds())
	if d.Signals.LatencyFactor.Known || d.Rule != 6 {
		t.Errorf("negative baseline: factor %+v by rule %d, want unknown factor and rule 6", d.Signals.LatencyFactor, d.Rule)
	}
}

func TestDecideNonFinite(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		s    Signals
		rule int
		note string // of the error ratio
	}{
		{"NaN error ratio", Signals{ErrorRatio: known(nan, "prometheus")}, 13, "not a number"},
		{"+Inf error ratio", Signals{ErrorRatio: known(inf, "prometheus")}, 13, "not a finite number"},
		{"-Inf error ratio", Signals{ErrorRatio: known(-inf, "prometheus")}, 13, "not a finite number"},
		{"negative error ratio", Signals{ErrorRatio: known(-0.1, "prometheus")}, 13, "negative value -0.1"},
		{"unknown NaN keeps its note", Signals{ErrorRatio: Float{Value: nan, Note: "no data"}}, 13, "no data"},
		{"NaN factor", Signals{LatencyFactor: known(nan, "prometheus")}, 13, ""},
		{"Inf p99", Signals{P99Latency: known(inf, "prometheus")}, 13, ""},
		{"NaN p99 is not divided", Signals{P99Latency: known(nan, "prometheus"), LatencyBaseline: known(0.2, "profile")}, 13, ""},
		{"NaN baseline, high p99", Signals{P99Latency: known(3, "prometheus"), LatencyBaseline: known(nan, "profile")}, 6, ""},
		// The factor overflows: it is beyond 10×, not unknown ("no baseline known" would be wrong).
		{"huge p99 over tiny baseline", Signals{P99Latency: known(math.MaxFloat64, "prometheus"), LatencyBaseline: known(math.SmallestNonzeroFloat64, "profile")}, 4, ""},
		{"NaN with real error ratio", Signals{LatencyFactor: known(nan, "prometheus"), ErrorRatio: known(0.2, "prometheus")}, 3, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.s, DefaultThresholds())
			if d.Rule != c.rule {
				t.Errorf("rule %d, want %d: %q", d.Rule, c.rule, d.Reasons)
			}
			if c.note != "" && d.Signals.ErrorRatio.Note != c.note {
				t.Errorf("error ratio note %q, want %q", d.Signals.ErrorRatio.Note, c.note)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("decision does not encode: %v", err)
			}
			checkSignalLines(t, d)
		})
	}
}

func TestDefaultThresholds(t *testing.T) {
	th := DefaultThresholds()
	if err := th.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if th.OutageErrorRatio != 0.50 || th.MajorErrorRatio != 0.10 || th.MinorErrorRatio != 0.05 || th.ImpactFloor != 0.01 ||
		th.MajorLatencyFactor != 10 || th.MinorLatencyFactor != 2 || th.HighP99 != 2*time.Second || th.FallbackDefault != 3 {
		t.Errorf("defaults = %+v", th)
	}
	for label, want := range map[string]Level{"critical": 2, "error": 2, "warning": 3, "info": 4} {
		if th.Fallback[label] != want {
			t.Errorf("Fallback[%q] = %d, want %d", label, th.Fallback[label], want)
		}
	}
	th.Fallback["warning"] = 1
	if DefaultThresholds().Fallback["warning"] != 3 {
		t.Error("changing one copy's Fallback changed the defaults")
	}
}

func TestThresholdsValidate(t *testing.T) {
	cases := []struct {
		name string
		f    func(*Thresholds)
		want string
	}{
		{"ratio over 1", func(t *Thresholds) { t.OutageErrorRatio = 1.5 }, "outage error ratio 1.5"},
		{"NaN ratio", func(t *Thresholds) { t.ImpactFloor = math.NaN() }, "impact floor NaN"},
		{"ratios out of order", func(t *Thresholds) { t.MinorErrorRatio = 0.2 }, "error ratios must satisfy"},
		{"zero factor", func(t *Thresholds) { t.MinorLatencyFactor = 0 }, "minor latency factor 0"},
		{"factors out of order", func(t *Thresholds) { t.MajorLatencyFactor = 1.5 }, "latency factors must satisfy"},
		{"zero high p99", func(t *Thresholds) { t.HighP99 = 0 }, "high p99"},
		{"bad fallback", func(t *Thresholds) { t.Fallback["page"] = 5 }, `"page": level 5`},
		{"bad fallback default", func(t *Thresholds) { t.FallbackDefault = 0 }, "fallback default level 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := overridden(c.f).Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want error containing %q", err, c.want)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	th := DefaultThresholds()
	s := Signals{
		Reachable:       yes("probe"),
		ErrorRatio:      known(0.02, "prometheus"),
		P99Latency:      known(0.3, "prometheus"),
		LatencyBaseline: known(0.2, "profile"),
		Recovering:      yes("prometheus"),
		AlertSeverity:   "warning",
	}
	b.ReportAllocs()
	for b.Loop() {
		Decide(s, th)
	}
}
