package prom

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"

	"github.com/amtriage/amtriage/internal/testutil"
)

// fakeProm speaks Prometheus's HTTP API JSON (values as strings, "NaN",
// errors as {"status":"error","errorType":...}) for /api/v1/query and
// /api/v1/query_range, answering with answer and counting each request by
// endpoint, query and time.
type fakeProm struct {
	*httptest.Server
	answer func(w http.ResponseWriter, r *http.Request, q query)

	mu    sync.Mutex
	calls map[string]int
	seen  []query
}

type query struct {
	Path  string // "query" or "query_range"
	Query string
	Time  time.Time // instant queries
	Start time.Time // range queries
	End   time.Time
	Step  time.Duration
	User  string // basic-auth user, if any
}

func (q query) key() string {
	return fmt.Sprintf("%s %s %d %d %d", q.Path, q.Query, q.Time.UnixMilli(), q.Start.UnixMilli(), q.End.UnixMilli())
}

func newFakeProm(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, q query)) *fakeProm {
	t.Helper()
	f := &fakeProm{answer: answer, calls: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProm) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := query{Path: strings.TrimPrefix(r.URL.Path, "/api/v1/"), Query: r.Form.Get("query")}
	q.User, _, _ = r.BasicAuth()
	q.Time = unixTime(r.Form.Get("time"))
	q.Start, q.End = unixTime(r.Form.Get("start")), unixTime(r.Form.Get("end"))
	if s, err := strconv.ParseFloat(r.Form.Get("step"), 64); err == nil {
		q.Step = time.Duration(s * float64(time.Second))
	}
	f.mu.Lock()
	f.calls[q.key()]++
	f.seen = append(f.seen, q)
	f.mu.Unlock()
	f.answer(w, r, q)
}

func unixTime(s string) time.Time {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond))
}

func (f *fakeProm) requests() []query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]query(nil), f.seen...)
}

func (f *fakeProm) maxCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n = max(n, c)
	}
	return n
}

// Response bodies as Prometheus writes them.

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func vector(values ...string) string {
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metric":{"service":"api","pod":"p%d"},"value":[1795470725.627,%q]}`, i, v)
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + b.String() + `]}}`
}

func scalar(v string) string {
	return fmt.Sprintf(`{"status":"success","data":{"resultType":"scalar","result":[1795470725.627,%q]}}`, v)
}

func matrix(series ...[]string) string {
	var b strings.Builder
	for i, values := range series {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metric":{"series":"%d"},"values":[`, i)
		for j, v := range values {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `[%d,%q]`, 1795470000+15*j, v)
		}
		b.WriteString(`]}`)
	}
	return `{"status":"success","data":{"resultType":"matrix","result":[` + b.String() + `]}}`
}

func apiError(errorType, msg string) string {
	return fmt.Sprintf(`{"status":"error","errorType":%q,"error":%q}`, errorType, msg)
}

// falling is a range result that makes recovering true.
var falling = matrix([]string{"0.4", "0.4", "0.4", "0.4", "0.4", "0.4", "0.4", "0.4", "0.3", "0.2", "0.12", "0.12", "0.12"})

func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func newSource(t *testing.T, url string, cfg rules.PrometheusConfig, m *signal.Metrics) *Source {
	t.Helper()
	cfg.URL = url
	s, err := New(cfg, Options{Metrics: m})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func observations(t *testing.T, m *signal.Metrics, outcome string) uint64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Requests.WithLabelValues(Name, outcome).(prometheus.Metric).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount()
}

const (
	errQuery = `sum(rate(http_requests_total{service="api",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="api"}[5m]))`
	p99Query = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="api"}[5m])))`
	blQuery  = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="api"}[5m] offset 1w)))`
)

// everySeries is a vector of 30,000 series, about 2.5 MB: what a query
// that forgot its sum(...) can answer.
var everySeries = func() string {
	values := make([]string, 30000)
	for i := range values {
		values[i] = "0.5"
	}
	return vector(values...)
}()

