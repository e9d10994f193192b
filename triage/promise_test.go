package triage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/amtriage/amtriage/view"
	"io"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/triage/signal"
)

// The inputs that used to be answered 200 and then failed every commit,
// retried forever, while every later notification waited behind them: they
// are refused at intake naming the field, and the next notification is
// processed.
func TestInputsTheStoreCannotHoldAreRefused(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	alert := func(fields string) []byte {
		return []byte(`{"version":"4","status":"firing","receiver":"r","groupKey":"g","alerts":[{"status":"firing","labels":{"alertname":"X","service":"s"},` + fields + `}]}`)
	}
	for _, tc := range []struct {
		name, field string
		body        []byte
	}{
		{"year 10000 in UTC", "startsAt", alert(`"startsAt":"9999-12-31T23:59:59-23:59","fingerprint":"abc"`)},
		{"40 KB fingerprint", "fingerprint", alert(`"startsAt":"2026-01-01T00:00:00Z","fingerprint":"` + strings.Repeat("f", 40000) + `"`)},
	} {
		res := h.post(tc.body, "")
		if res.code != http.StatusBadRequest {
			t.Fatalf("%s: POST = %d %s, want 400", tc.name, res.code, res.body)
		}
		assertErrorBody(t, res, tc.field)
	}
	h.mustPost(alertPayload("api", "firing", time.Now().Add(-time.Minute)), "")
	h.settle()
	if open := h.d.Pipeline().OpenIncidents(); len(open) != 1 || open[0].Service != "api" {
		t.Fatalf("open incidents %+v, want the api incident", open)
	}
}

// panickyEnricher diagnoses like a buggy diagnosis would: it panics for
// alerts of the service named boom while armed.
type panickyEnricher struct{ armed atomic.Bool }

func (e *panickyEnricher) Diagnose(_ context.Context, _ *signal.Evaluation, a *template.Alert, _ *rules.Service, _ severity.Decision) *diagnosis.Diagnosis {
	if a.Labels["service"] == "boom" && e.armed.Load() {
		panic("diagnosis bug")
	}
	return &diagnosis.Diagnosis{Category: diagnosis.Application, Summary: "ok"}
}

type deadLetterList struct {
	DeadLetters []store.DeadLetter `json:"dead_letters"`
	Total       int                `json:"total"`
}

func (h *harness) deadLetters() deadLetterList {
	h.t.Helper()
	res := h.do(http.MethodGet, "/api/deadletters", nil, h.authHeader())
	if res.code != http.StatusOK {
		h.t.Fatalf("GET /api/deadletters = %d %s", res.code, res.body)
	}
	var l deadLetterList
	if err := json.Unmarshal(res.body, &l); err != nil {
		h.t.Fatal(err)
	}
	return l
}

