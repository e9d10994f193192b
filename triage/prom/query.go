package prom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/signal"

	"github.com/amtriage/amtriage/internal/clip"
)

// result is one query's outcome, shared through the evaluation's memo by
// every alert that asks the same query at the same time. It is never
// modified once stored.
type result struct {
	outcome string
	value   float64   // instant query: the single finite value
	points  []float64 // range query: the finite values of the single series, oldest first
	// reason is why the result is unusable, phrased to follow "query NAME"
	// ("returned no data", "timed out after 2s"); empty when usable.
	reason string
}

// instant runs query at ts, memoised in ev.
func (s *Source) instant(ctx context.Context, ev *signal.Evaluation, name, query string, ts time.Time) result {
	key := fmt.Sprintf("%s\x00instant\x00%d\x00%s", s.backend, ts.UnixNano(), query)
	return s.memo(ctx, ev, key, func(qctx context.Context) (model.Value, v1.Warnings, error) {
		v, w, _, err := s.api.Query(qctx, query, ts)
		return v, w, err
	}, name, interpretInstant)
}

// rangeQuery runs query over [end-window, end], memoised in ev.
func (s *Source) rangeQuery(ctx context.Context, ev *signal.Evaluation, name, query string, end time.Time) result {
	r := v1.Range{Start: end.Add(-s.window), End: end, Step: s.step}
	key := fmt.Sprintf("%s\x00range\x00%d\x00%d\x00%d\x00%s", s.backend, r.Start.UnixNano(), r.End.UnixNano(), r.Step, query)
	return s.memo(ctx, ev, key, func(qctx context.Context) (model.Value, v1.Warnings, error) {
		v, w, _, err := s.api.QueryRange(qctx, query, r)
		return v, w, err
	}, name, interpretRange)
}