func TestErrorRatioOutcomes(t *testing.T) {
	const timeout = 150 * time.Millisecond
	cases := []struct {
		name    string
		answer  func(w http.ResponseWriter, r *http.Request)
		want    severity.Float
		outcome string
	}{
		{"one sample", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("0.62")) },
			severity.Float{Known: true, Value: 0.62, Source: "prometheus"}, OutcomeOK},
		{"scalar", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, scalar("0.07")) },
			severity.Float{Known: true, Value: 0.07, Source: "prometheus"}, OutcomeOK},
		{"zero", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("0")) },
			severity.Float{Known: true, Value: 0, Source: "prometheus"}, OutcomeOK},
		{"empty", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector()) },
			severity.Float{Note: "prometheus: query error_ratio returned no data"}, OutcomeEmpty},
		{"NaN", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("NaN")) },
			severity.Float{Note: "prometheus: query error_ratio returned NaN (no traffic?)"}, OutcomeNaN},
		{"+Inf", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, scalar("+Inf")) },
			severity.Float{Note: "prometheus: query error_ratio returned +Inf (division by zero?)"}, OutcomeNaN},
		{"-Inf", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("-Inf")) },
			severity.Float{Note: "prometheus: query error_ratio returned -Inf (division by zero?)"}, OutcomeNaN},
		{"several series", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("0.1", "0.2", "0.3")) },
			severity.Float{Note: "prometheus: query error_ratio returned 3 series, want 1 (aggregate it with sum(...))"}, OutcomeError},
		{"above 1", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("37")) },
			severity.Float{Note: "prometheus: query error_ratio returned 37, outside 0..1 (is it a percentage?)"}, OutcomeOK},
		{"negative", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, vector("-0.5")) },
			severity.Float{Note: "prometheus: query error_ratio returned -0.5, outside 0..1"}, OutcomeOK},
		{"bad_data", func(w http.ResponseWriter, _ *http.Request) {
			reply(w, 400, apiError("bad_data", `invalid parameter "query": 1:1: parse error: unexpected end of input`))
		}, severity.Float{Note: `prometheus: query error_ratio failed: bad_data: invalid parameter "query": 1:1: parse error: unexpected end of input`}, OutcomeError},
		{"execution", func(w http.ResponseWriter, _ *http.Request) {
			reply(w, 422, apiError("execution", "query processing would load too many samples into memory"))
		}, severity.Float{Note: "prometheus: query error_ratio failed: execution: query processing would load too many samples into memory"}, OutcomeError},
		{"prometheus timeout", func(w http.ResponseWriter, _ *http.Request) {
			reply(w, 503, apiError("timeout", "query timed out in expression evaluation"))
		}, severity.Float{Note: "prometheus: query error_ratio timed out in Prometheus: query timed out in expression evaluation"}, OutcomeTimeout},
		{"internal", func(w http.ResponseWriter, _ *http.Request) {
			reply(w, 500, apiError("internal", "chunk not found"))
		}, severity.Float{Note: "prometheus: query error_ratio failed: internal: chunk not found"}, OutcomeError},
		{"proxy 502", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>bad gateway, token=abc</html>"))
		}, severity.Float{Note: "prometheus: query error_ratio failed: server_error: server error: 502"}, OutcomeError},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, "<html>login</html>") },
			severity.Float{Note: "prometheus: query error_ratio failed: bad_response: "}, OutcomeError},
		{"range vector", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, matrix([]string{"1"})) },
			severity.Float{Note: "prometheus: query error_ratio returned a matrix, want a scalar or an instant vector"}, OutcomeError},
		{"hang", hang,
			severity.Float{Note: "prometheus: query error_ratio timed out after 150ms"}, OutcomeTimeout},
		{"megabytes", func(w http.ResponseWriter, _ *http.Request) { reply(w, 200, everySeries) },
			severity.Float{Note: "prometheus: query error_ratio failed: answer over 1048576 bytes: a signal query must return one series"}, OutcomeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q query) {
				if q.Path == "query_range" {
					reply(w, 200, falling)
					return
				}
				tc.answer(w, r)
			})
			m := signal.NewMetrics(nil)
			// Only the hang needs the short deadline: the others, run in
			// parallel under -race on a loaded CI machine, could run past it.
			deadline := 5 * time.Second
			if tc.name == "hang" {
				deadline = timeout
			}
			src := newSource(t, fake.URL, rules.PrometheusConfig{Timeout: rules.Duration(deadline)}, m)
			ev := signal.NewEvaluation(time.Unix(1795470725, 0))
			sig, err := src.Signals(context.Background(), ev, nil, &rules.Service{Name: "api", Queries: rules.ServiceQueries{ErrorRatio: errQuery}})
			if err != nil {
				t.Fatalf("Signals: %v", err)
			}
			got := sig.ErrorRatio
			if strings.HasSuffix(tc.want.Note, ": ") { // the JSON decoder's words are not ours to pin
				if !strings.HasPrefix(got.Note, tc.want.Note) || got.Known {
					t.Fatalf("error_ratio = %+v, want unknown with note %q…", got, tc.want.Note)
				}
			} else if got != tc.want {
				t.Fatalf("error_ratio = %+v\nwant          %+v", got, tc.want)
			}
			if !sig.Recovering.Known || !sig.Recovering.Value {
				t.Errorf("recovering = %+v, want true from the falling trend", sig.Recovering)
			}
			// One instant and one range query, each observed once.
			want := uint64(1)
			if tc.outcome == OutcomeOK {
				want = 2
			}
			if n := observations(t, m, tc.outcome); n != want {
				t.Errorf("observations with outcome %q = %d, want %d", tc.outcome, n, want)
			}
		})
	}
}