// A notification whose processing fails deterministically (here a panic in
// the diagnosis) is tried a bounded number of times, then dead-lettered:
// listed, counted in a metric, replayable; the notifications behind it flow
// on. Processed in one chunk, the good ones are isolated from the bad one.
func TestNotificationThatCannotBeProcessedIsDeadLettered(t *testing.T) {
	enricher := &panickyEnricher{}
	enricher.armed.Store(true)
	h := handlerHarness(t, testConfig(t), withEnricher(enricher))
	start := time.Now().Add(-time.Minute)
	h.mustPost(alertPayload("api", "firing", start), "")
	h.mustPost(namedAlertPayload("boom", "Explodes", "critical", nil, start), "")
	h.mustPost(alertPayload("checkout", "firing", start), "")

	// Run drains one chunk of all three: it fails, is retried one by one,
	// and the bad one is dead-lettered after maxProcessingTries.
	p := h.d.Pipeline()
	for i := 0; i < 10 && p.Pending() > 0; i++ {
		_ = p.Drain(context.Background())
	}
	if n := p.Pending(); n != 0 {
		t.Fatalf("%d notifications still pending: the bad one holds up the rest", n)
	}
	services := map[string]bool{}
	for _, inc := range p.OpenIncidents() {
		services[inc.Service] = true
	}
	if !services["api"] || !services["checkout"] || services["boom"] {
		t.Fatalf("open incidents for %v, want api and checkout", services)
	}
	l := h.deadLetters()
	if l.Total != 1 || len(l.DeadLetters) != 1 {
		t.Fatalf("dead letters %+v, want the boom notification", l)
	}
	d := l.DeadLetters[0]
	if d.Kind != store.DeadNotification || d.Queue != store.InboxQueue || d.Attempts != maxProcessingTries ||
		!strings.Contains(d.Error, "diagnosis bug") || d.Alerts != 1 || d.Bytes == 0 {
		t.Errorf("dead letter %+v", d)
	}
	if got := scalar(h.scrape(), "amtriage_dead_letters", map[string]string{"queue": store.InboxQueue}); got != 1 {
		t.Errorf("amtriage_dead_letters{queue=inbox} = %v, want 1", got)
	}
	if !strings.Contains(h.logs.String(), "notification dead-lettered") || !strings.Contains(h.logs.String(), "goroutine") {
		t.Errorf("no dead-letter log line with the panic's stack:\n%s", h.logs.String())
	}

	// Fixed, the replay processes it.
	enricher.armed.Store(false)
	res := h.do(http.MethodPost, "/api/deadletters/"+strconv.FormatUint(d.ID, 10)+"/replay", nil, "")
	if res.code != http.StatusOK {
		t.Fatalf("replay = %d %s", res.code, res.body)
	}
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, inc := range p.OpenIncidents() {
		found = found || inc.Service == "boom"
	}
	if !found {
		t.Fatal("replayed notification not processed")
	}
	if l := h.deadLetters(); l.Total != 0 {
		t.Errorf("dead letters after the replay: %+v", l)
	}
	if got := scalar(h.scrape(), "amtriage_dead_letters", map[string]string{"queue": store.InboxQueue}); got != 0 {
		t.Errorf("amtriage_dead_letters{queue=inbox} = %v after the replay, want 0", got)
	}
	if res := h.do(http.MethodPost, "/api/deadletters/"+strconv.FormatUint(d.ID, 10)+"/replay", nil, ""); res.code != http.StatusNotFound {
		t.Errorf("second replay = %d %s, want 404", res.code, res.body)
	}
	if res := h.do(http.MethodPost, "/api/deadletters/x/replay", nil, ""); res.code != http.StatusBadRequest {
		t.Errorf("replay of id x = %d, want 400", res.code)
	}
}

// An inbox entry that does not decode (written by another version, say)
// cannot ever be processed: it is dead-lettered at once, not skipped
// silently, and the entries behind it are processed.
func TestUndecodableInboxEntryIsDeadLettered(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	if err := h.d.committer.Append(context.Background(), []byte(`{"version":"5","alerts":[]}`), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.mustPost(alertPayload("api", "firing", time.Now().Add(-time.Minute)), "")
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if open := h.d.Pipeline().OpenIncidents(); len(open) != 1 {
		t.Fatalf("open incidents %d, want the api one", len(open))
	}
	l := h.deadLetters()
	if l.Total != 1 || !strings.Contains(l.DeadLetters[0].Error, "version") || l.DeadLetters[0].Attempts != 1 {
		t.Fatalf("dead letters %+v", l)
	}
	full, err := h.d.store.ReadDeadLetter(l.DeadLetters[0].ID)
	if err != nil || string(full.Payload) != `{"version":"5","alerts":[]}` {
		t.Fatalf("dead letter payload %q, %v: the body must be kept as received", full.Payload, err)
	}
}

// A failure that is not the input's (the disk) is never dead-lettered: it
// is retried until it passes, and /readyz says the pipeline is failing
// meanwhile.
func TestTransientCommitFailureIsRetriedAndMakesNotReady(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	var failing atomic.Bool
	var tries atomic.Int32
	failing.Store(true)
	fault := func(*store.Commit) error {
		if failing.Load() {
			tries.Add(1)
			return &fs.PathError{Op: "write", Path: "state.db", Err: syscall.ENOSPC}
		}
		return nil
	}
	h.d.store.(*boltstore.Store).FaultApply.Store(&fault)
	h.mustPost(alertPayload("api", "firing", time.Now().Add(-time.Minute)), "")
	h.waitFor("readyz not ready", func() bool {
		res := h.do(http.MethodGet, "/readyz", nil, "")
		return res.code == http.StatusServiceUnavailable && strings.Contains(string(res.body), "no space left")
	})
	h.waitFor("more tries than maxProcessingTries", func() bool { return tries.Load() > maxProcessingTries+1 })
	if l := h.deadLetters(); l.Total != 0 {
		t.Fatalf("a disk failure dead-lettered the notification: %+v", l)
	}
	failing.Store(false)
	h.settle()
	if open := h.d.Pipeline().OpenIncidents(); len(open) != 1 {
		t.Fatalf("open incidents %d after the disk recovered, want 1", len(open))
	}
	if res := h.do(http.MethodGet, "/readyz", nil, ""); res.code != http.StatusOK {
		t.Errorf("readyz = %d %s after recovery", res.code, res.body)
	}
}

// slowClient opens a connection, sends a webhook's headers declaring
// declared bytes and the first byte of the body, then stalls.
func slowClient(t *testing.T, url string, declared int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", declared)
	return conn
}

// Eight clients trickling a byte at a time, each declaring a 32 MiB body,
// used to reserve the whole in-flight budget and make every real webhook
// 503. The budget is now charged by the bytes that arrived, so real
// webhooks are stored; and the slow bodies are cut with 408.
func TestSlowClientsDoNotDenyIntake(t *testing.T) {
	cfg := testConfig(t)
	cfg.Intake.MinBodyRate = 1024
	h := servingHarness(t, cfg, func(o *Options) { o.BodyGrace = 500 * time.Millisecond })
	var slow []net.Conn
	for range 8 {
		slow = append(slow, slowClient(t, h.url, int(cfg.Intake.MaxBodyBytes)))
	}
	h.waitFor("the slow bodies being read", func() bool { return h.d.api.Inflight.Used() >= 8*firstBodyBuffer })
	for i := 0; i < 5; i++ {
		h.mustPost(alertPayload(fmt.Sprintf("svc-%d", i), "firing", time.Now().Add(-time.Minute)), "")
	}
	for i, conn := range slow {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "min_body_rate") {
			t.Errorf("slow client %d: %d %s, want 408 naming intake.min_body_rate", i, resp.StatusCode, body)
		}
	}
	mfs := h.scrape()
	if got := scalar(mfs, "amtriage_webhook_requests_total", map[string]string{"code": "408"}); got != 8 {
		t.Errorf("408s counted: %v, want 8", got)
	}
}

