package promtest

import (
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// quantile is Prometheus's histogram_quantile over cumulative buckets
// (bounds plus +Inf), for the shares distribution returns.
func quantile(q float64, shares []float64) float64 {
	cum := make([]float64, len(shares))
	var c float64
	for i, s := range shares {
		c += s
		cum[i] = c
	}
	rank := q * cum[len(cum)-1]
	b := 0
	for b < len(cum)-1 && cum[b] < rank {
		b++
	}
	if b == len(Buckets) {
		return Buckets[len(Buckets)-1]
	}
	lo, below := 0.0, 0.0
	if b > 0 {
		lo, below = Buckets[b-1], cum[b-1]
	}
	return lo + (Buckets[b]-lo)*(rank-below)/(cum[b]-below)
}

func TestDistributionGivesTheP99(t *testing.T) {
	for _, p := range []float64{0.001, 0.0012, 0.1, 0.1000001, 0.25, 0.35, 1, 1.2, 2.5, 7, 59.9} {
		d := distribution(p)
		var total float64
		for _, s := range d {
			if s < 0 {
				t.Fatalf("p=%v: negative share %v", p, d)
			}
			total += s
		}
		if math.Abs(total-1) > 1e-12 {
			t.Fatalf("p=%v: shares sum to %v", p, total)
		}
		if got := quantile(0.99, d); math.Abs(got-p) > 1e-9*max(1, p) {
			t.Errorf("p=%v: histogram_quantile(0.99) = %v", p, got)
		}
	}
}

func TestExporterExposition(t *testing.T) {
	e := NewExporter(t, "api")
	e.SetErrorRatio(0.25)
	e.SetP99(350 * time.Millisecond)
	time.Sleep(20 * time.Millisecond) // let some simulated traffic accumulate
	resp, err := http.Get(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		"# TYPE http_requests_total counter\n",
		`http_requests_total{service="api",code="200"} `,
		`http_requests_total{service="api",code="500"} `,
		"# TYPE http_request_duration_seconds histogram\n",
		`http_request_duration_seconds_bucket{service="api",le="0.25"} `,
		`http_request_duration_seconds_bucket{service="api",le="+Inf"} `,
		`http_request_duration_seconds_count{service="api"} `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q:\n%s", want, text)
		}
	}
	if e.Scrapes() != 1 || e.ErrorRatio() != 0.25 || e.P99() != 350*time.Millisecond || e.Rate() != DefaultRate {
		t.Errorf("settings: scrapes %d ratio %v p99 %v rate %v", e.Scrapes(), e.ErrorRatio(), e.P99(), e.Rate())
	}
}

func TestRealPrometheusScrapesTheExporter(t *testing.T) {
	api := NewExporter(t, "api")
	api.SetErrorRatio(0.25)
	api.SetP99(350 * time.Millisecond)
	p := Start(t, api, NewExporter(t, "idle"))
	p.Exporter(t, "idle").SetRate(0)

	ratio := p.WaitFor(t, `sum(rate(http_requests_total{service="api",code=~"5.."}[5s])) / sum(rate(http_requests_total{service="api"}[5s]))`,
		20*time.Second, Near(0.25, 1e-6))
	p99 := p.WaitFor(t, `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="api"}[5s])))`,
		20*time.Second, Near(0.35, 1e-6))
	t.Logf("error ratio %v, p99 %vs after %d scrapes", ratio, p99, api.Scrapes())
	if !strings.HasPrefix(p.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q is not loopback", p.URL())
	}
}
