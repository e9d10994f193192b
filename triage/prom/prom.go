// Package prom is the Prometheus signal source: it runs a service profile's
// PromQL queries (error ratio, p99 latency, latency baseline) and the trend
// of the error ratio, at the evaluation's instant.
//
// Every query of one alert runs concurrently, each with its own deadline
// (prometheus.timeout, default 2s), and is memoised in the signal.Evaluation
// under (Prometheus URL, kind, time, query text): a storm of a thousand
// alerts of one service in one evaluation runs each query exactly once.
//
// A query that cannot answer leaves its signal unknown with a Note saying
// why ("prometheus: query error_ratio timed out after 2s"); Signals itself
// fails only when its context ends.
//
// # Latency baseline
//
// The baseline is the profile's queries.latency_baseline when set. Else,
// when the profile has neither that query nor a static latency_baseline
// duration, it is the p99_latency query evaluated one day before the
// evaluation instant ("the p99 at the same time yesterday"). The query is not
// rewritten with `offset 1d`: PromQL's offset modifier binds to a selector or
// a subquery only, and Prometheus 2.42 rejects `(<expr>) offset 1d` with
// "offset modifier must be preceded by an instant vector selector or range
// vector selector or a subquery". Inserting the offset into every selector of
// an arbitrary query would need a PromQL parser; evaluating the unchanged
// query at t-24h means exactly the same and works for any query.
//
// # Recovering
//
// A range query of the error-ratio query over prometheus.trend_window
// (default 10m) ending at the evaluation instant, with step = window/20
// (at least 1s): ~21 points, enough to see a trend, cheap for Prometheus.
// Steps without traffic (NaN) are left out. The points are smoothed with a
// trailing median of 3 so a single noisy sample makes neither a peak nor a
// fake recovery. If the latest smoothed value is
// at least prometheus.recovering_drop (default 30%) below the window's
// smoothed peak, the service is recovering; flat or rising (the peak at the
// end) is not. Fewer than 3 points leave it unknown, and so does a smoothed
// peak below the service's impact floor (1% by default): a flat 0.2% is no
// impact to recover from, not "staying broken" (rule 8 would page it).
package prom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
)

const (
	// Name is the source's name, the Source of the values it measures and
	// the "source" label of its metrics.
	Name = "prometheus"
	// TrendSource is the Source of the recovering signal.
	TrendSource = "prometheus trend"

	// BaselineLag is how far back the default latency baseline looks.
	BaselineLag = 24 * time.Hour

	// Query outcomes, the "outcome" label of signal.Metrics.
	OutcomeOK      = "ok"      // a usable value (or, for a range query, series)
	OutcomeEmpty   = "empty"   // no series
	OutcomeNaN     = "nan"     // NaN or ±Inf only
	OutcomeError   = "error"   // HTTP or PromQL error, or a result of the wrong shape
	OutcomeTimeout = "timeout" // our deadline, or Prometheus's own query timeout
	// OutcomeSkipped: not sent, because Prometheus answered no query of
	// the evaluation and one ran out of our deadline (logged once as a
	// warning). No request, so it is never a label of the latency metric.
	OutcomeSkipped = "skipped"

	minTrendPoints = 3
	trendSteps     = 20
	minTrendStep   = time.Second
	maxShownError  = 160
)

// Options are New's optional collaborators.
type Options struct {
	Metrics *signal.Metrics // nil: no metrics
	Log     *slog.Logger    // nil: slog.Default()
	// Thresholds gives a profile's thresholds, for the impact floor the
	// trend needs. nil: the defaults with the profile's own overrides.
	Thresholds func(*rules.Service) severity.Thresholds
}

// Source is the Prometheus signal.Source. It is safe for concurrent use.
type Source struct {
	api      v1.API
	backend  string // "prometheus\x00" + the redacted URL: starts every memo key
	timeout  time.Duration
	window   time.Duration
	step     time.Duration
	drop     float64
	floor    func(*rules.Service) float64
	metrics  *signal.Metrics
	log      *slog.Logger
	redacted string
	secret   string // the URL's password, scrubbed from error texts
}

var _ signal.Source = (*Source)(nil)