// The budget is charged by what arrives: a body that would take more than
// is left is refused with 503 once it has arrived that far, and what it
// held is returned.
func TestInflightBudgetChargedAsBytesArrive(t *testing.T) {
	cfg := testConfig(t)
	cfg.Intake.MaxBodyBytes = 1 << 20
	cfg.Intake.MaxInflightBytes = 1 << 20
	h := handlerHarness(t, cfg, func(o *Options) { o.BodyGrace = 300 * time.Millisecond })
	// One slow client holding a little of the budget does not stop another.
	slowClient(t, h.url, 1<<20)
	h.waitFor("the slow body being read", func() bool { return h.d.api.Inflight.Used() > 0 })
	h.mustPost(alertPayload("api", "firing", time.Now().Add(-time.Minute)), "")
	// A body that needs all of the budget while some is held gets 503.
	big := padTo(t, alertPayload("big", "firing", time.Now().Add(-time.Minute)), 1<<20)
	if res := h.post(big, ""); res.code != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "in flight") {
		t.Fatalf("POST of the whole budget beside a slow client = %d %s, want 503", res.code, res.body)
	}
	h.waitFor("the slow client cut and its bytes returned", func() bool { return h.d.api.Inflight.Used() == 0 })
	h.mustPost(big, "")
	if used := h.d.api.Inflight.Used(); used != 0 {
		t.Errorf("%d bytes still charged after every request ended", used)
	}
}

// With auth configured, everything but the probes needs it: the incidents
// (labels, reasons, log lines), the dead letters, the metrics, and paths
// that do not exist (no probing for what does). Basic auth is offered to
// browsers.
func TestEveryEndpointButProbesNeedsAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BasicAuth = rules.BasicAuthConfig{Username: "sre", Password: "pw"}
	h := servingHarness(t, cfg)
	basic := h.authHeader()
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/incidents"}, {"GET", "/api/incidents?limit=1"}, {"GET", "/api/deadletters"},
		{"POST", "/api/deadletters/1/replay"}, {"GET", "/metrics"}, {"POST", "/webhook"}, {"GET", "/nope"}, {"GET", "/"},
	} {
		res := h.do(tc.method, tc.path, nil, "")
		if res.code != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials = %d, want 401", tc.method, tc.path, res.code)
			continue
		}
		if got := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
			t.Errorf("%s %s: WWW-Authenticate %q, want Basic for browsers", tc.method, tc.path, got)
		}
		if res := h.do(tc.method, tc.path, nil, "Basic "+base64.StdEncoding.EncodeToString([]byte("sre:wrong"))); res.code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong password = %d, want 401", tc.method, tc.path, res.code)
		}
		if res := h.do(tc.method, tc.path, nil, basic); res.code == http.StatusUnauthorized {
			t.Errorf("%s %s with credentials = 401", tc.method, tc.path)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if res := h.do("GET", path, nil, ""); res.code != http.StatusOK {
			t.Errorf("GET %s without credentials = %d, want 200", path, res.code)
		}
	}
}