// memo runs do once per key and evaluation, with its own deadline. The run
// is detached from ctx's cancellation (not from its values): the stored
// result is shared by every alert of the evaluation and must not be one
// caller's "canceled". The caller stops waiting when ctx ends (Signals
// checks), and the detached run ends at its deadline.
//
// The deadline is not also sent as the API's timeout parameter
// (v1.WithTimeout): the client formats it with time.Duration.String, and
// Prometheus 2.42 rejects "1.5s" (bad_data: cannot parse "1.5s" to a valid
// duration), which would fail every query with a timeout like 1500ms.
// Prometheus aborts a query whose client has gone, so the request's
// deadline is enough.
func (s *Source) memo(ctx context.Context, ev *signal.Evaluation, key string,
	do func(context.Context) (model.Value, v1.Warnings, error), name string, interpret func(model.Value) result,
) result {
	r, _ := signal.Memo(ev, key, func() (result, error) {
		// A Prometheus that answered nothing and let a query run out of
		// the deadline is not asked again in this evaluation: a storm
		// naming twenty services would otherwise wait out twenty
		// deadlines before paging.
		if why, ok := ev.Tripped(s.backend); ok {
			return result{outcome: OutcomeSkipped, reason: why}, nil
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		start := time.Now()
		v, warnings, err := do(qctx)
		var r result
		var apiErr *v1.Error
		switch {
		case err == nil || errors.As(err, &apiErr):
			ev.Answered(s.backend) // up: one slow query must not stop the others
		case errors.Is(qctx.Err(), context.DeadlineExceeded):
			if ev.Trip(s.backend, "skipped: Prometheus answered no query of this evaluation within "+s.timeout.String()) {
				s.log.WarnContext(ctx, "prometheus answered no query in time; its other queries of this evaluation are skipped",
					"query", name, "timeout", s.timeout, "prometheus", s.redacted)
			}
		}
		if err != nil {
			r = s.describe(qctx, err)
		} else {
			r = interpret(v)
		}
		s.metrics.Observe(Name, r.outcome, time.Since(start))
		if len(warnings) > 0 {
			s.log.WarnContext(ctx, "prometheus query warnings", "query", name, "warnings", []string(warnings))
		}
		if r.outcome == OutcomeError || r.outcome == OutcomeTimeout {
			s.log.DebugContext(ctx, "prometheus query failed", "query", name, "prometheus", s.redacted, "reason", r.reason)
		}
		return r, nil
	})
	return r
}

// interpretInstant accepts a scalar or a vector of exactly one sample.
func interpretInstant(v model.Value) result {
	switch v := v.(type) {
	case *model.Scalar:
		return finite(float64(v.Value))
	case model.Vector:
		switch len(v) {
		case 0:
			return result{outcome: OutcomeEmpty, reason: "returned no data"}
		case 1:
			return finite(float64(v[0].Value))
		}
		return result{outcome: OutcomeError, reason: manySeries(len(v))}
	case nil:
		return result{outcome: OutcomeError, reason: "returned no result"}
	}
	return result{outcome: OutcomeError, reason: fmt.Sprintf("returned a %s, want a scalar or an instant vector", v.Type())}
}

func finite(f float64) result {
	switch {
	case math.IsNaN(f):
		return result{outcome: OutcomeNaN, reason: "returned NaN (no traffic?)"}
	case math.IsInf(f, 0):
		return result{outcome: OutcomeNaN, reason: fmt.Sprintf("returned %s (division by zero?)", strconv.FormatFloat(f, 'g', -1, 64))}
	}
	return result{outcome: OutcomeOK, value: f}
}

func manySeries(n int) string {
	return fmt.Sprintf("returned %d series, want 1 (aggregate it with sum(...))", n)
}

// interpretRange accepts a matrix of exactly one series; NaN and ±Inf points
// (no traffic at that step) are left out.
func interpretRange(v model.Value) result {
	m, ok := v.(model.Matrix)
	if !ok {
		if v == nil {
			return result{outcome: OutcomeError, reason: "returned no result"}
		}
		return result{outcome: OutcomeError, reason: fmt.Sprintf("returned a %s, want a range vector", v.Type())}
	}
	switch len(m) {
	case 0:
		return result{outcome: OutcomeEmpty, reason: "returned no data"}
	case 1:
	default:
		return result{outcome: OutcomeError, reason: manySeries(len(m))}
	}
	points := make([]float64, 0, len(m[0].Values))
	for _, p := range m[0].Values {
		if f := float64(p.Value); !math.IsNaN(f) && !math.IsInf(f, 0) {
			points = append(points, f)
		}
	}
	if len(points) == 0 && len(m[0].Values) > 0 {
		return result{outcome: OutcomeNaN, reason: "returned only NaN (no traffic?)"}
	}
	return result{outcome: OutcomeOK, points: points}
}

// describe turns a failed query into its outcome and a short reason: no
// URL, no credentials, no response body.
func (s *Source) describe(qctx context.Context, err error) result {
	timedOut := result{outcome: OutcomeTimeout, reason: "timed out after " + s.timeout.String()}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(qctx.Err(), context.DeadlineExceeded) {
		return timedOut
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		typ, msg := apiErr.Type, apiErr.Msg
		if typ == v1.ErrServer || typ == v1.ErrClient {
			// The client keeps Prometheus's own error only for 400 and
			// 422; for a 503 (its query timeout) or 500 it is in the body.
			// Only a Prometheus error body is used, never a proxy's page.
			var body struct {
				Status    string       `json:"status"`
				ErrorType v1.ErrorType `json:"errorType"`
				Error     string       `json:"error"`
			}
			if json.Unmarshal([]byte(apiErr.Detail), &body) == nil && body.Status == "error" && body.ErrorType != "" {
				typ, msg = body.ErrorType, body.Error
			}
		}
		if typ == v1.ErrTimeout {
			return result{outcome: OutcomeTimeout, reason: "timed out in Prometheus: " + s.clip(msg)}
		}
		return result{outcome: OutcomeError, reason: fmt.Sprintf("failed: %s: %s", typ, s.clip(msg))}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return result{outcome: OutcomeError, reason: "failed: cannot resolve the Prometheus host: " + s.clip(dnsErr.Err)}
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return result{outcome: OutcomeError, reason: "failed: connection refused"}
	case errors.Is(err, syscall.ECONNRESET):
		return result{outcome: OutcomeError, reason: "failed: connection reset"}
	}
	var ue *url.Error
	for errors.As(err, &ue) { // its text repeats the URL
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return result{outcome: OutcomeError, reason: fmt.Sprintf("failed: %s: %s", op.Op, s.clip(op.Err.Error()))}
	}
	return result{outcome: OutcomeError, reason: "failed: " + s.clip(err.Error())}
}

// clip shortens an error text for a note and scrubs the URL's password in
// case some layer repeated the URL.
func (s *Source) clip(msg string) string {
	if s.secret != "" {
		msg = strings.ReplaceAll(msg, s.secret, "xxxxx")
	}
	return clip.Bytes(strings.TrimSpace(msg), maxShownError)
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// FailedRequests integrates the profile's request rate × error ratio over
// [start, end] with a range query: about how many requests failed, for the
// closure message's impact. ok is false with the reason when it cannot be
// measured (no requests or error_ratio query, no answer).
func (s *Source) FailedRequests(ctx context.Context, ev *signal.Evaluation, svc *rules.Service, start, end time.Time) (failed float64, ok bool, reason string) {
	if svc == nil || svc.Queries.Requests == "" || svc.Queries.ErrorRatio == "" {
		return 0, false, "the profile has no requests and error_ratio queries"
	}
	if !end.After(start) {
		return 0, true, ""
	}
	// About 250 points, at least a second apart.
	step := max((end.Sub(start) / 250).Truncate(time.Second), time.Second)
	r := v1.Range{Start: start, End: end, Step: step}
	query := "(" + svc.Queries.Requests + ") * (" + svc.Queries.ErrorRatio + ")"
	key := fmt.Sprintf("%s\x00impact\x00%d\x00%d\x00%d\x00%s", s.backend, r.Start.UnixNano(), r.End.UnixNano(), r.Step, query)
	res := s.memo(ctx, ev, key, func(qctx context.Context) (model.Value, v1.Warnings, error) {
		v, w, _, err := s.api.QueryRange(qctx, query, r)
		return v, w, err
	}, "impact", interpretRange)
	if res.reason != "" {
		return 0, false, "query impact " + res.reason
	}
	// The trapezoid rule: n points span n-1 steps. (Steps without traffic
	// are NaN and left out: they failed nothing.)
	for i := 1; i < len(res.points); i++ {
		failed += (res.points[i-1] + res.points[i]) / 2 * step.Seconds()
	}
	return failed, true, ""
}
