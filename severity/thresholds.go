package severity

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultThresholds returns the SPEC's boundaries. It builds a fresh Fallback
// map on every call so a caller (a service profile) may modify its copy
// without changing anyone else's defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{
		OutageErrorRatio:   0.50,
		MajorErrorRatio:    0.10,
		MinorErrorRatio:    0.05,
		ImpactFloor:        0.01,
		MajorLatencyFactor: 10,
		MinorLatencyFactor: 2,
		HighP99:            2 * time.Second,
		Fallback: map[string]Level{
			"critical": 2,
			"error":    2,
			"warning":  3,
			"info":     4,
		},
		FallbackDefault: 3,
	}
}

// Valid reports whether l is one of the four severities.
func (l Level) Valid() bool { return l >= 1 && l <= 4 }

// Validate reports thresholds that would make the decision tree meaningless:
// ratios outside 0..1, non-finite or non-positive factors and durations,
// boundaries in the wrong order (which silently make rules unreachable) and
// fallback levels outside 1..4. Decide itself never fails; configuration
// loading is where a bad profile should be rejected, with every problem
// listed at once.
func (t Thresholds) Validate() error {
	var errs []error
	ratio := func(name string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s %v: must be a ratio in 0..1", name, v))
		}
	}
	ratio("outage error ratio", t.OutageErrorRatio)
	ratio("major error ratio", t.MajorErrorRatio)
	ratio("minor error ratio", t.MinorErrorRatio)
	ratio("impact floor", t.ImpactFloor)
	if !(t.OutageErrorRatio >= t.MajorErrorRatio && t.MajorErrorRatio >= t.MinorErrorRatio && t.MinorErrorRatio >= t.ImpactFloor) {
		errs = append(errs, fmt.Errorf("error ratios must satisfy outage (%v) ≥ major (%v) ≥ minor (%v) ≥ impact floor (%v)",
			t.OutageErrorRatio, t.MajorErrorRatio, t.MinorErrorRatio, t.ImpactFloor))
	}
	factor := func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be a finite factor > 0", name, v))
		}
	}
	factor("major latency factor", t.MajorLatencyFactor)
	factor("minor latency factor", t.MinorLatencyFactor)
	if !(t.MajorLatencyFactor >= t.MinorLatencyFactor) {
		errs = append(errs, fmt.Errorf("latency factors must satisfy major (%v) ≥ minor (%v)",
			t.MajorLatencyFactor, t.MinorLatencyFactor))
	}
	if t.HighP99 <= 0 {
		errs = append(errs, fmt.Errorf("high p99 %v: must be > 0", t.HighP99))
	}
	for label, l := range t.Fallback {
		if !l.Valid() {
			errs = append(errs, fmt.Errorf("fallback for severity label %q: level %d not in 1..4", label, l))
		}
	}
	if !t.FallbackDefault.Valid() {
		errs = append(errs, fmt.Errorf("fallback default level %d not in 1..4", t.FallbackDefault))
	}
	return errors.Join(errs...)
}