// /api/incidents answers at most ?limit= incidents (default 100) and at most
// 50 alerts of each, with the counts.
func TestAPIIncidentsAreBounded(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	start := time.Now().Add(-time.Minute)
	for i := 0; i < 3; i++ {
		h.mustPost(alertPayload(fmt.Sprintf("svc-%d", i), "firing", start), "")
	}
	h.mustPost(stormPayload(t, 120), "")
	h.settle()
	var page struct {
		Incidents []view.Incident `json:"incidents"`
		Total     int             `json:"total"`
		Truncated bool            `json:"truncated"`
	}
	res := h.do(http.MethodGet, "/api/incidents?limit=2", nil, "")
	if err := json.Unmarshal(res.body, &page); err != nil || res.code != http.StatusOK {
		t.Fatalf("GET ?limit=2 = %d %s", res.code, res.body)
	}
	if len(page.Incidents) != 2 || page.Total != 4 || !page.Truncated {
		t.Fatalf("?limit=2: %d incidents, total %d, truncated %v; want 2 of 4", len(page.Incidents), page.Total, page.Truncated)
	}
	res = h.do(http.MethodGet, "/api/incidents", nil, "")
	page.Incidents = nil
	if err := json.Unmarshal(res.body, &page); err != nil {
		t.Fatal(err)
	}
	var storm *view.Incident
	for i := range page.Incidents {
		if page.Incidents[i].Service == "api" {
			storm = &page.Incidents[i]
		}
	}
	if storm == nil || len(storm.Alerts) != view.MaxAlerts || storm.AlertsTotal != 120 || storm.AlertsFiring != 120 {
		t.Fatalf("storm incident %+v, want %d of 120 alerts shown", storm, view.MaxAlerts)
	}
	for _, bad := range []string{"0", "-1", "x", "1001", "1e3"} {
		res := h.do(http.MethodGet, "/api/incidents?limit="+bad, nil, "")
		if res.code != http.StatusBadRequest {
			t.Errorf("?limit=%s = %d, want 400", bad, res.code)
		}
		assertErrorBody(t, res, "limit")
	}
}

