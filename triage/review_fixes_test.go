package triage

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/store/boltstore"
)

// Messages cached after the pipeline already decoded the same entry itself
// must not stay behind: under load the cache would fill and pin memory.
func TestDecodedCacheDrainsUnderConcurrentLoad(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for i := 0; i < 40; i++ {
				body := alertPayload("svc", "firing", start.Add(time.Duration(w*1000+i)*time.Second))
				if code := h.postFromGoroutine(body); code != http.StatusOK {
					t.Errorf("post: %d", code)
				}
			}
		})
	}
	wg.Wait()
	h.settle()
	p := h.d.Pipeline()
	p.decodedMu.Lock()
	n, bytes := len(p.decoded), p.decodedBytes
	p.decodedMu.Unlock()
	if n != 0 || bytes != 0 {
		t.Fatalf("decoded cache holds %d messages (%d bytes) after everything was processed", n, bytes)
	}
	if got := len(p.OpenIncidents()); got != 1 {
		t.Fatalf("%d incidents, want 1", got)
	}
}

// If inbox.db is deleted (to reclaim space after a storm), new webhooks must
// not reuse sequences state.db has already processed, or they are skipped.
func TestRecreatedInboxKeepsSequencesAhead(t *testing.T) {
	cfg := testConfig(t)
	first := servingHarness(t, cfg)
	first.mustPost(alertPayload("a", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	first.mustPost(alertPayload("b", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	first.settle()
	first.stop()
	if err := os.Remove(filepath.Join(cfg.Store.Path, boltstore.InboxFile)); err != nil {
		t.Fatal(err)
	}
	second := servingHarness(t, cfg)
	second.mustPost(alertPayload("c", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	second.settle()
	services := map[string]bool{}
	for _, inc := range second.d.Pipeline().OpenIncidents() {
		services[inc.Service] = true
	}
	if !services["c"] || len(services) != 3 {
		t.Fatalf("open incidents for %v; the webhook after the inbox was recreated was lost", services)
	}
	if p := second.d.Pipeline().Pending(); p != 0 {
		t.Fatalf("Pending() = %d after settling", p)
	}
}

// A cancelled drain stops between chunks; what is left stays in the inbox.
func TestDrainStopsWhenCancelled(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	h.mustPost(alertPayload("a", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)), "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.d.Pipeline().Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if p := h.d.Pipeline().Pending(); p != 1 {
		t.Fatalf("Pending() = %d after a cancelled drain, want 1", p)
	}
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := h.d.Pipeline().Pending(); p != 0 {
		t.Fatalf("Pending() = %d after a drain, want 0", p)
	}
}

// Bodies in flight are bounded in bytes: past the budget, 503 before the body
// is read; a declared length over the limit is refused without reading.
func TestWebhookInflightBudget(t *testing.T) {
	cfg := testConfig(t)
	body := alertPayload("a", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC))
	cfg.Intake.MaxBodyBytes = int64(len(body)) + 100
	cfg.Intake.MaxInflightBytes = cfg.Intake.MaxBodyBytes
	h := handlerHarness(t, cfg)
	budget := h.d.api.Inflight
	if !budget.TryAcquire(200) { // another request holding part of the budget
		t.Fatal("budget empty at start")
	}
	res := h.post(body, "")
	if res.code != http.StatusServiceUnavailable {
		t.Fatalf("with the budget taken: %d, want 503", res.code)
	}
	assertErrorBody(t, res, "in flight")
	budget.Release(200)
	if res := h.post(body, ""); res.code != http.StatusOK {
		t.Fatalf("with the budget free: %d %s, want 200", res.code, res.body)
	}
	if !budget.TryAcquire(cfg.Intake.MaxInflightBytes) {
		t.Fatal("budget not fully released after the requests")
	}
}

// The pipeline's sweep emits the runbook's status updates for open Sev 1
// incidents through the outbox (every 2 minutes by default).
func TestSweepEmitsStatusUpdates(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	body := alertPayload("api", "firing", time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC))
	body = []byte(strings.Replace(string(body), `"annotations":{`, `"annotations":{"reachable":"false",`, 1))
	h.mustPost(body, "")
	h.settle()
	if k := h.rec.kinds(); len(k) != 1 || k[0] != incident.Opened {
		t.Fatalf("events %v, want one opened", k)
	}
	p := h.d.Pipeline()
	p.mu.Lock()
	p.now = func() time.Time { return time.Now().Add(3 * time.Minute) }
	p.mu.Unlock()
	if err := p.Sweep(); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if k := h.rec.kinds(); len(k) != 2 || k[1] != incident.StatusUpdate {
		t.Fatalf("events %v, want opened then status_update", k)
	}
}
