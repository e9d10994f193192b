package prom

import (
	"context"
	"fmt"
	"time"

	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
)

// recovering is the trend of the error-ratio query over the trend window
// ending at at. See the package documentation.
func (s *Source) recovering(ctx context.Context, ev *signal.Evaluation, query string, floor float64, at time.Time) severity.Bool {
	w := window(s.window)
	r := s.rangeQuery(ctx, ev, "error_ratio trend", query, at)
	if r.reason != "" {
		return severity.Bool{Note: fmt.Sprintf("%s: trend of error_ratio over %s: query %s", Name, w, r.reason)}
	}
	return trend(r.points, s.drop, floor, w)
}

// trendEpsilon: an error ratio at or below it is zero (rates of counters
// that did not move can come out as tiny float residues).
const trendEpsilon = 1e-12

// trend decides the recovering signal from an error ratio's points (oldest
// first, finite) over a window described by span ("10m"): recovering when
// the latest smoothed value is at least drop (a share, e.g. 0.3) below the
// smoothed peak. With 7 points or more they are smoothed by a trailing
// median of 3, so one noisy sample makes neither a peak nor a fake recovery
// (a real change lasts at least two steps). Fewer than 3 points, or a peak
// below floor (the impact floor) or of 0, leave the signal unknown: an error
// ratio that never reached the floor has no impact to recover from, and
// calling it "staying broken" would page steady noise at Sev 2 (rule 8).
func trend(points []float64, drop, floor float64, span string) severity.Bool {
	n := len(points)
	if n < minTrendPoints {
		return severity.Bool{Note: fmt.Sprintf("%s: trend of error_ratio over %s: only %d points, want %d", Name, span, n, minTrendPoints)}
	}
	smoothed := points
	if n >= 7 {
		smoothed = make([]float64, 0, n-2)
		for i := 2; i < n; i++ {
			smoothed = append(smoothed, median3(points[i-2], points[i-1], points[i]))
		}
	}
	first, latest := smoothed[0], smoothed[len(smoothed)-1]
	peak := first
	for _, v := range smoothed {
		peak = max(peak, v)
	}
	if peak <= trendEpsilon || peak < floor {
		return severity.Bool{Note: fmt.Sprintf("%s: trend of error_ratio over %s: no impact to recover from (at most %s, below the %s impact floor)",
			Name, span, pct(peak), pct(floor))}
	}
	b := severity.Bool{Known: true, Source: TrendSource}
	switch {
	case latest <= peak*(1-drop):
		b.Value = true
		b.Note = fmt.Sprintf("error ratio %s → %s over %s", pct(peak), pct(latest), span)
	case latest >= peak:
		b.Note = fmt.Sprintf("error ratio %s → %s over %s, not falling", pct(first), pct(latest), span)
	default:
		b.Note = fmt.Sprintf("error ratio %s → %s over %s, less than the %s drop that counts as recovering",
			pct(peak), pct(latest), span, pct(drop))
	}
	return b
}

func median3(a, b, c float64) float64 {
	return max(min(a, b), min(max(a, b), c))
}