// compactStorm is one complete notification of the alerts numbered in ids,
// all of service api in one group, about 150 bytes each.
func compactStorm(ids []int) []byte {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"firing","receiver":"r","groupKey":"{}:{service=\"api\"}","truncatedAlerts":0,"alerts":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"PodDown","service":"api","pod":"p%05d"},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"%016x"}`, id, id+1)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// A notification of more alerts than one commit takes is folded in a part
// at a time, whether it was decoded whole (small alerts) or is read from
// the inbox in parts (a large body); "absent from a complete notification"
// still sees the whole notification; and a commit that fails between two
// parts makes the notification be processed again from its start, with
// nothing doubled.
func TestLargeNotificationsAreProcessedInParts(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		body func([]int) []byte
	}{
		{"decoded whole", partAlerts + partAlerts/2, compactStorm}, // two parts within wholeDecodeBytes
		{"read in parts", 2*partAlerts + 500, func(ids []int) []byte {
			b := compactStorm(ids)
			if len(b) <= wholeDecodeBytes {
				b = padTo(t, b, wholeDecodeBytes+1)
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := servingHarness(t, testConfig(t))
			var commits, failAt atomic.Int32
			failAt.Store(2) // the second part's commit fails once
			fault := func(c *store.Commit) error {
				if n := commits.Add(1); n == failAt.Load() {
					failAt.Store(0)
					return &fs.PathError{Op: "write", Path: "state.db", Err: syscall.EIO}
				}
				return nil
			}
			h.d.store.(*boltstore.Store).FaultApply.Store(&fault)
			h.mustPost(tc.body(seq(0, tc.n)), "")
			h.settle()
			wantParts := int32((tc.n+partAlerts-1)/partAlerts) + 2 // and the failed one, and the first again
			if got := commits.Load(); got < wantParts {
				t.Errorf("%d state commits, want at least %d: one per part", got, wantParts)
			}
			open := h.d.Pipeline().OpenIncidents()
			if len(open) != 1 || open[0].AlertsFiring != tc.n {
				t.Fatalf("open incidents %+v, want one of %d alerts", open, tc.n)
			}
			if k := h.rec.kinds(); len(k) != 1 || k[0] != incident.Opened {
				t.Fatalf("events %v, want one opened", k)
			}
			// The group again without its first alert: only that one resolves,
			// though the rest were seen in other parts than the last.
			h.mustPost(tc.body(seq(1, tc.n)), "")
			h.settle()
			open = h.d.Pipeline().OpenIncidents()
			if len(open) != 1 || open[0].AlertsFiring != tc.n-1 {
				t.Fatalf("after the group without its first alert: %+v, want %d firing", open, tc.n-1)
			}
		})
	}
}

// flap posts n firing-then-resolved occurrences of one alert of service api,
// beside whatever else fires, and processes them.
func flap(h *harness, from, n int) {
	h.t.Helper()
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		start := t0.Add(time.Duration(i) * time.Minute)
		body := alertPayload("api", "firing", start)
		// A flapping alert of its own name, so its group is not the steady one's.
		body = []byte(strings.ReplaceAll(string(body), "HighErrorRate", "Flapping"))
		h.mustPost(body, "")
		h.mustPost([]byte(strings.ReplaceAll(string(alertPayload("api", "resolved", start)), "HighErrorRate", "Flapping")), "")
		if i%50 == 49 {
			if err := h.d.Pipeline().Drain(context.Background()); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// An alert flapping beside a steady one: each resolved occurrence leaves the
// open incident, so membership and /api/incidents stay the size of what
// fires, however long the history.
func TestFlappingAlertDoesNotGrowItsIncident(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	h.mustPost(alertPayload("api", "firing", time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)), "")
	flap(h, 0, 50)
	apiBytes := func() int {
		res := h.do(http.MethodGet, "/api/incidents", nil, "")
		return len(res.body)
	}
	after50 := apiBytes()
	flap(h, 50, 450)
	after500 := apiBytes()
	open := h.d.Pipeline().OpenIncidents()
	if len(open) != 1 || len(open[0].Alerts) != 1 || open[0].AlertsFiring != 1 || open[0].AlertsTotal != 501 {
		t.Fatalf("incident after 500 flaps: %d incidents, %d members shown, %d firing, %d total; want the steady alert alone, 501 in all",
			len(open), len(open[0].Alerts), open[0].AlertsFiring, open[0].AlertsTotal)
	}
	if after500-after50 > 8 {
		t.Errorf("/api/incidents grew from %d to %d bytes between 50 and 500 flaps", after50, after500)
	}
	ls, err := h.d.store.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Alerts) != 1 {
		t.Errorf("%d alert records stored, want the steady one", len(ls.Alerts))
	}
	if len(ls.Tombstones) != 500 {
		t.Errorf("%d tombstones, want one per flap (until retention)", len(ls.Tombstones))
	}
}

// SIGTERM: while a webhook that began before it is still being read, the
// listener keeps answering, new webhooks get 503 (not a refused
// connection), and the one in flight is stored and answered 200.
func TestDrainKeepsAnsweringWith503(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	body := alertPayload("api", "firing", time.Now().Add(-time.Minute))
	slow := slowClient(t, h.url, len(body))
	h.waitFor("the slow body being read", func() bool { return h.d.api.Inflight.Used() > 0 })
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	h.waitFor("the drain to begin", func() bool { return h.d.api.draining.Load() })
	for range 3 {
		res := h.post(alertPayload("other", "firing", time.Now()), "")
		if res.code != http.StatusServiceUnavailable {
			t.Fatalf("a new webhook during the drain: %d %s, want 503", res.code, res.body)
		}
	}
	if res := h.do(http.MethodGet, "/readyz", nil, ""); res.code != http.StatusServiceUnavailable {
		t.Errorf("readyz during the drain = %d", res.code)
	}
	select {
	case <-stopped:
		t.Fatal("stopped before the webhook in flight was answered")
	default:
	}
	if _, err := slow.Write(body[1:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the webhook in flight got %d, want 200", resp.StatusCode)
	}
	<-stopped
}

// Processed entries are deleted from the inbox by the appends that follow,
// even while the pipeline is never idle (an idle pipeline trims as well).
func TestProcessedEntriesAreTrimmedByLaterAppends(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	for i := 0; i < 3; i++ {
		h.mustPost(alertPayload(fmt.Sprintf("svc-%d", i), "firing", time.Now().Add(-time.Minute)), "")
	}
	p := h.d.Pipeline()
	entries, err := h.d.store.ReadInbox(0, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	chunk := p.prepare(entries)
	if err := p.process(context.Background(), context.Background(), chunk); err != nil { // one commit, no idle trim
		t.Fatal(err)
	}
	h.mustPost(alertPayload("svc-3", "firing", time.Now().Add(-time.Minute)), "")
	left, err := h.d.store.ReadInbox(0, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Seq != 4 {
		t.Fatalf("inbox holds %d entries after the append, want only the unprocessed one", len(left))
	}
}

// /readyz reports a stall only for work that waits: pending notifications
// with no commit for stallAfter; an idle pipeline's clock starts when work
// arrives, not at its last commit.
func TestStallIsWorkThatWaits(t *testing.T) {
	h := handlerHarness(t, testConfig(t)) // nothing processes unless the test drains
	p := h.d.Pipeline()
	now := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	p.healthMu.Lock()
	p.clock = func() time.Time { return now }
	p.healthMu.Unlock()
	if err := p.Drain(context.Background()); err != nil { // idle
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute) // a quiet night
	h.mustPost(alertPayload("api", "firing", now), "")
	now = now.Add(time.Second)
	if why := p.Stuck(); why != "" {
		t.Fatalf("a notification arriving after an idle spell reads as a stall: %s", why)
	}
	now = now.Add(stallAfter)
	why := p.Stuck()
	if !strings.Contains(why, "no notification processed for 2m1s") || !strings.Contains(why, "1 waiting") {
		t.Fatalf("Stuck() = %q, want the stall of the waiting notification", why)
	}
	if res := h.do(http.MethodGet, "/readyz", nil, ""); res.code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d %s during the stall", res.code, res.body)
	}
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if why := p.Stuck(); why != "" {
		t.Errorf("Stuck() = %q once the work is done", why)
	}
}

// A panic after a chunk's commit (in what wakes the receivers, say) is not
// the notification's failure: it is processed, once, and not dead-lettered.
func TestPanicAfterTheCommitDoesNotDeadLetter(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	p := h.d.Pipeline()
	p.onEvents = func() { panic("waking the receivers") }
	h.mustPost(alertPayload("api", "firing", time.Now().Add(-time.Minute)), "")
	if err := p.Drain(context.Background()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if n := p.Pending(); n != 0 {
		t.Fatalf("%d pending", n)
	}
	if l := h.deadLetters(); l.Total != 0 {
		t.Fatalf("dead-lettered a notification whose commit succeeded: %+v", l)
	}
	if open := p.OpenIncidents(); len(open) != 1 {
		t.Fatalf("%d open incidents, want 1", len(open))
	}
	if !strings.Contains(h.logs.String(), "panic after a commit") {
		t.Error("the panic was not logged")
	}
}

// A notification folded in parts opens each incident at the severity the
// whole notification gives it: its most severe alert goes in first, so no
// part later escalates it (one event, not opened then severity_changed).
func TestPartsOpenIncidentsAtTheirSeverity(t *testing.T) {
	for _, tc := range []struct {
		name string
		pad  bool
	}{{"decoded whole", false}, {"read in parts", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := servingHarness(t, testConfig(t))
			n := partAlerts + 10 // two parts, small enough to be decoded whole
			var b strings.Builder
			b.WriteString(`{"version":"4","status":"firing","groupKey":"g","truncatedAlerts":0,"alerts":[`)
			for i := 0; i < n; i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				sev := "warning" // Sev 3 by rule 13
				if i == n-1 {
					sev = "critical" // Sev 2: the last alert of the last part
				}
				fmt.Fprintf(&b, `{"status":"firing","labels":{"alertname":"A","service":"api","pod":"p%d","severity":%q},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"%016x"}`, i, sev, i+1)
			}
			b.WriteString("]}")
			body := []byte(b.String())
			if tc.pad {
				body = padTo(t, body, wholeDecodeBytes+1)
			}
			h.mustPost(body, "")
			h.settle()
			evs := h.rec.Events()
			if len(evs) != 1 || evs[0].Kind != incident.Opened || evs[0].Incident.Severity != 2 {
				var got []string
				for _, ev := range evs {
					got = append(got, fmt.Sprintf("%s sev%d", ev.Kind, ev.Incident.Severity))
				}
				t.Fatalf("events %v, want one opened at Sev 2", got)
			}
			if open := h.d.Pipeline().OpenIncidents(); len(open) != 1 || open[0].AlertsFiring != n {
				t.Fatalf("open %+v", open)
			}
		})
	}
}

// refusingReceiver refuses (non-retryably) the events of kinds in refuse.
type refusingReceiver struct {
	eventRecorder
	mu     sync.Mutex
	refuse map[incident.EventKind]bool
}

func (r *refusingReceiver) Name() string { return "pager" }

func (r *refusingReceiver) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	r.mu.Lock()
	refused := r.refuse[ev.Kind]
	r.mu.Unlock()
	if refused {
		return false, fmt.Errorf("400 invalid event")
	}
	return r.eventRecorder.Notify(ctx, ev)
}

// An event dead-lettered while its incident fired, replayed after the
// incident resolved, must not page: the receiver is told the incident as it
// is now (resolved), not the old trigger.
func TestReplayedEventTellsTheIncidentAsItIsNow(t *testing.T) {
	pager := &refusingReceiver{refuse: map[incident.EventKind]bool{incident.Opened: true}}
	h := servingHarness(t, testConfig(t), func(o *Options) { o.Notifiers = append(o.Notifiers, pager) })
	start := time.Now().Add(-time.Minute)
	h.mustPost(alertPayload("api", "firing", start), "")
	h.waitFor("the trigger dead-lettered", func() bool { return h.deadLetters().Total == 1 })
	h.mustPost(alertPayload("api", "resolved", start), "")
	h.settle()
	pager.mu.Lock()
	pager.refuse = nil
	pager.mu.Unlock()
	d := h.deadLetters().DeadLetters[0]
	if d.Kind != store.DeadEvent || d.EventKind != incident.Opened || d.Queue != "pager" {
		t.Fatalf("dead letter %+v", d)
	}
	if res := h.do(http.MethodPost, fmt.Sprintf("/api/deadletters/%d/replay", d.ID), nil, ""); res.code != http.StatusOK {
		t.Fatalf("replay = %d %s", res.code, res.body)
	}
	h.settle()
	var kinds []incident.EventKind
	for _, ev := range pager.Events() {
		kinds = append(kinds, ev.Kind)
	}
	if !slices.Equal(kinds, []incident.EventKind{incident.ResolvedEvent, incident.ResolvedEvent}) {
		t.Fatalf("the receiver got %v; want the resolve, then the replay as resolved (never the old trigger)", kinds)
	}
}

// A replayed notification is not taken to list its whole group: alerts a
// newer notification of the group brought stay firing.
func TestReplayedNotificationDoesNotResolveByAbsence(t *testing.T) {
	enricher := &panickyEnricher{}
	enricher.armed.Store(true)
	h := handlerHarness(t, testConfig(t), withEnricher(enricher))
	p := h.d.Pipeline()
	group := func(pods ...string) []byte {
		var alerts []string
		for _, pod := range pods {
			alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"A","service":"boom","pod":%q},"startsAt":"2026-11-23T03:00:00Z","fingerprint":"fp-%s"}`, pod, pod))
		}
		return []byte(`{"version":"4","status":"firing","groupKey":"g","truncatedAlerts":0,"alerts":[` + strings.Join(alerts, ",") + `]}`)
	}
	h.mustPost(group("x1"), "")
	for i := 0; i < 5 && p.Pending() > 0; i++ {
		_ = p.Drain(context.Background())
	}
	l := h.deadLetters()
	if l.Total != 1 {
		t.Fatalf("dead letters %+v, want the first notification", l)
	}
	enricher.armed.Store(false)
	h.mustPost(group("x1", "y1"), "")
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := h.do(http.MethodPost, fmt.Sprintf("/api/deadletters/%d/replay", l.DeadLetters[0].ID), nil, ""); res.code != http.StatusOK {
		t.Fatalf("replay = %d %s", res.code, res.body)
	}
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	open := p.OpenIncidents()
	if len(open) != 1 || open[0].AlertsFiring != 2 {
		t.Fatalf("after the replay: %+v; want x1 and y1 still firing", open)
	}
}