// New returns a Source querying the Prometheus at cfg.URL. Zero values in
// cfg take the defaults (timeout 2s, trend window 10m, recovering drop 0.3).
// The URL must be absolute http(s); it may carry basic-auth credentials,
// which never appear in notes or logs.
func New(cfg rules.PrometheusConfig, o Options) (*Source, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("prometheus: bad url: %v", redactErr(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus: url %q must be an absolute http(s) URL", u.Redacted())
	}
	s := &Source{
		timeout:  time.Duration(cfg.Timeout),
		window:   time.Duration(cfg.TrendWindow),
		drop:     cfg.Drop(),
		floor:    impactFloor(o.Thresholds),
		metrics:  o.Metrics,
		log:      o.Log,
		redacted: u.Redacted(),
	}
	if p, ok := u.User.Password(); ok {
		s.secret = p
	}
	s.backend = Name + "\x00" + s.redacted
	if s.timeout <= 0 {
		s.timeout = rules.DefaultPromTimeout
	}
	if s.window <= 0 {
		s.window = rules.DefaultTrendWindow
	}
	s.step = max((s.window / trendSteps).Truncate(time.Millisecond), minTrendStep)
	if s.log == nil {
		s.log = slog.Default()
	}
	client, err := api.NewClient(api.Config{Address: u.String(), RoundTripper: newTransport()})
	if err != nil {
		return nil, fmt.Errorf("prometheus: %v", redactErr(err))
	}
	s.api = v1.NewAPI(client)
	return s, nil
}

// newTransport is the go-retryablehttp round tripper of the API client. A
// query has a short deadline, so it is retried at most once and only when
// it cannot have reached Prometheus (the connection was refused or failed
// to open), after a short wait; a 5xx or a timeout is reported as is.
func newTransport() http.RoundTripper {
	c := retryablehttp.NewClient()
	c.RetryMax = 1
	c.RetryWaitMin = 50 * time.Millisecond
	c.RetryWaitMax = 250 * time.Millisecond
	c.Backoff = retryablehttp.LinearJitterBackoff
	c.Logger = nil // the URL may carry credentials; never log requests
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return resp == nil && isDialError(err), nil
	}
	return limitedBodies{next: &retryablehttp.RoundTripper{Client: c}, max: maxResponseBytes}
}

// maxResponseBytes bounds one query's answer. A signal is one number; a
// query that answers megabytes (a vector of every series, or a Prometheus
// gone wrong) would otherwise be read whole into memory.
const maxResponseBytes = 1 << 20

// limitedBodies cuts response bodies past max bytes with an error.
type limitedBodies struct {
	next http.RoundTripper
	max  int64
}

func (l limitedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err == nil {
		resp.Body = &capped{ReadCloser: resp.Body, left: l.max}
	}
	return resp, err
}

type capped struct {
	io.ReadCloser
	left int64
}

var errResponseTooLarge = fmt.Errorf("answer over %d bytes: a signal query must return one series", maxResponseBytes)

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, err := c.ReadCloser.Read(one[:]); n == 0 && err != nil {
			return 0, err // exactly the limit, and the end: io.EOF
		}
		return 0, errResponseTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

// Name implements signal.Source.
func (s *Source) Name() string { return Name }

// Signals implements signal.Source: the profile's error ratio, p99 latency,
// latency baseline and recovering trend at ev.Time(). A nil profile or one
// without queries gives empty Signals. The error is non-nil only when ctx
// ends before the queries do.
func (s *Source) Signals(ctx context.Context, ev *signal.Evaluation, _ *template.Alert, svc *rules.Service) (severity.Signals, error) {
	var out severity.Signals
	if svc == nil {
		return out, nil
	}
	q := svc.Queries
	at := ev.Time()
	var tasks []func() func(*severity.Signals)
	if q.ErrorRatio != "" {
		tasks = append(tasks,
			func() func(*severity.Signals) {
				f := s.ratio(ctx, ev, q.ErrorRatio, at)
				return func(o *severity.Signals) { o.ErrorRatio = f }
			},
			func() func(*severity.Signals) {
				b := s.recovering(ctx, ev, q.ErrorRatio, s.floor(svc), at)
				return func(o *severity.Signals) { o.Recovering = b }
			})
	}
	if q.P99Latency != "" {
		tasks = append(tasks, func() func(*severity.Signals) {
			f := s.latency(ctx, ev, "p99_latency", q.P99Latency, at)
			return func(o *severity.Signals) { o.P99Latency = f }
		})
	}
	switch {
	case q.LatencyBaseline != "":
		tasks = append(tasks, func() func(*severity.Signals) {
			f := s.baseline(ctx, ev, q.LatencyBaseline, at, false)
			return func(o *severity.Signals) { o.LatencyBaseline = f }
		})
	case q.P99Latency != "" && svc.LatencyBaseline <= 0:
		tasks = append(tasks, func() func(*severity.Signals) {
			f := s.baseline(ctx, ev, q.P99Latency, at, true)
			return func(o *severity.Signals) { o.LatencyBaseline = f }
		})
	}
	if len(tasks) == 0 {
		return out, nil
	}
	// Buffered: a task outliving a cancelled caller finishes (bounded by
	// its deadline) without blocking.
	done := make(chan func(*severity.Signals), len(tasks))
	for _, task := range tasks {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					// Raised again on the caller's goroutine, where the
					// pipeline recovers it, instead of ending the process.
					done <- func(*severity.Signals) { panic(r) }
				}
			}()
			done <- task()
		}()
	}
	for range tasks {
		select {
		case set := <-done:
			set(&out)
		case <-ctx.Done():
			return severity.Signals{}, fmt.Errorf("prometheus: %w", ctx.Err())
		}
	}
	return out, nil
}

