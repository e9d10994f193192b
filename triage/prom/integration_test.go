package prom

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/promtest"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
)

// Short rate windows keep the real-Prometheus tests fast: with 1 s scrapes
// a [5s] window holds ~5 samples and follows a change within ~6 s.
func ratioQuery(service string) string {
	return fmt.Sprintf(`sum(rate(http_requests_total{service=%q,code=~"5.."}[5s])) / sum(rate(http_requests_total{service=%q}[5s]))`, service, service)
}

func p99QueryOf(service string) string {
	return fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service=%q}[5s])))`, service)
}

// TestAgainstRealPrometheus runs the source against Prometheus 2.42 scraping
// simulated services, one per scenario, so that all scenarios converge in
// the same few seconds.
func TestAgainstRealPrometheus(t *testing.T) {
	exporter := func(service string, ratio float64, p99 time.Duration) *promtest.Exporter {
		e := promtest.NewExporter(t, service)
		e.SetErrorRatio(ratio)
		e.SetP99(p99)
		return e
	}
	normal := exporter("api", 0, 100*time.Millisecond) // the latency baseline
	outage := exporter("outage", 0.62, 100*time.Millisecond)
	minor := exporter("minor", 0.07, 100*time.Millisecond)
	slow := exporter("slow", 0, 1200*time.Millisecond)
	falling := exporter("falling", 0.40, 100*time.Millisecond)
	flat := exporter("flat", 0.20, 100*time.Millisecond)
	noise := exporter("noise", 0.002, 100*time.Millisecond) // steady, below the 1% floor
	idle := exporter("idle", 0, 100*time.Millisecond)
	idle.SetRate(0)
	p := promtest.Start(t, normal, outage, minor, slow, falling, flat, noise, idle)

	// All series up, with enough samples for their windows.
	const wait = 20 * time.Second
	for _, e := range []*promtest.Exporter{outage, minor, falling, flat, noise} {
		p.WaitFor(t, ratioQuery(e.Service()), wait, promtest.Near(e.ErrorRatio(), 1e-6))
	}
	p.WaitFor(t, p99QueryOf("slow"), wait, promtest.Near(1.2, 1e-6))
	p.WaitFor(t, p99QueryOf("api"), wait, promtest.Near(0.1, 1e-6))

	src := newSource(t, p.URL(), rules.PrometheusConfig{
		Timeout:     rules.Duration(1500 * time.Millisecond), // not a valid timeout= for Prometheus 2.42
		TrendWindow: rules.Duration(20 * time.Second),        // step 1s
	}, signal.NewMetrics(nil))
	signals := func(t *testing.T, svc *rules.Service) severity.Signals {
		t.Helper()
		sig, err := src.Signals(context.Background(), signal.NewEvaluation(time.Now()), nil, svc)
		if err != nil {
			t.Fatalf("Signals: %v", err)
		}
		return sig
	}
	profile := func(service string) *rules.Service {
		return &rules.Service{Name: service, Queries: rules.ServiceQueries{ErrorRatio: ratioQuery(service)}}
	}
	// waitRecovering polls (the trend needs 3 points) until the recovering
	// signal is known and as wanted.
	waitRecovering := func(t *testing.T, service string, want bool) severity.Bool {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			r := signals(t, profile(service)).Recovering
			if r.Known && r.Value == want {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: recovering = %+v after %s, want known %v", service, r, wait, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	decide := func(sig severity.Signals) severity.Decision {
		return severity.Decide(sig, severity.DefaultThresholds())
	}

	t.Run("62% errors: Sev 1 rule 2", func(t *testing.T) {
		sig := signals(t, profile("outage"))
		if er := sig.ErrorRatio; !er.Known || er.Source != "prometheus" || math.Abs(er.Value-0.62) > 1e-6 {
			t.Fatalf("error_ratio = %+v, want 0.62 [prometheus]", er)
		}
		d := decide(sig)
		if d.Severity != 1 || d.Rule != 2 || d.Reasons[0] != "Q2: 62% of requests failing (> 50%) [prometheus]" {
			t.Fatalf("decision Sev %d rule %d %q, want Sev 1 rule 2", d.Severity, d.Rule, d.Reasons)
		}
	})
	t.Run("7% errors: Sev 3 rule 5", func(t *testing.T) {
		d := decide(signals(t, profile("minor")))
		if d.Severity != 3 || d.Rule != 5 {
			t.Fatalf("decision Sev %d rule %d %q, want Sev 3 rule 5", d.Severity, d.Rule, d.Reasons)
		}
	})
	t.Run("p99 12x the baseline query: Sev 2 rule 4", func(t *testing.T) {
		svc := profile("slow")
		svc.Queries.P99Latency = p99QueryOf("slow")
		svc.Queries.LatencyBaseline = p99QueryOf("api") // the normal latency
		sig := signals(t, svc)
		if !sig.P99Latency.Known || math.Abs(sig.P99Latency.Value-1.2) > 1e-6 || !sig.LatencyBaseline.Known || math.Abs(sig.LatencyBaseline.Value-0.1) > 1e-6 {
			t.Fatalf("p99 %+v baseline %+v, want 1.2s and 0.1s", sig.P99Latency, sig.LatencyBaseline)
		}
		d := decide(sig)
		if d.Severity != 2 || d.Rule != 4 || math.Abs(d.Signals.LatencyFactor.Value-12) > 1e-3 {
			t.Fatalf("decision Sev %d rule %d %q, want Sev 2 rule 4 at 12×", d.Severity, d.Rule, d.Reasons)
		}
	})
	t.Run("default baseline is valid PromQL, and a fresh Prometheus has no day-old data", func(t *testing.T) {
		svc := &rules.Service{Name: "slow", Queries: rules.ServiceQueries{P99Latency: p99QueryOf("slow")}}
		bl := signals(t, svc).LatencyBaseline
		want := "prometheus: query p99_latency 1d earlier returned no data (a new service, or less than 1d of retention?)"
		if bl.Known || bl.Note != want {
			t.Fatalf("baseline = %+v, want note %q", bl, want)
		}
	})
	t.Run("no traffic: NaN", func(t *testing.T) {
		// Wait until the idle exporter's rates are 0/0 (its first scrape
		// may have counted a few simulated requests).
		p.WaitForSeries(t, `sum(rate(http_requests_total{service="idle"}[5s])) == 0`, wait)
		er := signals(t, profile("idle")).ErrorRatio
		if want := "prometheus: query error_ratio returned NaN (no traffic?)"; er.Known || er.Note != want {
			t.Fatalf("error_ratio = %+v, want note %q", er, want)
		}
	})
	t.Run("bad query: bad_data", func(t *testing.T) {
		er := signals(t, &rules.Service{Queries: rules.ServiceQueries{ErrorRatio: `sum(rate(http_requests_total[5s])`}}).ErrorRatio
		if er.Known || !strings.HasPrefix(er.Note, "prometheus: query error_ratio failed: bad_data: ") {
			t.Fatalf("error_ratio = %+v, want a bad_data note", er)
		}
	})
	t.Run("several series", func(t *testing.T) {
		er := signals(t, &rules.Service{Queries: rules.ServiceQueries{ErrorRatio: `http_requests_total{service="flat"}`}}).ErrorRatio
		if want := "prometheus: query error_ratio returned 2 series, want 1 (aggregate it with sum(...))"; er.Known || er.Note != want {
			t.Fatalf("error_ratio = %+v, want note %q", er, want)
		}
	})
	t.Run("flat: not recovering", func(t *testing.T) {
		r := waitRecovering(t, "flat", false)
		if r.Source != "prometheus trend" {
			t.Fatalf("recovering = %+v", r)
		}
		t.Logf("flat: %s", r.Note)
	})
	t.Run("flat below the impact floor: no impact to recover from, Sev 4", func(t *testing.T) {
		// The window must hold the points a trend needs before the
		// answer means anything.
		var sig severity.Signals
		for deadline := time.Now().Add(wait); ; time.Sleep(200 * time.Millisecond) {
			sig = signals(t, profile("noise"))
			if !strings.Contains(sig.Recovering.Note, "points, want") || time.Now().After(deadline) {
				break
			}
		}
		if r := sig.Recovering; r.Known || !strings.Contains(r.Note, "no impact to recover from") {
			t.Fatalf("recovering = %+v, want unknown with no impact to recover from", r)
		}
		sig.AlertSeverity = "warning"
		d := decide(sig)
		if d.Severity != 4 || d.Rule != 12 {
			t.Fatalf("decision Sev %d rule %d %q, want Sev 4 rule 12 (0.2%% is noise, not staying broken)", d.Severity, d.Rule, d.Reasons)
		}
	})
	t.Run("error ratio query empty beside a healthy probe: rule 13 from the label", func(t *testing.T) {
		svc := &rules.Service{Name: "gone", Queries: rules.ServiceQueries{ErrorRatio: ratioQuery("gone")}} // no such series
		sig := signals(t, svc)
		if sig.ErrorRatio.Known {
			t.Fatalf("error_ratio = %+v, want unknown", sig.ErrorRatio)
		}
		sig.Reachable = severity.Bool{Known: true, Value: true, Source: "probe"}
		sig.AlertSeverity = "critical"
		d := decide(sig)
		if d.Severity != 2 || d.Rule != 13 {
			t.Fatalf("decision Sev %d rule %d %q, want Sev 2 rule 13 (Q2 unanswered)", d.Severity, d.Rule, d.Reasons)
		}
		all := strings.Join(d.Reasons, "\n")
		for _, want := range []string{"error ratio unknown, so Q2 is unanswered", "reachable=true [probe]", "error_ratio unknown: prometheus: query error_ratio returned no data"} {
			if !strings.Contains(all, want) {
				t.Errorf("reasons lack %q:\n%s", want, all)
			}
		}
	})
	t.Run("high then lowered: recovering", func(t *testing.T) {
		before := waitRecovering(t, "falling", false)
		t.Logf("before: %s", before.Note)
		falling.SetErrorRatio(0.06)
		p.WaitFor(t, ratioQuery("falling"), wait, promtest.Near(0.06, 1e-6))
		after := waitRecovering(t, "falling", true)
		t.Logf("after: %s", after.Note)
		if after.Source != "prometheus trend" || !strings.HasPrefix(after.Note, "error ratio 40% → ") {
			t.Fatalf("recovering = %+v", after)
		}
		d := decide(signals(t, profile("falling")))
		if d.Severity != 3 || d.Rule != 5 { // 6% errors still decide before the trend
			t.Fatalf("decision Sev %d rule %d %q", d.Severity, d.Rule, d.Reasons)
		}
	})
}

// TestFailedRequestsAgainstRealPrometheus: the closure message's impact is
// the request rate × error ratio integrated over the incident.
func TestFailedRequestsAgainstRealPrometheus(t *testing.T) {
	e := promtest.NewExporter(t, "shop")
	e.SetErrorRatio(0.5)
	e.SetRate(20)
	p := promtest.Start(t, e)
	requests := `sum(rate(http_requests_total{service="shop"}[5s]))`
	p.WaitFor(t, ratioQuery("shop"), 20*time.Second, promtest.Near(0.5, 1e-6))
	p.WaitFor(t, requests, 20*time.Second, promtest.Near(20, 1))
	// Ten seconds of steady traffic to integrate: the rate's 5 s window
	// is full of it (1 s scrapes) for the whole range asked below.
	p.WaitFor(t, `min_over_time(`+requests+`[10s:1s])`, 30*time.Second, func(v float64) bool { return v > 19 })
	src := newSource(t, p.URL(), rules.PrometheusConfig{Timeout: rules.Duration(2 * time.Second), TrendWindow: rules.Duration(20 * time.Second)}, signal.NewMetrics(nil))
	svc := &rules.Service{Name: "shop", Queries: rules.ServiceQueries{ErrorRatio: ratioQuery("shop"), Requests: requests}}
	end := time.Now()
	failed, ok, why := src.FailedRequests(context.Background(), signal.NewEvaluation(end), svc, end.Add(-100*time.Second), end)
	// 20 requests/s, half failing, for 10 s: ~100.
	if !ok || failed < 70 || failed > 130 {
		t.Errorf("failed = %v ok=%v %s, want ~100", failed, ok, why)
	}
	svc.Queries.Requests = ""
	if _, ok, why := src.FailedRequests(context.Background(), signal.NewEvaluation(end), svc, end.Add(-10*time.Second), end); ok || why == "" {
		t.Errorf("without a requests query: ok=%v %q", ok, why)
	}
}