// Concurrent replays of one dead letter replay it once; the others find it
// gone.
func TestConcurrentReplaysReplayOnce(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	if err := h.d.committer.Append(context.Background(), []byte(`{"version":"5"}`), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := h.deadLetters().DeadLetters[0].ID
	codes := make(chan int, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := h.client.Post(fmt.Sprintf("%s/api/deadletters/%d/replay", h.url, id), "application/json", nil)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusNotFound] != 7 {
		t.Fatalf("answers %v, want one 200 and seven 404", count)
	}
	if n := h.d.store.InboxSeq(); n != 2 {
		t.Errorf("inbox sequence %d: the notification went back %d times, want once", n, n-1)
	}
}

// A body that keeps above the minimum rate is read however long it takes;
// one that sends a burst and then goes silent is cut once it has been
// silent for the grace period, whatever the burst bought by rate.
func TestSlowButSteadyBodyIsReadAndABurstThenSilenceIsCut(t *testing.T) {
	cfg := testConfig(t)
	cfg.Intake.MinBodyRate = 1024
	h := servingHarness(t, cfg, func(o *Options) { o.BodyGrace = 300 * time.Millisecond })
	body := padTo(t, alertPayload("api", "firing", time.Now().Add(-time.Minute)), 3000)

	steady := slowClient(t, h.url, len(body))
	for i := 1; i < len(body); i += 300 { // 3,000 B/s for a second, past the grace
		end := min(i+300, len(body))
		if _, err := steady.Write(body[i:end]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(steady), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a body above the minimum rate got %d", resp.StatusCode)
	}

	burst := slowClient(t, h.url, 1<<20)
	if _, err := burst.Write(bytes.Repeat([]byte(" "), 200<<10)); err != nil { // 200 KiB buys 200 s by rate
		t.Fatal(err)
	}
	start := time.Now()
	_ = burst.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(burst), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "stalled") {
		t.Fatalf("a burst then silence got %d %s, want 408 (stalled)", resp.StatusCode, b)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("cut after %s of silence, want about the 300ms grace", waited)
	}
}

// Wrong methods on API paths are 405 with Allow; empty lists are [].
func TestAPIMethodsAndEmptyLists(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/api/incidents", "GET"}, {"DELETE", "/api/deadletters", "GET"}, {"POST", "/metrics", "GET"},
		{"GET", "/api/deadletters/3/replay", "POST"},
	} {
		res := h.do(tc.method, tc.path, nil, "")
		if res.code != http.StatusMethodNotAllowed || res.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d (Allow %q), want 405 allowing %s", tc.method, tc.path, res.code, res.header.Get("Allow"), tc.allow)
		}
	}
	if res := h.do("GET", "/api/nope", nil, ""); res.code != http.StatusNotFound {
		t.Errorf("GET /api/nope = %d, want 404", res.code)
	}
	res := h.do("GET", "/api/deadletters", nil, "")
	if !strings.Contains(string(res.body), `"dead_letters":[]`) {
		t.Errorf("no dead letters: %s, want an empty list", res.body)
	}
}

