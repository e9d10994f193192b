package prom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Series is one series of a range query, for the record (an incident's
// evidence): its labels and finite points, oldest first.
type Series struct {
	Labels map[string]string `json:"labels"`
	Points []Point           `json:"points"`
}

// Point is one sample: unix milliseconds and the value.
type Point struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// RangeAnswer is a range query's series, bounded.
type RangeAnswer struct {
	Series []Series `json:"series"`
	// Clipped says what was left out past the bounds, e.g. "… clipped: 3
	// series more"; empty when nothing was.
	Clipped string `json:"clipped,omitempty"`
}

// Range runs query over [start, end] at step for the record, not for a
// signal: any number of series is fine. The answer is bounded: the HTTP
// body by maxResponseBytes (an error past it), then at most maxSeries
// series (by label order) and maxPoints points each (the latest kept),
// with a mark saying how much was left out. NaN and ±Inf points are left
// out: JSON has no such numbers. The deadline is ctx's, capped at the
// configured timeout's tenfold (a range query costs more than an instant
// one).
func (s *Source) Range(ctx context.Context, query string, start, end time.Time, step time.Duration, maxSeries, maxPoints int) (*RangeAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*s.timeout)
	defer cancel()
	v, _, _, err := s.api.QueryRange(ctx, query, v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, errors.New("query " + s.describe(ctx, err).reason)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		if v == nil {
			return nil, errors.New("query returned no result")
		}
		return nil, fmt.Errorf("query returned a %s, want a range vector", v.Type())
	}
	slices.SortFunc(m, func(a, b *model.SampleStream) int {
		switch {
		case a.Metric.Before(b.Metric):
			return -1
		case b.Metric.Before(a.Metric):
			return 1
		}
		return 0
	})
	out := &RangeAnswer{Series: []Series{}}
	moreSeries, morePoints := 0, 0
	if len(m) > maxSeries {
		moreSeries = len(m) - maxSeries
		m = m[:maxSeries]
	}
	for _, ss := range m {
		sr := Series{Labels: make(map[string]string, len(ss.Metric)), Points: make([]Point, 0, min(len(ss.Values), maxPoints))}
		for k, val := range ss.Metric {
			sr.Labels[string(k)] = string(val)
		}
		vals := ss.Values
		if len(vals) > maxPoints {
			morePoints += len(vals) - maxPoints
			vals = vals[len(vals)-maxPoints:]
		}
		for _, p := range vals {
			if f := float64(p.Value); !math.IsNaN(f) && !math.IsInf(f, 0) {
				sr.Points = append(sr.Points, Point{T: int64(p.Timestamp), V: f})
			}
		}
		out.Series = append(out.Series, sr)
	}
	switch {
	case moreSeries > 0 && morePoints > 0:
		out.Clipped = fmt.Sprintf("… clipped: %d series more, %d points more", moreSeries, morePoints)
	case moreSeries > 0:
		out.Clipped = fmt.Sprintf("… clipped: %d series more", moreSeries)
	case morePoints > 0:
		out.Clipped = fmt.Sprintf("… clipped: %d points more", morePoints)
	}
	return out, nil
}
