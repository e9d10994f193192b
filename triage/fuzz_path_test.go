package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/payloads"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store"
)

// pathDaemon is one daemon per fuzzing process, reopened on its store every
// 25 inputs (what a restart reads back is checked too) and replaced by a
// fresh one every 100 so the state stays small: inputs meet the state
// earlier ones left.
var pathDaemon struct {
	sync.Mutex
	root string // the fuzz target's temporary directory
	d    *Daemon
	dir  string
	uses int
}

func newPathDaemon(t *testing.T, dir string) *Daemon {
	cfg := rules.Default()
	cfg.Store.Path = dir
	cfg.Intake.MaxBodyBytes = 4 << 20
	d, err := NewDaemon(cfg, Options{Log: slog.New(slog.DiscardHandler), Notifiers: []notify.Notifier{&discardNotifier{}}})
	if err != nil {
		t.Fatalf("(re)opening the daemon on its store: %v", err)
	}
	return d
}

func fuzzDaemon(t *testing.T) *Daemon {
	pathDaemon.Lock()
	defer pathDaemon.Unlock()
	pathDaemon.uses++
	switch {
	case pathDaemon.d == nil || pathDaemon.uses > 100:
		if pathDaemon.d != nil {
			pathDaemon.d.Close()
			os.RemoveAll(pathDaemon.dir)
		}
		dir, err := os.MkdirTemp(pathDaemon.root, "store-")
		if err != nil {
			t.Fatal(err)
		}
		pathDaemon.d, pathDaemon.dir, pathDaemon.uses = newPathDaemon(t, dir), dir, 1
	case pathDaemon.uses%25 == 0:
		pathDaemon.d.Close()
		pathDaemon.d = newPathDaemon(t, pathDaemon.dir)
	}
	return pathDaemon.d
}

// fuzzSetup points the daemons of this process at a directory the testing
// package removes once the fuzz target ends.
func fuzzSetup(f *testing.F) {
	pathDaemon.Lock()
	defer pathDaemon.Unlock()
	pathDaemon.root = f.TempDir()
	f.Cleanup(func() {
		pathDaemon.Lock()
		defer pathDaemon.Unlock()
		if pathDaemon.d != nil {
			pathDaemon.d.Close()
		}
		pathDaemon.d, pathDaemon.uses = nil, 0
	})
}

// checkWebhookPath posts body to the daemon's handler and checks the
// promise of a 200: the notification is processed, nothing is left pending,
// nothing is dead-lettered (that would mean intake let through what
// processing cannot take), and the state it left reads back.
func checkWebhookPath(t *testing.T, body []byte) {
	d := fuzzDaemon(t)
	before := d.store.DeadLetterCounts()[store.InboxQueue]
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(body)))
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, req)
	switch rec.Code {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%d with a body that is not JSON: %q", rec.Code, rec.Body.String())
		}
		return
	default:
		t.Fatalf("answered %d %s: a webhook is stored (200) or refused as bad input (4xx)", rec.Code, rec.Body.String())
	}
	if err := d.pipeline.Drain(context.Background()); err != nil {
		t.Fatalf("200, then processing failed: %v", err)
	}
	if n := d.pipeline.Pending(); n != 0 {
		t.Fatalf("200, then %d notifications still pending", n)
	}
	if dead := d.store.DeadLetterCounts()[store.InboxQueue]; dead != before {
		list, _, _ := d.store.DeadLetters(1)
		t.Fatalf("200, then dead-lettered: %s", list[0].Error)
	}
	if why := d.pipeline.Stuck(); why != "" {
		t.Fatalf("200, then not ready: %s", why)
	}
	if _, err := d.store.LoadState(); err != nil {
		t.Fatalf("200, then the state does not read back: %v", err)
	}
	if err := d.pipeline.Sweep(); err != nil {
		t.Fatalf("200, then the sweep failed: %v", err)
	}
	// What was queued for the receiver reads back, and is acknowledged.
	for {
		env, _, _, err := d.store.Next("discard", time.Now().Add(time.Hour), nil)
		if err != nil {
			t.Fatalf("200, then the outbox does not read back: %v", err)
		}
		if env == nil {
			break
		}
		if err := d.store.Ack("discard", env.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if dead := d.store.DeadLetterCounts()["discard"]; dead != 0 {
		t.Fatalf("200, then an event could not be read back: %d dead-lettered", dead)
	}
}

// FuzzWebhookPath fuzzes whole bodies through intake and processing.
func FuzzWebhookPath(f *testing.F) {
	fuzzSetup(f)
	for _, file := range payloads.Files(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X"},"startsAt":"9999-12-31T23:59:59-23:59"}]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"0001-01-01T00:00:01Z","endsAt":"9999-12-31T23:59:59Z"}]}`,
		`{"version":"4","groupKey":"g","truncatedAlerts":0,"alerts":[{"status":"resolved","labels":{"service":"s"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"@@"}]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{"service":"\u0000"},"annotations":{"error_ratio":"1e308%","p99_latency":"9223372036s","latency_factor":"NaN"},"startsAt":"2026-01-01T00:00:00Z"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkWebhookPath(t, body) })
}

// FuzzWebhookFields fuzzes the values of a well-formed notification, which
// raw bytes rarely reach: what a sender may put in every field it controls.
func FuzzWebhookFields(f *testing.F) {
	fuzzSetup(f)
	f.Add("4dbfc38214eb5646", "2026-11-23T19:20:45Z", "0001-01-01T00:00:00Z", "firing", "service", "api", "error_ratio", "62%", "{}:{}", true, uint8(1))
	f.Add("", "9999-12-31T23:59:59+23:59", "9999-12-31T23:59:59Z", "resolved", "namespace", "", "p99_latency", "1e400s", "", false, uint8(3))
	f.Add("x@y", "2026-11-23T19:20:45.999999999-12:00", "", "firing", "job", "a\"b", "reachable", "false", "g", true, uint8(0))
	f.Add(strings.Repeat("f", 129), "1970-01-01T00:00:00Z", "", "firing", "", "s", "impact", "none", "g", true, uint8(2))
	f.Fuzz(func(t *testing.T, fp, startsAt, endsAt, status, labelName, labelValue, annName, annValue, groupKey string, complete bool, n uint8) {
		alerts := make([]map[string]any, 0, int(n%8))
		for i := range int(n % 8) {
			a := map[string]any{
				"status": status, "startsAt": startsAt,
				"labels":      map[string]string{"alertname": fmt.Sprintf("A%d", i%3), labelName: labelValue},
				"annotations": map[string]string{annName: annValue, "summary": labelValue},
			}
			if endsAt != "" {
				a["endsAt"] = endsAt
			}
			if fp != "" {
				a["fingerprint"] = fmt.Sprintf("%s%d", fp, i%2) // some occurrences repeat
			}
			alerts = append(alerts, a)
		}
		truncated := 0
		if !complete {
			truncated = 1
		}
		body, err := json.Marshal(map[string]any{
			"version": "4", "status": status, "receiver": "r", "groupKey": groupKey, "truncatedAlerts": truncated,
			"externalURL": "http://am:9093", "alerts": alerts,
		})
		if err != nil {
			t.Skip() // not representable as JSON: nothing a sender can send
		}
		checkWebhookPath(t, body)
		// The same notification again is a redelivery: it must be as safe.
		checkWebhookPath(t, body)
	})
}
