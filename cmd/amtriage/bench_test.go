package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
func BenchmarkWebhookToPagerDuty(b *testing.B) { benchWebhookToPagerDuty(b, "") }

// benchWebhookToPagerDuty measures webhook to accepted trigger, sequentially,
// for a daemon configured with the PagerDuty fake and extra (more YAML).
func benchWebhookToPagerDuty(b *testing.B, extra string) {
	pd := fakepd.New()
	defer pd.Close()
	pd.SetRateLimit(0, 0) // like events_per_minute below: measure latency, not PagerDuty's throttle
	dir := b.TempDir()
	key := "benchPDroutingKey0123456789abcde"
	if err := os.WriteFile(filepath.Join(dir, "pd-key"), []byte(key), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte("store:\n  path: "+filepath.Join(dir, "data")+"\npagerduty:\n  url: "+pd.URL+"\n  routing_key_file: pd-key\n  events_per_minute: 1000000\n"+extra), 0o600); err != nil {
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

// wideStormBody is one notification of n firing alerts, each of its own
// service: the storm that opens n incidents at once.
func wideStormBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","receiver":"amtriage","groupKey":"{}:{alertname=\"Wide\"}","truncatedAlerts":0,"externalURL":"http://am:9093","alerts":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"Wide","service":"s%06d"},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"%016x"}`, i, i+1)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// BenchmarkWideStorm posts one notification of 50,000 alerts of distinct
// services to a fresh amtriage process (log notifier only) and waits until it
// is processed: 50,000 incidents. It reports the ack and processing time, the
// daemon's peak RSS, and state.db's size per alert.
func BenchmarkWideStorm(b *testing.B) {
	const n = 50000
	body := wideStormBody(n)
	var ack, total time.Duration
	var peakRSS, stateBytes int64
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
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
		peakRSS = max(peakRSS, vmHWM(d.cmd.Process.Pid))
		d.kill(syscall.SIGTERM)
		fi, err := os.Stat(filepath.Join(dir, "data", "state.db"))
		if err != nil {
			b.Fatal(err)
		}
		stateBytes = max(stateBytes, fi.Size())
	}
	b.ReportMetric(float64(ack.Milliseconds())/float64(b.N), "ack-ms")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "processed-ms")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(stateBytes)/n, "state-B/alert")
	b.ReportMetric(float64(len(body))/(1<<20), "payload-MB")
}

// BenchmarkConcurrentLargeBodies posts eight ~20 MB notifications at once
// to a fresh daemon and reports its peak RSS, for the default in-flight
// budget (256 MiB) and a quarter of it. "large-alerts": 2,000 alerts with a
// 10 KB description each, so what the daemon holds is mostly the bodies in
// flight; "many-alerts": storms of 110,000 alerts each, which all become
// open work (880,000 firing alerts kept in memory).
func BenchmarkConcurrentLargeBodies(b *testing.B) {
	kinds := map[string]func(i int) []byte{
		"large-alerts": func(i int) []byte { return largeAlertsBody(fmt.Sprintf("svc-%d", i), 2000, 10<<10) },
		"many-alerts":  func(i int) []byte { return stormBody(fmt.Sprintf("svc-%d", i), 110000, "20%") },
	}
	for _, kind := range []string{"large-alerts", "many-alerts"} {
		bodies := make([][]byte, 8)
		for i := range bodies {
			bodies[i] = kinds[kind](i)
		}
		for _, budget := range []int64{256 << 20, 64 << 20} {
			b.Run(fmt.Sprintf("%s/max_inflight_bytes=%dMiB", kind, budget>>20), func(b *testing.B) {
				var peak int64
				codes := map[int]int{}
				var open float64
				for i := 0; i < b.N; i++ {
					dir := b.TempDir()
					cfg := filepath.Join(dir, "c.yml")
					if err := os.WriteFile(cfg, []byte(fmt.Sprintf("store:\n  path: %s\nintake:\n  max_inflight_bytes: %d\n", filepath.Join(dir, "data"), budget)), 0o600); err != nil {
						b.Fatal(err)
					}
					d := startDaemon(b, cfg, freeAddr(b))
					var mu sync.Mutex
					var wg sync.WaitGroup
					for _, body := range bodies {
						wg.Go(func() {
							code, err := post(context.Background(), d.url("/webhook"), "", body)
							if err != nil {
								code = -1
							}
							mu.Lock()
							codes[code]++
							mu.Unlock()
						})
					}
					wg.Wait()
					for {
						r, err := httpGetJSON(d.url("/readyz"))
						if err == nil && r["inbox_pending"] == float64(0) {
							break
						}
						time.Sleep(20 * time.Millisecond)
					}
					peak = max(peak, vmHWM(d.cmd.Process.Pid))
					for _, inc := range d.incidents() {
						open += float64(inc.AlertsFiring)
					}
					d.kill(syscall.SIGTERM)
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
				b.ReportMetric(float64(codes[200])/float64(b.N), "stored/op")
				b.ReportMetric(float64(codes[503])/float64(b.N), "503/op")
				b.ReportMetric(open/float64(b.N), "open-alerts")
				b.ReportMetric(float64(len(bodies[0]))/(1<<20), "body-MB")
			})
		}
	}
}

// largeAlertsBody is one notification of n alerts of service, each with a
// description of size bytes.
func largeAlertsBody(service string, n, size int) []byte {
	desc := strings.Repeat("x", size)
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","groupKey":"{}:{service=\"` + service + `\"}","truncatedAlerts":0,"alerts":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"PodDown","service":%q,"pod":"p%d"},"annotations":{"error_ratio":"20%%","description":%q},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"%s%05d"}`, service, i, desc, service, i)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// trickle opens a connection that declares a 32 MiB webhook body and sends
// one byte a second until it is cut or ctx ends, then opens another: the
// slow-client attack.
func trickle(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 32<<20)
		for ctx.Err() == nil {
			if _, err := conn.Write([]byte{' '}); err != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		conn.Close()
	}
}