func TestEvaluatesAtEvaluationTimeWithoutTimeoutParameter(t *testing.T) {
	fake := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q query) {
		// Prometheus 2.42 rejects timeout=1.5s (as client_golang would
		// format 1500ms): the deadline is the request's, not a parameter.
		if r.Form.Has("timeout") {
			t.Errorf("timeout parameter %q sent", r.Form.Get("timeout"))
		}
		reply(w, 200, vector("0.5"))
	})
	src := newSource(t, fake.URL, rules.PrometheusConfig{Timeout: rules.Duration(1500 * time.Millisecond)}, nil)
	at := time.Date(2026, 11, 23, 21, 0, 0, 250e6, time.UTC)
	_, err := src.Signals(context.Background(), signal.NewEvaluation(at), nil,
		&rules.Service{Queries: rules.ServiceQueries{P99Latency: p99Query}, LatencyBaseline: rules.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	reqs := fake.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1 (static baseline: no baseline query): %+v", len(reqs), reqs)
	}
	if !reqs[0].Time.Equal(at) || reqs[0].Query != p99Query || reqs[0].Path != "query" {
		t.Fatalf("request %+v, want the p99 query at %s", reqs[0], at)
	}
}

func TestLatencyBaseline(t *testing.T) {
	at := time.Unix(1795470725, 0)
	yesterday := at.Add(-24 * time.Hour)
	fake := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, q query) {
		switch {
		case q.Query == p99Query && q.Time.Equal(at):
			reply(w, 200, vector("1.2"))
		case q.Query == p99Query && q.Time.Equal(yesterday):
			reply(w, 200, vector("0.1"))
		case q.Query == blQuery && q.Time.Equal(at):
			reply(w, 200, vector("0.6"))
		default:
			reply(w, 200, vector())
		}
	})
	src := newSource(t, fake.URL, rules.PrometheusConfig{}, nil)
	get := func(t *testing.T, svc *rules.Service) severity.Signals {
		t.Helper()
		sig, err := src.Signals(context.Background(), signal.NewEvaluation(at), nil, svc)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}

	t.Run("default: p99 one day earlier", func(t *testing.T) {
		sig := get(t, &rules.Service{Queries: rules.ServiceQueries{P99Latency: p99Query}})
		if want := (severity.Float{Known: true, Value: 1.2, Source: "prometheus"}); sig.P99Latency != want {
			t.Errorf("p99 = %+v, want %+v", sig.P99Latency, want)
		}
		if want := (severity.Float{Known: true, Value: 0.1, Source: "prometheus", Note: "p99_latency 1d earlier"}); sig.LatencyBaseline != want {
			t.Errorf("baseline = %+v, want %+v", sig.LatencyBaseline, want)
		}
		d := severity.Decide(sig, severity.DefaultThresholds())
		if d.Severity != 2 || d.Rule != 4 {
			t.Errorf("decision %d rule %d, want Sev 2 rule 4 (12× the baseline): %q", d.Severity, d.Rule, d.Reasons)
		}
	})
	t.Run("baseline query", func(t *testing.T) {
		sig := get(t, &rules.Service{Queries: rules.ServiceQueries{P99Latency: p99Query, LatencyBaseline: blQuery}})
		if want := (severity.Float{Known: true, Value: 0.6, Source: "prometheus"}); sig.LatencyBaseline != want {
			t.Errorf("baseline = %+v, want %+v", sig.LatencyBaseline, want)
		}
	})
	t.Run("static baseline: no query", func(t *testing.T) {
		before := len(fake.requests())
		sig := get(t, &rules.Service{Queries: rules.ServiceQueries{P99Latency: p99Query}, LatencyBaseline: rules.Duration(250 * time.Millisecond)})
		if sig.LatencyBaseline.Known || sig.LatencyBaseline.Note != "" {
			t.Errorf("baseline = %+v, want untouched (the profile's static value is filled by the triager)", sig.LatencyBaseline)
		}
		if n := len(fake.requests()) - before; n != 1 {
			t.Errorf("%d requests, want 1 (the p99 only)", n)
		}
	})
	t.Run("no data a day ago", func(t *testing.T) {
		const other = `histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`
		sig := get(t, &rules.Service{Queries: rules.ServiceQueries{P99Latency: other}})
		want := "prometheus: query p99_latency 1d earlier returned no data (a new service, or less than 1d of retention?)"
		if sig.LatencyBaseline.Known || sig.LatencyBaseline.Note != want {
			t.Errorf("baseline = %+v, want note %q", sig.LatencyBaseline, want)
		}
	})
	t.Run("zero baseline", func(t *testing.T) {
		z := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, q query) { reply(w, 200, vector("0")) })
		s := newSource(t, z.URL, rules.PrometheusConfig{}, nil)
		sig, _ := s.Signals(context.Background(), signal.NewEvaluation(at), nil, &rules.Service{Queries: rules.ServiceQueries{P99Latency: p99Query}})
		if !sig.P99Latency.Known || sig.LatencyBaseline.Known || !strings.Contains(sig.LatencyBaseline.Note, "must be positive") {
			t.Errorf("p99 %+v baseline %+v: want p99 0 known and baseline unknown", sig.P99Latency, sig.LatencyBaseline)
		}
	})
}