// impactFloor returns the impact floor of a profile from thresholds, or from
// the defaults and the profile's overrides when thresholds is nil.
func impactFloor(thresholds func(*rules.Service) severity.Thresholds) func(*rules.Service) float64 {
	if thresholds == nil {
		thresholds = (*rules.Config)(nil).Thresholds
	}
	return func(svc *rules.Service) float64 { return thresholds(svc).ImpactFloor }
}

// ratio is the error_ratio signal.
func (s *Source) ratio(ctx context.Context, ev *signal.Evaluation, query string, at time.Time) severity.Float {
	const name = "error_ratio"
	r := s.instant(ctx, ev, name, query, at)
	if r.reason != "" {
		return unknown(name, r.reason)
	}
	v := r.value
	switch {
	case v < 0:
		return unknown(name, fmt.Sprintf("returned %s, outside 0..1", num(v)))
	case v > 1:
		// Two rates from one scrape cannot exceed 1 except by rounding.
		if v > 1+1e-9 {
			return unknown(name, fmt.Sprintf("returned %s, outside 0..1 (is it a percentage?)", num(v)))
		}
		v = 1
	}
	return severity.Float{Known: true, Value: v, Source: Name}
}

// latency is the p99_latency signal, in seconds.
func (s *Source) latency(ctx context.Context, ev *signal.Evaluation, name, query string, at time.Time) severity.Float {
	return seconds(name, s.instant(ctx, ev, name, query, at), "")
}

// baseline is the latency_baseline signal, from the profile's baseline query
// at the evaluation instant, or (lagged) from the p99 query one day earlier.
// It must be positive, since the latency factor divides by it.
func (s *Source) baseline(ctx context.Context, ev *signal.Evaluation, query string, at time.Time, lagged bool) severity.Float {
	name, note := "latency_baseline", ""
	if lagged {
		name, note = "p99_latency 1d earlier", "p99_latency 1d earlier"
		at = at.Add(-BaselineLag)
	}
	r := s.instant(ctx, ev, name, query, at)
	if lagged && r.outcome == OutcomeEmpty {
		r.reason += " (a new service, or less than 1d of retention?)"
	}
	f := seconds(name, r, note)
	if f.Known && f.Value <= 0 {
		return unknown(name, "returned 0, a baseline must be positive")
	}
	return f
}

func seconds(name string, r result, note string) severity.Float {
	if r.reason != "" {
		return unknown(name, r.reason)
	}
	if r.value < 0 {
		return unknown(name, fmt.Sprintf("returned %s, a latency cannot be negative", num(r.value)))
	}
	return severity.Float{Known: true, Value: r.value, Source: Name, Note: note}
}

func unknown(name, reason string) severity.Float {
	return severity.Float{Note: fmt.Sprintf("%s: query %s %s", Name, name, reason)}
}

func num(v float64) string { return fmt.Sprintf("%.4g", v) }

func pct(r float64) string { return fmt.Sprintf("%.3g%%", r*100) }

// window prints a duration in Prometheus syntax ("10m", "30s").
func window(d time.Duration) string {
	if d%time.Millisecond == 0 {
		return model.Duration(d).String()
	}
	return d.String()
}

// redactErr strips a URL (with its credentials) out of url.Parse's errors.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ErrorRatio is the profile's error ratio at the evaluation's instant, for
// verifying recovery; unknown without an error_ratio query.
func (s *Source) ErrorRatio(ctx context.Context, ev *signal.Evaluation, svc *rules.Service) severity.Float {
	if svc == nil || svc.Queries.ErrorRatio == "" {
		return unknown("error_ratio", "no error_ratio query in the profile")
	}
	return s.ratio(ctx, ev, svc.Queries.ErrorRatio, ev.Time())
}

// ImpactFloor is the profile's impact floor: an error ratio below it is no impact.
func (s *Source) ImpactFloor(svc *rules.Service) float64 { return s.floor(svc) }
