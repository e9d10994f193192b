package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
)

// BenchmarkWebhookToPagerDutyWithEvidence is BenchmarkWebhookToPagerDuty
// with an evidence source configured (a Prometheus answering no data): on
// a branch with evidence every Sev 1 page is followed by an evidence
// write to state.db, which must not slow the next page. On main the same
// configuration measures the same paging path without it.
func BenchmarkWebhookToPagerDutyWithEvidence(b *testing.B) {
	pd := fakepd.New()
	defer pd.Close()
	pd.SetRateLimit(0, 0)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		typ := "vector"
		if r.URL.Path == "/api/v1/query_range" {
			typ = "matrix"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":%q,"result":[]}}`, typ)
	}))
	defer prom.Close()
	dir := b.TempDir()
	key := "benchPDroutingKey0123456789abcde"
	if err := os.WriteFile(filepath.Join(dir, "pd-key"), []byte(key), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte("store:\n  path: "+filepath.Join(dir, "data")+"\npagerduty:\n  url: "+pd.URL+
		"\n  routing_key_file: pd-key\n  events_per_minute: 1000000\nprometheus:\n  url: "+prom.URL+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	d := startDaemon(b, cfg, freeAddr(b))
	defer d.kill(syscall.SIGTERM)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := stormBody(fmt.Sprintf("svc-%06d", i), 1, "62%")
		start := time.Now()
		if code, err := post(context.Background(), d.url("/webhook"), "", body); err != nil || code != 200 {
			b.Fatalf("post: %d %v", code, err)
		}
		for len(pd.OpenAlerts()) != i+1 {
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
