package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
)

// stormPayload is one notification with n firing alerts of one service.
func stormPayload(n int) []byte {
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC).Format(time.RFC3339Nano)
	alerts := make([]map[string]any, n)
	for i := range alerts {
		alerts[i] = map[string]any{
			"status": "firing", "startsAt": start, "endsAt": "0001-01-01T00:00:00Z",
			"labels": map[string]string{"alertname": "PodDown", "service": "api", "namespace": "shop",
				"pod": fmt.Sprintf("api-%05d", i), "severity": "critical"},
			"annotations": map[string]string{"summary": "api pod down", "error_ratio": strconv.Itoa(i%70) + "%",
				"runbook_url": "https://runbooks.example.com/api/PodDown"},
			"generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": fmt.Sprintf("%016x", i+1),
		}
	}
	body, _ := json.Marshal(map[string]any{"version": "4", "status": "firing", "receiver": "amtriage",
		"groupKey": `{}:{alertname="PodDown"}`, "truncatedAlerts": 0, "externalURL": "http://am:9093",
		"groupLabels": map[string]string{"alertname": "PodDown"}, "commonLabels": map[string]string{},
		"commonAnnotations": map[string]string{}, "alerts": alerts})
	return body
}

// BenchmarkStormProcess posts one 10,000-alert notification to a fresh
// amtriage process and waits until it is one incident: acknowledgement and
// processing time, and the process's peak resident memory (VmHWM) as the
// kernel measured it, including the Go runtime's own.
func BenchmarkStormProcess(b *testing.B) {
	body := stormPayload(10000)
	var ack, total time.Duration
	var peakRSS int64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		cfg := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(cfg, []byte("store:\n  path: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		d := startDaemon(b, cfg, freeAddr(b))
		start := time.Now()
		code, err := post(context.Background(), d.url("/webhook"), "", body)
		if err != nil || code != 200 {
			b.Fatalf("post: %d %v", code, err)
		}
		ack += time.Since(start)
		for {
			r, err := httpGetJSON(d.url("/readyz"))
			if err == nil && r["inbox_pending"] == float64(0) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		elapsed := time.Since(start)
		peakRSS = max(peakRSS, vmHWM(d.cmd.Process.Pid))
		if incs := d.incidents(); len(incs) != 1 || incs[0].AlertsFiring != 10000 {
			b.Fatalf("want one incident with 10000 alerts, got %d incidents", len(incs))
		}
		total += elapsed
		d.kill(syscall.SIGTERM)
	}
	b.ReportMetric(float64(ack.Milliseconds())/float64(b.N), "ack-ms")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "processed-ms")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(len(body))/(1<<20), "payload-MB")
}

func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkWebhookToPagerDuty measures, through a real amtriage process, the
// time from posting a Sev 1 webhook to the local PagerDuty API accepting the
// trigger: acknowledgement, triage, the state commit, the outbox and the
// Events API call. One new incident per iteration, sequentially.
func BenchmarkWebhookToPagerDuty(b *testing.B) {
	pd := fakepd.New()
	defer pd.Close()
	pd.SetRateLimit(0, 0) // like events_per_minute below: measure latency, not PagerDuty's throttle
	dir := b.TempDir()
	key := "benchPDroutingKey0123456789abcde"
	if err := os.WriteFile(filepath.Join(dir, "pd-key"), []byte(key), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte("store:\n  path: "+filepath.Join(dir, "data")+"\npagerduty:\n  url: "+pd.URL+"\n  routing_key_file: pd-key\n  events_per_minute: 1000000\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	d := startDaemon(b, cfg, freeAddr(b))
	defer d.kill(syscall.SIGTERM)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		svc := fmt.Sprintf("svc-%06d", i)
		body := stormBody(svc, 1, "62%")
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
