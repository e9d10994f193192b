package severity

import (
	"fmt"
	"math"
	"strings"
)

// Decide walks the SPEC's severity decision tree: the first of its 13 rules
// that holds decides. It never fails and never panics: a signal whose value is
// NaN, infinite or negative is treated as unknown (and reported so in the
// Reasons), because a broken measurement must not page anyone on its own nor
// hide a real outage behind a comparison that is always false.
//
// When the latency factor is unknown but both the p99 latency and a positive
// latency baseline are, the factor is derived as p99 ÷ baseline; the derived
// factor is returned in Decision.Signals so a responder sees what was used.
func Decide(s Signals, t Thresholds) Decision {
	s = s.sanitized()
	s.LatencyFactor = effectiveLatencyFactor(s)
	level, rule, reason := decide(s, t)
	reasons := make([]string, 0, 1+signalCount)
	reasons = append(reasons, reason)
	reasons = appendSignalLines(reasons, s)
	return Decision{Severity: level, Rule: rule, Reasons: reasons, Signals: s}
}

// decide holds the rules themselves, in the SPEC's order, so the table and
// the code can be read side by side. s must be sanitized.
func decide(s Signals, t Thresholds) (Level, int, string) {
	er, lf, p99 := s.ErrorRatio, s.LatencyFactor, s.P99Latency
	switch {
	case s.Reachable.Known && !s.Reachable.Value:
		return 1, 1, "Q1: no user can reach the service (reachable=false)" + src(s.Reachable.Source)
	case er.Known && er.Value > t.OutageErrorRatio:
		v, thr := distinctPercents(er.Value, t.OutageErrorRatio)
		return 1, 2, fmt.Sprintf("Q2: %s of requests failing (> %s)%s", v, thr, src(er.Source))
	case er.Known && er.Value >= t.MajorErrorRatio:
		return 2, 3, fmt.Sprintf("Q2: %s of requests failing (≥ %s)%s", percent(er.Value), percent(t.MajorErrorRatio), src(er.Source))
	case lf.Known && lf.Value >= t.MajorLatencyFactor:
		return 2, 4, fmt.Sprintf("Sev 2: p99 latency %s normal (≥ %s)%s", factor(lf.Value), factor(t.MajorLatencyFactor), src(lf.Source))
	case er.Known && er.Value >= t.MinorErrorRatio:
		return 3, 5, fmt.Sprintf("Q2: %s of requests failing (≥ %s)%s", percent(er.Value), percent(t.MinorErrorRatio), src(er.Source))
	case lf.Known && lf.Value >= t.MinorLatencyFactor:
		return 3, 6, fmt.Sprintf("Sev 3: p99 latency %s normal (≥ %s)%s", factor(lf.Value), factor(t.MinorLatencyFactor), src(lf.Source))
	case !lf.Known && p99.Known && p99.Value > t.HighP99.Seconds():
		v, thr := distinctSeconds(p99.Value, t.HighP99.Seconds())
		return 3, 6, fmt.Sprintf("Sev 3: p99 latency %s (> %s) with no baseline known%s", v, thr, src(p99.Source))
	case s.ImpactNone.Known && s.ImpactNone.Value:
		return 4, 7, "Sev 4: no user impact (impact=none)" + src(s.ImpactNone.Source)
	case s.Recovering.Known && !s.Recovering.Value:
		return 2, 8, "Q3: not recovering on its own (staying broken)" + src(s.Recovering.Source)
	case s.DataLoss.Known && s.DataLoss.Value:
		return 2, 9, "Q4: user action required or data loss (data_loss=true)" + src(s.DataLoss.Source)
	case s.Recovering.Known && s.Recovering.Value:
		return 3, 10, "Q4: recovering on its own, no user action or data loss" + src(s.Recovering.Source)
	case er.Known && er.Value >= t.ImpactFloor:
		return 3, 11, fmt.Sprintf("%s of requests failing (≥ %s impact floor), recovery not yet known: re-evaluated%s",
			percent(er.Value), percent(t.ImpactFloor), src(er.Source))
	case er.Known:
		// Every earlier rule failed, so the error ratio is below the floor
		// and whatever else was measured is healthy. Without the error
		// ratio Q2 is unanswered: a probe answering 200 or a normal latency
		// says nothing about how many requests fail, and a broken query
		// must not turn an outage into Sev 4 (rule 13 decides instead).
		return 4, 12, "no user impact measured: error ratio below the impact floor, all measured signals healthy"
	}
	return fallback(s.AlertSeverity, t, s.Reachable.Known || lf.Known || p99.Known)
}

// fallback is rule 13: nothing was measured, or something was but not the
// error ratio (measured says which), so the alert's own severity label is all
// there is. A level outside 1..4 in the configuration falls back to
// FallbackDefault, and an invalid default to 3, so Decide always returns a
// real severity even with unvalidated thresholds.
func fallback(label string, t Thresholds, measured bool) (Level, int, string) {
	key := strings.ToLower(strings.TrimSpace(label))
	level, ok := t.Fallback[key]
	if key == "" || !ok || !level.Valid() {
		level = t.FallbackDefault
	}
	if !level.Valid() {
		level = 3
	}
	shown := "missing"
	if key != "" {
		shown = fmt.Sprintf("%q", label)
	}
	why := "no signal measured"
	if measured {
		why = "error ratio unknown, so Q2 is unanswered"
	}
	return level, 13, fmt.Sprintf("%s: alert severity label %s → Sev %d (fallback)", why, shown, int(level))
}

// effectiveLatencyFactor derives p99 ÷ baseline when no factor was given.
// A non-positive baseline means "no baseline": dividing by it would be
// meaningless, and rule 6's "p99 > 2 s with no baseline" should apply instead.
func effectiveLatencyFactor(s Signals) Float {
	p, b := s.P99Latency, s.LatencyBaseline
	if s.LatencyFactor.Known || !p.Known || !b.Known || !(b.Value > 0) {
		return s.LatencyFactor
	}
	f := Float{
		Known:  true,
		Value:  p.Value / b.Value,
		Source: fmt.Sprintf("p99_latency[%s] ÷ latency_baseline[%s]", p.Source, b.Source),
		Note:   "derived",
	}
	if math.IsInf(f.Value, 1) {
		// Both finite, the quotient overflowed: the latency is beyond any
		// factor, not unknown (which would read as "no baseline known").
		f.Value, f.Note = math.MaxFloat64, "derived; overflowed"
	}
	return cleanFloat(f)
}

// sanitized returns s with every non-finite or negative number made unknown.
// The values are also zeroed when non-finite so that the Decision can always
// be encoded as JSON (encoding/json rejects NaN and ±Inf).
func (s Signals) sanitized() Signals {
	s.ErrorRatio = cleanFloat(s.ErrorRatio)
	s.LatencyFactor = cleanFloat(s.LatencyFactor)
	s.P99Latency = cleanFloat(s.P99Latency)
	s.LatencyBaseline = cleanFloat(s.LatencyBaseline)
	return s
}

func cleanFloat(f Float) Float {
	switch {
	case math.IsNaN(f.Value):
		f.Value = 0
		if f.Known {
			f.Known, f.Note = false, "not a number"
		}
	case math.IsInf(f.Value, 0):
		f.Value = 0
		if f.Known {
			f.Known, f.Note = false, "not a finite number"
		}
	case f.Known && f.Value < 0:
		f.Known, f.Note = false, fmt.Sprintf("negative value %s", num(f.Value))
	}
	return f
}