// BenchmarkSlowClientAttack: real webhooks (4 senders, one new notification
// each every 50 ms, for 15 s) against a daemon that 8 clients trickle to at
// one byte a second, each declaring a 32 MiB body, reconnecting when cut.
// The baseline is the same webhooks without the attack, in the same run.
func BenchmarkSlowClientAttack(b *testing.B) {
	for _, attack := range []bool{false, true} {
		name := "baseline"
		if attack {
			name = "8-slow-clients"
		}
		b.Run(name, func(b *testing.B) {
			var ok, total int
			var lat []time.Duration
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				cfg := filepath.Join(dir, "c.yml")
				if err := os.WriteFile(cfg, []byte("store:\n  path: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
					b.Fatal(err)
				}
				d := startDaemon(b, cfg, freeAddr(b))
				ctx, cancel := context.WithCancel(context.Background())
				var attackers sync.WaitGroup
				if attack {
					for range 8 {
						attackers.Go(func() { trickle(ctx, d.addr) })
					}
					time.Sleep(500 * time.Millisecond) // the attack is under way
				}
				var mu sync.Mutex
				var senders sync.WaitGroup
				deadline := time.Now().Add(15 * time.Second)
				for s := range 4 {
					senders.Go(func() {
						for n := 0; time.Now().Before(deadline); n++ {
							start := time.Now()
							code, err := post(context.Background(), d.url("/webhook"), "", stormBody(fmt.Sprintf("svc-%d-%d", s, n), 5, "20%"))
							mu.Lock()
							total++
							if err == nil && code == 200 {
								ok++
								lat = append(lat, time.Since(start))
							}
							mu.Unlock()
							time.Sleep(50 * time.Millisecond)
						}
					})
				}
				senders.Wait()
				cancel()
				attackers.Wait()
				d.kill(syscall.SIGTERM)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(ok)/float64(total), "success-ratio")
			b.ReportMetric(float64(total)/float64(b.N), "webhooks/op")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
