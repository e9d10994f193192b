package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashPayloads builds a workload: services × payloads, each payload with
// alertsPer distinct firing alerts. One alert per service is Sev 1 so every
// incident's decisive alert is the same whatever the arrival order.
func crashPayloads(services, perService, alertsPer int, status string) [][]byte {
	base := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	var out [][]byte
	for s := 0; s < services; s++ {
		svc := fmt.Sprintf("svc-%02d", s)
		for p := 0; p < perService; p++ {
			var alerts []map[string]any
			for a := 0; a < alertsPer; a++ {
				ratio := "7%" // Sev 3, rule 5
				if p == 0 && a == 0 {
					ratio = "62%" // Sev 1, rule 2
				}
				alert := map[string]any{
					"status":      status,
					"labels":      map[string]string{"alertname": "Errors", "service": svc, "pod": fmt.Sprintf("%s-%d-%d", svc, p, a)},
					"annotations": map[string]string{"error_ratio": ratio, "summary": svc + " failing"},
					"startsAt":    base.Add(time.Duration(p*alertsPer+a) * time.Second).Format(time.RFC3339Nano),
					"endsAt":      "0001-01-01T00:00:00Z",
				}
				if status == "resolved" {
					alert["endsAt"] = base.Add(time.Hour).Format(time.RFC3339Nano)
				}
				alerts = append(alerts, alert)
			}
			body, _ := json.Marshal(map[string]any{
				"version": "4", "status": status, "receiver": "amtriage", "externalURL": "http://am:9093",
				"groupKey":        fmt.Sprintf(`{}:{service="%s", pod_group="%d"}`, svc, p),
				"truncatedAlerts": 0, "alerts": alerts,
				"groupLabels": map[string]string{"service": svc}, "commonLabels": map[string]string{"service": svc},
				"commonAnnotations": map[string]string{},
			})
			out = append(out, body)
		}
	}
	return out
}

// sendAll posts payloads from 16 workers; it returns which were acknowledged.
// stopAfter > 0 calls onAcks once that many have been acknowledged.
func sendAll(d *daemon, payloads [][]byte, stopAfter int64, onAcks func()) []bool {
	acked := make([]bool, len(payloads))
	var n atomic.Int64
	var once sync.Once
	idx := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for i := range idx {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				code, err := post(ctx, d.url("/webhook"), "", payloads[i])
				cancel()
				if err == nil && code == 200 {
					acked[i] = true
					if n.Add(1) == stopAfter {
						once.Do(onAcks)
					}
				}
			}
		})
	}
	for i := range payloads {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return acked
}

func waitProcessed(t *testing.T, d *daemon) {
	t.Helper()
	waitFor(t, 30*time.Second, "inbox drained", func() bool {
		resp, err := httpGetJSON(d.url("/readyz"))
		return err == nil && resp["inbox_pending"] == float64(0)
	})
}