// A storm: a thousand alerts of one service (and a few of another service
// with the same queries) in one evaluation run each query exactly once.
func TestStormRunsEachQueryOncePerEvaluation(t *testing.T) {
	fake := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, q query) {
		time.Sleep(20 * time.Millisecond) // let the storm pile up on the first call
		switch {
		case q.Path == "query_range":
			reply(w, 200, falling)
		case q.Query == errQuery:
			reply(w, 200, vector("0.62"))
		default:
			reply(w, 200, vector("0.3"))
		}
	})
	m := signal.NewMetrics(nil)
	src := newSource(t, fake.URL, rules.PrometheusConfig{}, m)
	api := &rules.Service{Name: "api", Queries: rules.ServiceQueries{ErrorRatio: errQuery, P99Latency: p99Query}}
	twin := &rules.Service{Name: "api-twin", Queries: api.Queries}

	storm := func(ev *signal.Evaluation) {
		var wg sync.WaitGroup
		for i := range 1000 {
			svc := api
			if i%100 == 0 {
				svc = twin
			}
			wg.Go(func() {
				sig, err := src.Signals(context.Background(), ev, nil, svc)
				if err != nil || !sig.ErrorRatio.Known || sig.ErrorRatio.Value != 0.62 || !sig.Recovering.Value || !sig.LatencyBaseline.Known {
					t.Errorf("alert %d: %+v, %v", i, sig, err)
				}
			})
		}
		wg.Wait()
	}
	storm(signal.NewEvaluation(time.Unix(1795470725, 0)))
	// error ratio, its trend, p99, p99 one day earlier.
	if n := len(fake.requests()); n != 4 {
		t.Fatalf("%d requests for a storm of 1,000 alerts, want 4: %+v", n, fake.requests())
	}
	if n := observations(t, m, OutcomeOK); n != 4 {
		t.Errorf("%d observations, want 4", n)
	}
	storm(signal.NewEvaluation(time.Unix(1795470845, 0))) // the next evaluation asks again
	if n := len(fake.requests()); n != 8 {
		t.Fatalf("%d requests after two evaluations, want 8", n)
	}
	if n := fake.maxCalls(); n != 1 {
		t.Fatalf("a query ran %d times at one instant, want 1", n)
	}
}

