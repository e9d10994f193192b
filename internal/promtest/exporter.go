package promtest

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buckets are the upper bounds (seconds) of the exporter's latency
// histogram, besides +Inf. SetP99 accepts values in [Buckets[0], 60s).
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Defaults of a new Exporter.
const (
	DefaultRate = 100                    // requests per second
	DefaultP99  = 100 * time.Millisecond // p99 latency
)

// Exporter is a scrape target that simulates one service's HTTP traffic:
//
//	http_requests_total{service="<name>",code="200"|"500"}   counters
//	http_request_duration_seconds{service="<name>"}          histogram
//
// The values are computed from the elapsed time at each scrape: Rate()
// requests per second, ErrorRatio() of them with code 500, and latencies
// spread over the buckets so that
//
//	histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="<name>"}[w])))
//
// returns exactly P99() once w holds only samples taken since the last
// change (and the error-ratio query of rates returns exactly ErrorRatio()).
// Changes apply from the moment they are made; counters never go back.
type Exporter struct {
	t       testing.TB
	service string
	srv     *httptest.Server

	mu      sync.Mutex
	rate    float64
	ratio   float64
	p99     float64
	dist    []float64 // share of requests per bucket (len(Buckets)+1, last is +Inf)
	last    time.Time
	ok      float64
	errs    float64
	counts  []float64 // non-cumulative bucket counts
	sum     float64
	scrapes int
}

// NewExporter starts an exporter for service on 127.0.0.1, serving
// /metrics, at DefaultRate requests per second, no errors and a p99 of
// DefaultP99. It stops when the test ends.
func NewExporter(t testing.TB, service string) *Exporter {
	t.Helper()
	if service == "" || strings.ContainsAny(service, "\"\\\n") {
		t.Fatalf("promtest: service name %q must be non-empty and need no escaping", service)
	}
	e := &Exporter{t: t, service: service, rate: DefaultRate, counts: make([]float64, len(Buckets)+1)}
	e.p99 = DefaultP99.Seconds()
	e.dist = distribution(e.p99)
	e.last = time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", e.serve)
	e.srv = httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(e.srv.Close)
	return e
}

// Service is the value of the exporter's service label.
func (e *Exporter) Service() string { return e.service }

// URL is the exporter's metrics endpoint, http://127.0.0.1:PORT/metrics.
func (e *Exporter) URL() string { return e.srv.URL + "/metrics" }

// Target is the exporter's host:port, as a Prometheus static target.
func (e *Exporter) Target() string {
	u, _ := url.Parse(e.srv.URL)
	return u.Host
}

// SetErrorRatio makes a share r (0..1) of the requests from now on fail
// with code 500.
func (e *Exporter) SetErrorRatio(r float64) {
	e.t.Helper()
	if !(r >= 0 && r <= 1) {
		e.t.Fatalf("promtest: error ratio %v outside 0..1", r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(time.Now())
	e.ratio = r
}

// SetP99 makes the p99 latency of the requests from now on d, which must
// be in [Buckets[0], 60s).
func (e *Exporter) SetP99(d time.Duration) {
	e.t.Helper()
	p := d.Seconds()
	if p < Buckets[0] || p >= Buckets[len(Buckets)-1] {
		e.t.Fatalf("promtest: p99 %s outside [%gs, %gs)", d, Buckets[0], Buckets[len(Buckets)-1])
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(time.Now())
	e.p99 = p
	e.dist = distribution(p)
}

// SetRate sets the requests per second from now on (0: no traffic, so
// the error-ratio query returns NaN).
func (e *Exporter) SetRate(perSecond float64) {
	e.t.Helper()
	if !(perSecond >= 0) || math.IsInf(perSecond, 0) {
		e.t.Fatalf("promtest: rate %v must be finite and ≥ 0", perSecond)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(time.Now())
	e.rate = perSecond
}

// ErrorRatio, P99 and Rate are the current settings.
func (e *Exporter) ErrorRatio() float64 { e.mu.Lock(); defer e.mu.Unlock(); return e.ratio }

// P99 is the current p99 latency setting.
func (e *Exporter) P99() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Duration(e.p99 * float64(time.Second))
}

// Rate is the current requests-per-second setting.
func (e *Exporter) Rate() float64 { e.mu.Lock(); defer e.mu.Unlock(); return e.rate }

// Scrapes is how many times /metrics was served.
func (e *Exporter) Scrapes() int { e.mu.Lock(); defer e.mu.Unlock(); return e.scrapes }

// distribution spreads requests over the buckets so that
// histogram_quantile(0.99) interpolates to exactly p. With lo ≤ p < hi the
// bounds of p's bucket and a = (p-lo)/(hi-lo): the bucket just below lo gets
// 0.99-0.01a, p's bucket 0.01 and +Inf 0.01a. The 99th percentile rank then
// falls a of the way into p's bucket (at a = 0 exactly on lo, where float
// rounding on either side still gives lo).
func distribution(p float64) []float64 {
	d := make([]float64, len(Buckets)+1)
	i := 1
	for i < len(Buckets)-1 && Buckets[i] <= p {
		i++
	}
	lo, hi := Buckets[i-1], Buckets[i]
	a := (p - lo) / (hi - lo)
	d[i-1] = 0.99 - 0.01*a
	d[i] = 0.01
	d[len(Buckets)] = 0.01 * a
	return d
}

// advance accounts for the requests since the last call. e.mu is held.
func (e *Exporter) advance(now time.Time) {
	dt := now.Sub(e.last).Seconds()
	if dt <= 0 {
		return
	}
	e.last = now
	n := e.rate * dt
	e.errs += n * e.ratio
	e.ok += n * (1 - e.ratio)
	for i, share := range e.dist {
		e.counts[i] += n * share
		// A latency for _sum: the bucket's middle (+Inf: twice the last bound).
		lo, hi := 0.0, 2*Buckets[len(Buckets)-1]
		if i > 0 {
			lo = Buckets[i-1]
		}
		if i < len(Buckets) {
			hi = Buckets[i]
		}
		e.sum += n * share * (lo + hi) / 2
	}
}

func (e *Exporter) serve(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	e.advance(time.Now())
	e.scrapes++
	var b strings.Builder
	s := e.service
	b.WriteString("# HELP http_requests_total Requests served, by status code (simulated by promtest).\n")
	b.WriteString("# TYPE http_requests_total counter\n")
	fmt.Fprintf(&b, "http_requests_total{service=%q,code=\"200\"} %s\n", s, f(e.ok))
	fmt.Fprintf(&b, "http_requests_total{service=%q,code=\"500\"} %s\n", s, f(e.errs))
	b.WriteString("# HELP http_request_duration_seconds Request latency (simulated by promtest).\n")
	b.WriteString("# TYPE http_request_duration_seconds histogram\n")
	var cum float64
	for i, c := range e.counts {
		cum += c
		le := "+Inf"
		if i < len(Buckets) {
			le = f(Buckets[i])
		}
		fmt.Fprintf(&b, "http_request_duration_seconds_bucket{service=%q,le=%q} %s\n", s, le, f(cum))
	}
	fmt.Fprintf(&b, "http_request_duration_seconds_sum{service=%q} %s\n", s, f(e.sum))
	fmt.Fprintf(&b, "http_request_duration_seconds_count{service=%q} %s\n", s, f(cum))
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

func f(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