func httpGetJSON(url string) (map[string]any, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// comparable strips what legitimately depends on arrival order (the id
// hashes the first occurrence seen) and sorts.
func comparable(incs []incidentJSON) []incidentJSON {
	out := append([]incidentJSON(nil), incs...)
	for i := range out {
		out[i].ID = ""
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// TestSIGKILLLosesNothing kills the daemon with SIGKILL while 16 clients post,
// restarts it on the same store, redelivers what was not acknowledged (as
// Alertmanager does) plus some that were, and requires the final incidents to
// equal those of a run that never crashed.
func TestSIGKILLLosesNothing(t *testing.T) {
	const services, perService, alertsPer = 12, 10, 5
	firing := crashPayloads(services, perService, alertsPer, "firing")
	resolved := crashPayloads(services, perService, alertsPer, "resolved")[:perService*3] // svc-00..02 resolve

	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+filepath.Join(dir, "data")+"\n")
	addr := freeAddr(t)

	first := startDaemon(t, cfg, addr)
	var killErr error
	acked := sendAll(first, firing, int64(len(firing)/2), func() { killErr = first.kill(syscall.SIGKILL) })
	if killErr == nil {
		t.Fatalf("SIGKILL: process exited cleanly, want killed")
	}
	nAcked := 0
	for _, a := range acked {
		if a {
			nAcked++
		}
	}
	if nAcked < len(firing)/2 || nAcked == len(firing) {
		t.Fatalf("%d of %d acknowledged before the kill; the test needs a kill mid-stream", nAcked, len(firing))
	}
	t.Logf("killed after %d of %d payloads acknowledged", nAcked, len(firing))

	second := startDaemon(t, cfg, addr)
	var redeliver [][]byte
	for i, a := range acked {
		if !a || i%3 == 0 { // unacknowledged, plus a third of the acknowledged again
			redeliver = append(redeliver, firing[i])
		}
	}
	for _, ok := range sendAll(second, redeliver, 0, nil) {
		if !ok {
			t.Fatal("redelivery not acknowledged")
		}
	}
	waitProcessed(t, second)
	sendAll(second, resolved, 0, nil)
	waitProcessed(t, second)
	got := comparable(second.incidents())

	refDir := t.TempDir()
	refCfg := writeFile(t, filepath.Join(refDir, "amtriage.yml"), "store:\n  path: "+filepath.Join(refDir, "data")+"\n")
	ref := startDaemon(t, refCfg, freeAddr(t))
	sendAll(ref, firing, 0, nil)
	waitProcessed(t, ref)
	sendAll(ref, resolved, 0, nil)
	waitProcessed(t, ref)
	want := comparable(ref.incidents())

	if len(want) != services-3 {
		t.Fatalf("reference run has %d open incidents, want %d", len(want), services-3)
	}
	for _, inc := range want {
		if inc.AlertsFiring != perService*alertsPer || inc.Severity != 1 || inc.Rule != 2 {
			t.Fatalf("reference incident %s: %d firing, Sev %d rule %d; want %d, 1, 2", inc.Service, inc.AlertsFiring, inc.Severity, inc.Rule, perService*alertsPer)
		}
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("after SIGKILL and restart the incidents differ from an uninterrupted run\n got: %s\nwant: %s", tail(string(gj), 3000), tail(string(wj), 3000))
	}
	// Every service was opened at least once and, at-least-once delivery
	// aside, at most twice (a kill between a log line and its ack).
	openedCounts := func() map[any]int {
		counts := map[any]int{}
		for _, out := range []string{first.stdout.String(), second.stdout.String()} {
			for _, e := range eventLines(t, out, "incident opened") {
				counts[e["service"]]++
			}
		}
		return counts
	}
	// Log lines follow the state through the outbox: wait for them.
	waitFor(t, 10*time.Second, "every service's opened line", func() bool { return len(openedCounts()) == services })
	counts := openedCounts()
	for s := 0; s < services; s++ {
		if c := counts[fmt.Sprintf("svc-%02d", s)]; c < 1 || c > 2 {
			t.Errorf("svc-%02d opened %d times in the log notifier, want 1 (at most 2 across the crash)", s, c)
		}
	}
	if err := second.kill(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
}

// TestSIGTERMDrainsInFlight sends SIGTERM while clients post: the daemon
// exits cleanly, answers only 200 or 503 meanwhile, and every notification it
// acknowledged is there after a restart.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	firing := crashPayloads(40, 5, 2, "firing")
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+filepath.Join(dir, "data")+"\n")
	addr := freeAddr(t)
	d := startDaemon(t, cfg, addr)

	var mu sync.Mutex
	codes := map[int]int{}
	acked := make([]bool, len(firing))
	var n atomic.Int64
	var exitErr error
	var once sync.Once
	idx := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := range idx {
				code, err := post(context.Background(), d.url("/webhook"), "", firing[i])
				if err != nil {
					continue // refused once the listener closed: never acknowledged
				}
				mu.Lock()
				codes[code]++
				acked[i] = code == 200
				mu.Unlock()
				if n.Add(1) == int64(len(firing)/3) {
					go once.Do(func() { exitErr = d.kill(syscall.SIGTERM) })
				}
			}
		})
	}
	for i := range firing {
		idx <- i
	}
	close(idx)
	wg.Wait()
	once.Do(func() {}) // the kill has been started
	waitFor(t, 30*time.Second, "amtriage exit", func() bool { return d.cmd.ProcessState != nil })
	if exitErr != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", exitErr, d.stderr.String())
	}
	for code := range codes {
		if code != 200 && code != 503 {
			t.Errorf("answered %d during shutdown; want only 200 or 503 (%v)", code, codes)
		}
	}
	want := map[string]int{}
	for i, ok := range acked {
		if ok {
			want[fmt.Sprintf("svc-%02d", i/5)] += 2
		}
	}
	again := startDaemon(t, cfg, addr)
	waitProcessed(t, again)
	got := map[string]int{}
	for _, inc := range again.incidents() {
		got[inc.Service] = inc.AlertsFiring
	}
	for svc, w := range want {
		if got[svc] < w {
			t.Errorf("%s: %d alerts after restart, but %d were acknowledged", svc, got[svc], w)
		}
	}
	t.Logf("answers during shutdown: %v", codes)
}