func TestNoProfileNoQueries(t *testing.T) {
	fake := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, _ query) { reply(w, 200, vector("1")) })
	src := newSource(t, fake.URL, rules.PrometheusConfig{}, nil)
	for _, svc := range []*rules.Service{nil, {Name: "bare"}, {Name: "static", LatencyBaseline: rules.Duration(time.Second)}} {
		sig, err := src.Signals(context.Background(), signal.NewEvaluation(time.Now()), nil, svc)
		if err != nil || sig != (severity.Signals{}) {
			t.Errorf("profile %+v: %+v, %v; want empty signals", svc, sig, err)
		}
	}
	if n := len(fake.requests()); n != 0 {
		t.Fatalf("%d requests, want none", n)
	}
	if src.Name() != "prometheus" {
		t.Fatalf("Name() = %q", src.Name())
	}
}

func TestTrendQuery(t *testing.T) {
	at := time.Unix(1795470725, 0)
	cases := []struct {
		name   string
		body   string
		status int
		want   severity.Bool
	}{
		{"falling", falling, 200, severity.Bool{Known: true, Value: true, Source: "prometheus trend", Note: "error ratio 40% → 12% over 10m"}},
		{"NaN steps left out", matrix([]string{"NaN", "0.2", "NaN", "0.2", "0.2", "NaN"}), 200,
			severity.Bool{Known: true, Value: false, Source: "prometheus trend", Note: "error ratio 20% → 20% over 10m, not falling"}},
		{"only NaN", matrix([]string{"NaN", "NaN", "NaN"}), 200,
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: query returned only NaN (no traffic?)"}},
		{"two points", matrix([]string{"0.5", "0.1"}), 200,
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: only 2 points, want 3"}},
		{"empty", matrix(), 200,
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: query returned no data"}},
		{"several series", matrix([]string{"1"}, []string{"2"}), 200,
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: query returned 2 series, want 1 (aggregate it with sum(...))"}},
		{"bad_data", apiError("bad_data", "parse error"), 400,
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: query failed: bad_data: parse error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, q query) {
				if q.Path == "query_range" {
					reply(w, tc.status, tc.body)
					return
				}
				reply(w, 200, vector("0.2"))
			})
			src := newSource(t, fake.URL, rules.PrometheusConfig{}, nil)
			sig, err := src.Signals(context.Background(), signal.NewEvaluation(at), nil, &rules.Service{Queries: rules.ServiceQueries{ErrorRatio: errQuery}})
			if err != nil {
				t.Fatal(err)
			}
			if sig.Recovering != tc.want {
				t.Fatalf("recovering = %+v\nwant         %+v", sig.Recovering, tc.want)
			}
			for _, q := range fake.requests() {
				if q.Path != "query_range" {
					continue
				}
				if !q.End.Equal(at) || !q.Start.Equal(at.Add(-10*time.Minute)) || q.Step != 30*time.Second || q.Query != errQuery {
					t.Fatalf("range request %+v, want the error-ratio query over the 10m before %s, step 30s", q, at)
				}
			}
		})
	}
}

func TestTrendStep(t *testing.T) {
	for _, tc := range []struct{ window, step time.Duration }{
		{0, 30 * time.Second}, // default 10m
		{time.Minute, 3 * time.Second},
		{time.Hour, 3 * time.Minute},
		{10 * time.Second, time.Second}, // floor
	} {
		s := newSource(t, "http://127.0.0.1:9", rules.PrometheusConfig{TrendWindow: rules.Duration(tc.window)}, nil)
		if s.step != tc.step {
			t.Errorf("window %s: step %s, want %s", tc.window, s.step, tc.step)
		}
	}
}

func TestTrend(t *testing.T) {
	rep := func(v float64, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	cat := func(parts ...[]float64) []float64 {
		var out []float64
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	noisy := []float64{0.10, 0.13, 0.09, 0.12, 0.08, 0.11, 0.10, 0.13, 0.09, 0.12, 0.10, 0.11, 0.09, 0.12, 0.10, 0.13, 0.09, 0.11, 0.10, 0.12, 0.09}
	spike := rep(0.10, 21)
	spike[10] = 0.9
	cases := []struct {
		name   string
		points []float64
		want   severity.Bool
	}{
		{"falling", cat(rep(0.4, 10), rep(0.12, 11)),
			severity.Bool{Known: true, Value: true, Source: "prometheus trend", Note: "error ratio 40% → 12% over 10m"}},
		{"falling steadily", []float64{0.4, 0.38, 0.36, 0.34, 0.32, 0.30, 0.28, 0.26, 0.24, 0.22, 0.20},
			severity.Bool{Known: true, Value: true, Source: "prometheus trend", Note: "error ratio 38% → 22% over 10m"}},
		{"few points falling", []float64{0.4, 0.3, 0.1},
			severity.Bool{Known: true, Value: true, Source: "prometheus trend", Note: "error ratio 40% → 10% over 10m"}},
		{"flat", rep(0.2, 21),
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 20% → 20% over 10m, not falling"}},
		{"rising", []float64{0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13, 0.14, 0.15},
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 6% → 14% over 10m, not falling"}},
		{"peak at the very end", cat(rep(0.1, 19), []float64{0.5, 0.6}),
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 10% → 50% over 10m, not falling"}},
		{"one spike at the end", cat(rep(0.1, 20), []float64{0.9}),
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 10% → 10% over 10m, not falling"}},
		{"one spike in the middle", spike,
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 10% → 10% over 10m, not falling"}},
		{"noise", noisy,
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 12% → 10% over 10m, less than the 30% drop that counts as recovering"}},
		{"small drop", cat(rep(0.2, 10), rep(0.16, 11)),
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 20% → 16% over 10m, less than the 30% drop that counts as recovering"}},
		{"drop to zero", cat(rep(0.05, 10), rep(0, 11)),
			severity.Bool{Known: true, Value: true, Source: "prometheus trend", Note: "error ratio 5% → 0% over 10m"}},
		{"rising from zero", cat(rep(0, 15), rep(0.3, 6)),
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 0% → 30% over 10m, not falling"}},
		{"zero", rep(0, 21),
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: no impact to recover from (at most 0%, below the 1% impact floor)"}},
		{"flat below the impact floor", rep(0.002, 21),
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: no impact to recover from (at most 0.2%, below the 1% impact floor)"}},
		{"falling below the impact floor", cat(rep(0.008, 10), rep(0.001, 11)),
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: no impact to recover from (at most 0.8%, below the 1% impact floor)"}},
		{"one spike over the floor is not impact", cat(rep(0.002, 10), []float64{0.5}, rep(0.002, 10)),
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: no impact to recover from (at most 0.2%, below the 1% impact floor)"}},
		{"at the floor, flat", rep(0.01, 21),
			severity.Bool{Known: true, Source: "prometheus trend", Note: "error ratio 1% → 1% over 10m, not falling"}},
		{"from the floor to zero", cat(rep(0.01, 10), rep(0, 11)),
			severity.Bool{Known: true, Value: true, Source: "prometheus trend", Note: "error ratio 1% → 0% over 10m"}},
		{"two points", []float64{0.5, 0.1},
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: only 2 points, want 3"}},
		{"none", nil,
			severity.Bool{Note: "prometheus: trend of error_ratio over 10m: only 0 points, want 3"}},
	}
	for _, tc := range cases {
		if got := trend(tc.points, 0.3, 0.01, "10m"); got != tc.want {
			t.Errorf("%s:\n got  %+v\n want %+v", tc.name, got, tc.want)
		}
	}
}

// A caller whose context ends stops waiting; the shared query is not
// poisoned with its cancellation: another alert of the same evaluation gets
// the query's real outcome.
func TestCancelledCallerDoesNotPoisonTheEvaluation(t *testing.T) {
	release := make(chan struct{})
	fake := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q query) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		if q.Path == "query_range" {
			reply(w, 200, falling)
			return
		}
		reply(w, 200, vector("0.62"))
	})
	src := newSource(t, fake.URL, rules.PrometheusConfig{Timeout: rules.Duration(5 * time.Second)}, nil)
	ev := signal.NewEvaluation(time.Unix(1795470725, 0))
	svc := &rules.Service{Queries: rules.ServiceQueries{ErrorRatio: errQuery}}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := src.Signals(ctx, ev, nil, svc)
		errc <- err
	}()
	for len(fake.requests()) < 2 { // both queries in flight
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("Signals with a cancelled context: %v, want context canceled", err)
	}
	close(release)
	sig, err := src.Signals(context.Background(), ev, nil, svc)
	if err != nil || !sig.ErrorRatio.Known || sig.ErrorRatio.Value != 0.62 {
		t.Fatalf("second alert: %+v, %v; want the query's value", sig.ErrorRatio, err)
	}
	if n := len(fake.requests()); n != 2 {
		t.Fatalf("%d requests, want 2 (the first caller's queries, shared)", n)
	}
	if why, tripped := ev.Tripped(src.backend); tripped {
		t.Fatalf("a cancelled caller tripped Prometheus: %s", why)
	}
}

func TestCredentialsStayOutOfNotes(t *testing.T) {
	addr := testutil.FreeAddr(t) // connection refused
	src := newSource(t, "http://amtriage:s3cret@"+addr+"/prom", rules.PrometheusConfig{}, nil)
	sig, err := src.Signals(context.Background(), signal.NewEvaluation(time.Now()), nil,
		&rules.Service{Queries: rules.ServiceQueries{ErrorRatio: errQuery}})
	if err != nil {
		t.Fatal(err)
	}
	want := "prometheus: query error_ratio failed: connection refused"
	if sig.ErrorRatio.Note != want {
		t.Fatalf("note %q, want %q", sig.ErrorRatio.Note, want)
	}
	for _, note := range []string{sig.ErrorRatio.Note, sig.Recovering.Note} {
		if strings.Contains(note, "s3cret") || strings.Contains(note, addr) {
			t.Fatalf("note leaks the URL: %q", note)
		}
	}

	// And the credentials do reach Prometheus.
	fake := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, q query) { reply(w, 200, vector("0.1")) })
	authed := newSource(t, strings.Replace(fake.URL, "http://", "http://amtriage:s3cret@", 1), rules.PrometheusConfig{}, nil)
	if _, err := authed.Signals(context.Background(), signal.NewEvaluation(time.Now()), nil,
		&rules.Service{Queries: rules.ServiceQueries{ErrorRatio: errQuery}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range fake.requests() {
		if q.User != "amtriage" {
			t.Fatalf("request without basic auth: %+v", q)
		}
	}
}

func TestServerErrorIsNotRetried(t *testing.T) {
	fake := newFakeProm(t, func(w http.ResponseWriter, _ *http.Request, _ query) {
		reply(w, 503, apiError("unavailable", "shutting down"))
	})
	src := newSource(t, fake.URL, rules.PrometheusConfig{}, nil)
	sig, _ := src.Signals(context.Background(), signal.NewEvaluation(time.Now()), nil,
		&rules.Service{Queries: rules.ServiceQueries{P99Latency: p99Query}, LatencyBaseline: rules.Duration(time.Second)})
	if want := "prometheus: query p99_latency failed: unavailable: shutting down"; sig.P99Latency.Known || sig.P99Latency.Note != want {
		t.Fatalf("p99 = %+v", sig.P99Latency)
	}
	if n := len(fake.requests()); n != 1 {
		t.Fatalf("%d requests, want 1 (a 503 is not retried within a query's deadline)", n)
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"", "prometheus:9090", "ftp://prometheus", "http://", "http://user:s3cret@host:port/", "http://[::1"} {
		_, err := New(rules.PrometheusConfig{URL: bad}, Options{})
		if err == nil {
			t.Errorf("New(%q): no error", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q): error leaks the password: %v", bad, err)
		}
	}
	drop := 0.5
	s, err := New(rules.PrometheusConfig{URL: "https://u:p@prometheus:9090/sub/", Timeout: rules.Duration(time.Second),
		TrendWindow: rules.Duration(time.Hour), RecoveringDrop: &drop}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.timeout != time.Second || s.window != time.Hour || s.drop != 0.5 || strings.Contains(s.backend, "p@") {
		t.Fatalf("source %+v", s)
	}
}

// twoServices are two profiles with different error and latency queries.
func twoServices() (api, other *rules.Service) {
	return &rules.Service{Name: "api", Queries: rules.ServiceQueries{ErrorRatio: errQuery, P99Latency: p99Query}},
		&rules.Service{Name: "checkout", Queries: rules.ServiceQueries{ErrorRatio: `checkout_errors`, P99Latency: `checkout_p99`}}
}

// A Prometheus that hangs costs one deadline per evaluation, not one per
// service: once a query timed out, the evaluation's other queries are not
// sent. The next evaluation asks again.
func TestHungPrometheusIsAskedOncePerEvaluation(t *testing.T) {
	const timeout = 100 * time.Millisecond
	fake := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, _ query) { hang(w, r) })
	m := signal.NewMetrics(nil)
	src := newSource(t, fake.URL, rules.PrometheusConfig{Timeout: rules.Duration(timeout)}, m)
	api, other := twoServices()

	ev := signal.NewEvaluation(time.Unix(1795470725, 0))
	first, err := src.Signals(context.Background(), ev, nil, api)
	if err != nil {
		t.Fatal(err)
	}
	if want := "prometheus: query error_ratio timed out after 100ms"; first.ErrorRatio.Note != want {
		t.Fatalf("first service: %q, want %q", first.ErrorRatio.Note, want)
	}
	if n := len(fake.requests()); n != 4 {
		t.Fatalf("%d requests for the first service, want its 4 queries", n)
	}
	second, err := src.Signals(context.Background(), ev, nil, other)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fake.requests()); n != 4 {
		t.Fatalf("the second service sent %d more requests to a Prometheus that timed out in this evaluation", n-4)
	}
	for name, f := range map[string]severity.Float{"error_ratio": second.ErrorRatio, "p99_latency": second.P99Latency} {
		want := "prometheus: query " + name + " skipped: Prometheus answered no query of this evaluation within 100ms"
		if f.Known || f.Note != want {
			t.Errorf("second service %s: %+v, want unknown with %q", name, f, want)
		}
	}
	if second.Recovering.Known {
		t.Errorf("second service recovering known: %+v", second.Recovering)
	}
	if n := observations(t, m, OutcomeTimeout); n != 4 {
		t.Errorf("%d timeouts observed, want 4", n)
	}
	if n := observations(t, m, OutcomeSkipped); n != 0 {
		t.Errorf("%d skipped queries observed as requests, want 0", n)
	}

	if _, err := src.Signals(context.Background(), signal.NewEvaluation(time.Unix(1795470845, 0)), nil, other); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.requests()); n != 8 {
		t.Fatalf("%d requests after the next evaluation, want 8: it asks again", n)
	}
}

// One slow query of a Prometheus that answers the others is its own
// timeout: the evaluation's other queries are still sent.
func TestSlowQueryDoesNotStopTheOthers(t *testing.T) {
	const timeout = 100 * time.Millisecond
	fake := newFakeProm(t, func(w http.ResponseWriter, r *http.Request, q query) {
		if q.Path == "query" && q.Query == p99Query && q.Time.Before(time.Unix(1795470725-3600, 0)) {
			hang(w, r) // only the baseline (p99 one day earlier) is slow
			return
		}
		switch q.Path {
		case "query_range":
			reply(w, 200, falling)
		default:
			reply(w, 200, vector("0.07"))
		}
	})
	src := newSource(t, fake.URL, rules.PrometheusConfig{Timeout: rules.Duration(timeout)}, signal.NewMetrics(nil))
	api, other := twoServices()
	ev := signal.NewEvaluation(time.Unix(1795470725, 0))
	first, err := src.Signals(context.Background(), ev, nil, api)
	if err != nil {
		t.Fatal(err)
	}
	if want := "prometheus: query p99_latency 1d earlier timed out after 100ms"; first.LatencyBaseline.Note != want {
		t.Fatalf("baseline: %+v, want unknown with %q", first.LatencyBaseline, want)
	}
	if !first.ErrorRatio.Known || !first.P99Latency.Known {
		t.Fatalf("the service's other queries: %+v", first)
	}
	second, err := src.Signals(context.Background(), ev, nil, other)
	if err != nil {
		t.Fatal(err)
	}
	if !second.ErrorRatio.Known || second.ErrorRatio.Value != 0.07 || !second.P99Latency.Known {
		t.Fatalf("another service after a slow query: %+v; skipped although Prometheus answers", second)
	}
	if _, tripped := ev.Tripped(src.backend); tripped {
		t.Fatal("Prometheus tripped by one slow query")
	}
}