// /api/incidents is bounded in bytes as well as in count: incidents past
// 8 MiB are counted, not shown.
func TestAPIIncidentsAreBoundedInBytes(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	big := strings.Repeat("d", 12<<10)
	for i := 0; i < 40; i++ {
		var alerts []string
		for j := 0; j < 20; j++ { // 20 alerts with a 12 KB label: 240 KB per incident, 9.6 MB in all
			alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"A","service":"s%d","pod":"p%d","desc":%q},"startsAt":"2026-11-23T03:00:00Z"}`, i, j, big))
		}
		h.mustPost([]byte(`{"version":"4","status":"firing","groupKey":"g`+strconv.Itoa(i)+`","alerts":[`+strings.Join(alerts, ",")+`]}`), "")
	}
	if err := h.d.Pipeline().Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := h.do("GET", "/api/incidents", nil, "")
	var page struct {
		Incidents []view.Incident `json:"incidents"`
		Total     int             `json:"total"`
		Truncated bool            `json:"truncated"`
	}
	if err := json.Unmarshal(res.body, &page); err != nil {
		t.Fatal(err)
	}
	if len(res.body) > maxResponseBytes || page.Total != 40 || !page.Truncated || len(page.Incidents) >= 40 || len(page.Incidents) == 0 {
		t.Fatalf("answer of %d bytes with %d of %d incidents (truncated %v); want at most ~8 MiB, some shown, truncated", len(res.body), len(page.Incidents), page.Total, page.Truncated)
	}
}
