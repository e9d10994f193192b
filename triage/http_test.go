package triage

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/amtriage/amtriage/view"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/internal/payloads"
	"github.com/amtriage/amtriage/internal/testutil"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/webhook"
)

// ---- harness ---------------------------------------------------------------

// eventRecorder is a notify.Notifier that remembers every event delivered to it.
type eventRecorder struct {
	mu     sync.Mutex
	events []incident.Event
}

func (r *eventRecorder) Name() string { return "recorder" }

func (r *eventRecorder) Notify(_ context.Context, ev *incident.Event) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, *ev)
	return false, nil
}

func (r *eventRecorder) Events() []incident.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]incident.Event(nil), r.events...)
}

func (r *eventRecorder) kinds() []incident.EventKind {
	var out []incident.EventKind
	for _, ev := range r.Events() {
		out = append(out, ev.Kind)
	}
	return out
}

// testConfig is the embedded default configuration with a private store.
func testConfig(t *testing.T) *rules.Config {
	t.Helper()
	cfg := rules.Default()
	cfg.Store.Path = t.TempDir()
	return cfg
}

// harness is one daemon under test and an HTTP client for it.
type harness struct {
	t      *testing.T
	cfg    *rules.Config
	d      *Daemon
	url    string
	rec    *eventRecorder
	logs   *testutil.SyncBuffer
	client *http.Client
	stop   func() // idempotent; also run by t.Cleanup
}

func newHarnessDaemon(t *testing.T, cfg *rules.Config, opts ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, rec: &eventRecorder{}, logs: &testutil.SyncBuffer{}, client: &http.Client{Timeout: 60 * time.Second}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := Options{Log: log, Notifiers: []notify.Notifier{h.rec}}
	for _, opt := range opts {
		opt(&o)
	}
	d, err := NewDaemon(cfg, o)
	if err != nil {
		t.Fatalf("NewDaemon: %v", err)
	}
	h.d = d
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", h.logs.String())
		}
	})
	return h
}

// handlerHarness serves d.Handler() with httptest: intake only, nothing
// processes the inbox.
func handlerHarness(t *testing.T, cfg *rules.Config, opts ...func(*Options)) *harness {
	t.Helper()
	h := newHarnessDaemon(t, cfg, opts...)
	srv := httptest.NewServer(h.d.Handler())
	h.url = srv.URL
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			h.client.CloseIdleConnections()
			srv.Close()
			if err := h.d.Close(); err != nil {
				t.Errorf("Daemon.Close: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// servingHarness runs the whole daemon with Serve: intake, pipeline, receivers.
func servingHarness(t *testing.T, cfg *rules.Config, opts ...func(*Options)) *harness {
	t.Helper()
	h := newHarnessDaemon(t, cfg, opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.d.Serve(ctx, ln) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			h.client.CloseIdleConnections()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Serve did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(h.stop)
	h.waitFor("daemon ready", func() bool {
		res := h.do(http.MethodGet, "/readyz", nil, "")
		return res.code == http.StatusOK
	})
	return h
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends a request; auth is the whole Authorization header, if any.
func (h *harness) do(method, path string, body []byte, auth string) response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "Alertmanager/0.25.0")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading response: %v", method, path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) post(body []byte, auth string) response {
	h.t.Helper()
	return h.do(http.MethodPost, "/webhook", body, auth)
}

// postFromGoroutine posts without touching t.Fatal (which only the test's
// own goroutine may call); a transport error is reported as code 0.
func (h *harness) postFromGoroutine(body []byte) int {
	resp, err := h.client.Post(h.url+"/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		h.t.Errorf("POST /webhook: %v", err)
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// mustPost posts and requires a 200 with the "stored" answer.
func (h *harness) mustPost(body []byte, auth string) {
	h.t.Helper()
	res := h.post(body, auth)
	if res.code != http.StatusOK {
		h.t.Fatalf("POST /webhook = %d %s, want 200", res.code, res.body)
	}
	var ok struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(res.body, &ok); err != nil || ok.Status != "stored" {
		h.t.Fatalf("200 body %s, want status stored", res.body)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	waitFor(h.t, what, cond)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle waits until every acknowledged notification is folded into the
// incident book and every resulting event has been delivered.
func (h *harness) settle() {
	h.t.Helper()
	h.waitFor("inbox processed and outbox delivered", func() bool {
		if h.d.Pipeline().Pending() != 0 {
			return false
		}
		depth, err := h.d.store.OutboxDepth()
		if err != nil {
			h.t.Fatalf("OutboxDepth: %v", err)
		}
		for _, n := range depth {
			if n != 0 {
				return false
			}
		}
		return true
	})
}

// assertErrorBody checks the JSON error answer: {"status":"error","error":...}.
func assertErrorBody(t *testing.T, res response, mention string) {
	t.Helper()
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(res.body, &eb); err != nil {
		t.Fatalf("error body %q is not JSON: %v", res.body, err)
	}
	if eb.Status != "error" || eb.Error == "" {
		t.Errorf("error body = %s, want status error and a reason", res.body)
	}
	if mention != "" && !strings.Contains(strings.ToLower(eb.Error), strings.ToLower(mention)) {
		t.Errorf("error %q does not mention %q", eb.Error, mention)
	}
}

// alertPayload is a one-alert Alertmanager notification for service.
func alertPayload(service, status string, startsAt time.Time) []byte {
	endsAt := "0001-01-01T00:00:00Z"
	if status == "resolved" {
		endsAt = startsAt.Add(time.Minute).UTC().Format(time.RFC3339Nano)
	}
	labels := map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "service": service, "severity": "critical"}
	b, err := json.Marshal(map[string]any{
		"receiver": "triage", "status": status,
		"alerts": []map[string]any{{
			"status": status, "labels": labels, "annotations": map[string]string{"summary": "errors on " + service},
			"startsAt": startsAt.UTC().Format(time.RFC3339Nano), "endsAt": endsAt,
			"generatorURL": "http://prometheus:9090/graph", "fingerprint": webhook.Fingerprint(labels),
		}},
		"groupLabels":  map[string]string{"alertname": "HighErrorRate", "service": service},
		"commonLabels": labels, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager:9093", "version": "4", "truncatedAlerts": 0,
		"groupKey": fmt.Sprintf(`{}:{alertname="HighErrorRate", service=%q}`, service),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// stormPayload is one notification with n firing alerts of one service, each
// about as large as a real Alertmanager alert.
func stormPayload(t *testing.T, n int) []byte {
	t.Helper()
	type alert struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     string            `json:"startsAt"`
		EndsAt       string            `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	}
	alerts := make([]alert, n)
	for i := range alerts {
		pod := fmt.Sprintf("api-7d9f8b6c5-%05d", i)
		labels := map[string]string{"alertname": "HighErrorRate", "cluster": "prod-eu1", "job": "api",
			"namespace": "shop", "pod": pod, "service": "api", "severity": "critical"}
		alerts[i] = alert{
			Status: "firing", Labels: labels,
			Annotations: map[string]string{
				"description": "5xx ratio is 12.3% (threshold 5%) over the last 5m for pod " + pod + ".",
				"runbook_url": "https://runbooks.example.com/shop/api/HighErrorRate",
				"summary":     "High 5xx error rate on api in shop",
			},
			StartsAt: "2026-11-23T19:20:45.565975Z", EndsAt: "0001-01-01T00:00:00Z",
			GeneratorURL: "http://prometheus.example:9090/graph?g0.expr=sum%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29&g0.tab=1",
			Fingerprint:  webhook.Fingerprint(labels),
		}
	}
	b, err := json.Marshal(map[string]any{
		"receiver": "triage", "status": "firing", "alerts": alerts,
		"groupLabels":       map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "service": "api"},
		"commonLabels":      map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "service": "api"},
		"commonAnnotations": map[string]string{"summary": "High 5xx error rate on api in shop"},
		"externalURL":       "http://127.0.0.1:19093", "version": "4", "truncatedAlerts": 0,
		"groupKey": `{}:{alertname="HighErrorRate", namespace="shop", service="api"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// padTo pads a JSON body with trailing whitespace to exactly n bytes.
func padTo(t *testing.T, body []byte, n int) []byte {
	t.Helper()
	if len(body) > n {
		t.Fatalf("test setup: body of %d bytes is already over %d", len(body), n)
	}
	return append(body, bytes.Repeat([]byte(" "), n-len(body))...)
}

// ---- metrics ---------------------------------------------------------------

// authHeader is the Authorization header the configuration asks for, if any.
func (h *harness) authHeader() string {
	if tok := h.cfg.Auth.BearerToken; tok != "" {
		return "Bearer " + string(tok)
	}
	if ba := h.cfg.Auth.BasicAuth; ba.Password != "" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(ba.Username+":"+string(ba.Password)))
	}
	return ""
}

func (h *harness) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	res := h.do(http.MethodGet, "/metrics", nil, h.authHeader())
	if res.code != http.StatusOK {
		h.t.Fatalf("GET /metrics = %d", res.code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(res.body))
	if err != nil {
		h.t.Fatalf("parsing /metrics: %v\n%s", err, res.body)
	}
	return mfs
}

// findMetric returns the series of family name whose labels include want.
func findMetric(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// scalar is a counter's or gauge's value; -1 when the series is absent.
func scalar(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := findMetric(mfs, name, labels)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return -1
}

func histogramOf(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	m := findMetric(mfs, name, labels)
	if m == nil || m.Histogram == nil {
		t.Fatalf("histogram %s%v not exposed", name, labels)
	}
	return m.GetHistogram()
}

// ---- tests -----------------------------------------------------------------

func TestWebhookMethodNotAllowed(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	body := payloads.Read(t, "02-firing-single-warning.json")
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			res := h.do(method, "/webhook", body, "")
			if res.code != http.StatusMethodNotAllowed {
				t.Fatalf("%s /webhook = %d, want 405", method, res.code)
			}
			if allow := res.header.Get("Allow"); allow != http.MethodPost {
				t.Errorf("Allow = %q, want POST", allow)
			}
			assertErrorBody(t, res, method)
			if seq := h.d.store.InboxSeq(); seq != 0 {
				t.Errorf("a %s stored something: inbox seq %d", method, seq)
			}
		})
	}
}

func TestWebhookBearerAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	h := handlerHarness(t, cfg)
	body := payloads.Read(t, "02-firing-single-warning.json")
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	tests := []struct {
		name string
		auth string
		want int
	}{
		{"no header", "", 401},
		{"wrong token", "Bearer wrong", 401},
		{"token prefix", "Bearer s3cre", 401},
		{"token with suffix", "Bearer s3cretX", 401},
		{"scheme only", "Bearer", 401},
		{"empty token", "Bearer ", 401},
		{"token without scheme", "s3cret", 401},
		{"other scheme", "Token s3cret", 401},
		{"token as basic password", basic("alertmanager", "s3cret"), 401},
		{"right token", "Bearer s3cret", 200},
		{"lower-case scheme", "bearer s3cret", 200},
		{"upper-case scheme", "BEARER s3cret", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.d.store.InboxSeq()
			res := h.post(body, tc.auth)
			if res.code != tc.want {
				t.Fatalf("Authorization %q: %d %s, want %d", tc.auth, res.code, res.body, tc.want)
			}
			after := h.d.store.InboxSeq()
			if tc.want == http.StatusUnauthorized {
				assertErrorBody(t, res, "credentials")
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", res.header.Get("WWW-Authenticate"))
				}
				if after != before {
					t.Errorf("rejected request was stored: inbox seq %d -> %d", before, after)
				}
				if strings.Contains(string(res.body), "s3cret") {
					t.Errorf("401 body echoes the token: %s", res.body)
				}
			} else if after != before+1 {
				t.Errorf("accepted request: inbox seq %d -> %d, want +1", before, after)
			}
		})
	}
}

func TestWebhookBasicAuth(t *testing.T) {
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	type attempt struct {
		auth string
		want int
	}
	tests := []struct {
		name     string
		token    rules.Secret
		attempts []attempt
	}{
		{"basic only", "", []attempt{
			{"", 401},
			{basic("alertmanager", "pa55"), 200},
			{basic("alertmanager", "wrong"), 401},
			{basic("someone", "pa55"), 401},
			{basic("alertmanager", ""), 401},
			{"Bearer pa55", 401},
		}},
		{"basic and bearer", "s3cret", []attempt{
			{"", 401},
			{basic("alertmanager", "pa55"), 200},
			{"Bearer s3cret", 200},
			{basic("alertmanager", "s3cret"), 401},
			{"Bearer pa55", 401},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Auth.BearerToken = tc.token
			cfg.Auth.BasicAuth.Username = "alertmanager"
			cfg.Auth.BasicAuth.Password = "pa55"
			h := handlerHarness(t, cfg)
			body := payloads.Read(t, "02-firing-single-warning.json")
			for _, a := range tc.attempts {
				before := h.d.store.InboxSeq()
				res := h.post(body, a.auth)
				if res.code != a.want {
					t.Errorf("Authorization %q: %d %s, want %d", a.auth, res.code, res.body, a.want)
					continue
				}
				if a.want == 401 {
					assertErrorBody(t, res, "credentials")
					if h.d.store.InboxSeq() != before {
						t.Errorf("Authorization %q: rejected request was stored", a.auth)
					}
				}
			}
		})
	}
}

func TestWebhookNoAuthConfigured(t *testing.T) {
	h := handlerHarness(t, testConfig(t)) // the default: loopback, no credentials
	h.mustPost(payloads.Read(t, "02-firing-single-warning.json"), "")
	h.mustPost(payloads.Read(t, "02-firing-single-warning.json"), "Bearer anything")
}

// Every rejected request class answers with a JSON error and leaves no trace:
// nothing in the inbox, no incident, even with the pipeline running.
func TestWebhookRejectsWithoutSideEffect(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	cfg.Intake.MaxBodyBytes = 4096
	h := servingHarness(t, cfg)
	const auth = "Bearer s3cret"
	ts := `"2026-11-23T19:22:45Z"`
	alert := func(fields string) []byte {
		return []byte(`{"version":"4","status":"firing","groupKey":"g","alerts":[{` + fields + `}]}`)
	}
	valid := payloads.Read(t, "02-firing-single-warning.json")
	oversized := padTo(t, append([]byte(nil), valid...), 5000)
	tests := []struct {
		name    string
		method  string
		auth    string
		body    []byte
		want    int
		mention string
	}{
		{"GET", http.MethodGet, auth, nil, 405, "POST"},
		{"PUT", http.MethodPut, auth, valid, 405, "POST"},
		{"no credentials", http.MethodPost, "", valid, 401, "credentials"},
		{"wrong credentials", http.MethodPost, "Bearer nope", valid, 401, "credentials"},
		{"malformed JSON", http.MethodPost, auth, []byte(`{"version":"4","alerts":[`), 400, "malformed"},
		{"trailing garbage", http.MethodPost, auth, append(append([]byte(nil), valid...), "xyz"...), 400, "trailing"},
		{"empty body", http.MethodPost, auth, []byte{}, 400, "empty"},
		{"version missing", http.MethodPost, auth, payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) { delete(m, "version") }), 400, "version"},
		{"version 3", http.MethodPost, auth, payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) { m["version"] = "3" }), 400, "version"},
		{"status bogus", http.MethodPost, auth, payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) { m["status"] = "bogus" }), 400, "status"},
		{"alert status bogus", http.MethodPost, auth, payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) { payloads.FirstAlert(m)["status"] = "bogus" }), 400, "alerts[0].status"},
		{"labels as a list", http.MethodPost, auth, alert(`"status":"firing","labels":["a","b"],"startsAt":` + ts), 400, "labels"},
		{"startsAt yesterday", http.MethodPost, auth, alert(`"status":"firing","labels":{"service":"x"},"startsAt":"yesterday"`), 400, "timestamp"},
		{"startsAt missing", http.MethodPost, auth, payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) { delete(payloads.FirstAlert(m), "startsAt") }), 400, "startsAt"},
		{"body over the limit", http.MethodPost, auth, oversized, 413, "4096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.d.store.InboxSeq()
			res := h.do(tc.method, "/webhook", tc.body, tc.auth)
			if res.code != tc.want {
				t.Fatalf("%d %s, want %d", res.code, res.body, tc.want)
			}
			assertErrorBody(t, res, tc.mention)
			if after := h.d.store.InboxSeq(); after != before {
				t.Errorf("inbox seq %d -> %d: a rejected request was stored", before, after)
			}
			if p := h.d.Pipeline().Pending(); p != 0 {
				t.Errorf("pending = %d after a rejected request", p)
			}
			if incs := h.d.Pipeline().OpenIncidents(); len(incs) != 0 {
				t.Errorf("incident opened by a rejected request: %+v", incs)
			}
		})
	}
	// The pipeline is live: a good notification now becomes the one and only
	// incident, and it is the first and only inbox entry.
	h.mustPost(valid, auth)
	h.settle()
	if seq := h.d.store.InboxSeq(); seq != 1 {
		t.Errorf("inbox seq = %d, want 1 (only the accepted request)", seq)
	}
	incs := h.d.Pipeline().OpenIncidents()
	if len(incs) != 1 || incs[0].Service != "checkout" {
		t.Fatalf("open incidents = %+v, want the checkout one only", incs)
	}
	if got := h.rec.kinds(); len(got) != 1 || got[0] != incident.Opened {
		t.Errorf("events = %v, want [opened]", got)
	}
}

func TestWebhookBodyLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.Intake.MaxBodyBytes = 1024
	h := handlerHarness(t, cfg)
	small := alertPayload("api", "firing", time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC))

	h.mustPost(padTo(t, append([]byte(nil), small...), 1024), "") // exactly at the limit
	if h.d.store.InboxSeq() != 1 {
		t.Fatalf("inbox seq = %d after a body at the limit", h.d.store.InboxSeq())
	}
	for _, body := range [][]byte{
		padTo(t, append([]byte(nil), small...), 1025),
		payloads.Read(t, "01-firing-group-max_alerts-truncated.json"), // 2169 bytes
		padTo(t, append([]byte(nil), small...), 64<<10),
	} {
		res := h.post(body, "")
		if res.code != http.StatusRequestEntityTooLarge {
			t.Errorf("%d-byte body: %d %s, want 413", len(body), res.code, res.body)
			continue
		}
		assertErrorBody(t, res, "1024")
		if h.d.store.InboxSeq() != 1 {
			t.Errorf("%d-byte body was stored", len(body))
		}
	}
}

func TestWebhookDefaultLimitAcceptsStorm(t *testing.T) {
	cfg := testConfig(t)
	if cfg.Intake.MaxBodyBytes != 32<<20 {
		t.Fatalf("default intake.max_body_bytes = %d, want 32 MiB", cfg.Intake.MaxBodyBytes)
	}
	h := handlerHarness(t, cfg)
	const n = 10000
	body := stormPayload(t, n)
	t.Logf("%d-alert payload: %.1f MiB", n, float64(len(body))/(1<<20))
	res := h.post(body, "")
	if res.code != http.StatusOK {
		t.Fatalf("storm: %d %s", res.code, res.body)
	}
	var ok struct {
		Status string `json:"status"`
		Alerts int    `json:"alerts"`
	}
	if err := json.Unmarshal(res.body, &ok); err != nil || ok.Status != "stored" || ok.Alerts != n {
		t.Fatalf("storm answer %s", res.body)
	}
	entries, err := h.d.store.ReadInbox(0, 10, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !bytes.Equal(entries[0].Body, body) {
		t.Fatalf("inbox holds %d entries; body stored intact: %v", len(entries), len(entries) == 1 && bytes.Equal(entries[0].Body, body))
	}
}

func TestWebhookDraining503(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	h := handlerHarness(t, cfg)
	if res := h.do(http.MethodGet, "/readyz", nil, ""); res.code != http.StatusOK {
		t.Fatalf("/readyz before draining = %d", res.code)
	}
	h.d.api.SetDraining()
	res := h.post(payloads.Read(t, "02-firing-single-warning.json"), "Bearer s3cret")
	if res.code != http.StatusServiceUnavailable {
		t.Fatalf("POST while draining = %d %s, want 503", res.code, res.body)
	}
	assertErrorBody(t, res, "retry")
	if h.d.store.InboxSeq() != 0 {
		t.Error("a webhook was stored while draining")
	}
	// Credentials are still checked first: a stranger learns nothing.
	if res := h.post(payloads.Read(t, "02-firing-single-warning.json"), ""); res.code != http.StatusUnauthorized {
		t.Errorf("unauthenticated POST while draining = %d, want 401", res.code)
	}
	if res := h.do(http.MethodGet, "/readyz", nil, ""); res.code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", res.code)
	} else {
		assertErrorBody(t, res, "shutting down")
	}
	if res := h.do(http.MethodGet, "/healthz", nil, ""); res.code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200 (alive, just not ready)", res.code)
	}
}

func TestWebhookCommitterClosed503(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	h.d.committer.Close()
	res := h.post(payloads.Read(t, "02-firing-single-warning.json"), "")
	if res.code != http.StatusServiceUnavailable {
		t.Fatalf("POST after the committer closed = %d %s, want 503", res.code, res.body)
	}
	assertErrorBody(t, res, "shutting down")
	if h.d.store.InboxSeq() != 0 {
		t.Error("stored after close")
	}
	if err := h.d.committer.Append(context.Background(), []byte("{}"), nil, time.Now()); err != ErrClosed {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

// stalledCommitter is a copy of the daemon's Committer (same store, metrics,
// queue size and callback) whose commit loop has not started: its queue fills
// deterministically. start runs the loop, releasing everything queued.
func stalledCommitter(d *Daemon) (c *Committer, start func()) {
	real := d.committer
	c = &Committer{inbox: real.inbox, metrics: real.metrics, reqs: make(chan *appendReq, cap(real.reqs)), maxBatch: real.maxBatch, onCommit: real.onCommit}
	return c, func() {
		c.wg.Add(1)
		go c.run()
	}
}

func TestWebhookOverloaded503(t *testing.T) {
	cfg := testConfig(t)
	cfg.Intake.MaxPending = 2
	h := handlerHarness(t, cfg)
	c, start := stalledCommitter(h.d)
	h.d.api.Committer = c // before any request: the handler reads it per request
	var once sync.Once
	release := func() { once.Do(start) }
	t.Cleanup(func() { release(); c.Close() })

	// Two requests fill the queue and wait for their commit.
	codes := make(chan int, 2)
	for _, f := range []string{"02-firing-single-warning.json", "05-prometheus-rule-firing.json"} {
		body := payloads.Read(t, f)
		go func() { codes <- h.postFromGoroutine(body) }()
	}
	waitFor(t, "queue full", func() bool { return len(c.reqs) == cap(c.reqs) })

	res := h.post(payloads.Read(t, "01-firing-group-max_alerts-truncated.json"), "")
	if res.code != http.StatusServiceUnavailable {
		t.Fatalf("POST with a full queue = %d %s, want 503", res.code, res.body)
	}
	assertErrorBody(t, res, "overloaded")
	if h.d.store.InboxSeq() != 0 {
		t.Errorf("inbox seq %d while nothing was committed", h.d.store.InboxSeq())
	}

	release()
	for range 2 {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("queued request answered %d, want 200 once committed", code)
		}
	}
	if seq := h.d.store.InboxSeq(); seq != 2 {
		t.Errorf("inbox seq = %d, want 2 (the queued requests, not the rejected one)", seq)
	}
	mfs := h.scrape()
	if got := scalar(mfs, "amtriage_webhook_requests_total", map[string]string{"code": "503"}); got != 1 {
		t.Errorf(`webhook_requests_total{code="503"} = %v, want 1`, got)
	}
}

// A 200 means durable: a daemon that acknowledged and then stopped without
// ever processing leaves the notification for the next one.
func TestWebhookAcknowledgedIsDurable(t *testing.T) {
	cfg := testConfig(t)
	h1 := handlerHarness(t, cfg)
	h1.mustPost(payloads.Read(t, "02-firing-single-warning.json"), "")
	if p := h1.d.Pipeline().Pending(); p != 1 {
		t.Fatalf("pending = %d, want 1", p)
	}
	if incs := h1.d.Pipeline().OpenIncidents(); len(incs) != 0 {
		t.Fatalf("first daemon processed it already (it never ran its pipeline): %+v", incs)
	}
	h1.stop() // Close right after the 200: no Serve, no pipeline, no drain
	if len(h1.rec.Events()) != 0 {
		t.Fatal("first daemon notified")
	}

	h2 := servingHarness(t, cfg)
	h2.waitFor("incident from the notification the first daemon acknowledged", func() bool {
		return len(h2.d.Pipeline().OpenIncidents()) == 1
	})
	h2.settle()
	inc := h2.d.Pipeline().OpenIncidents()[0]
	if inc.Service != "checkout" || len(inc.Alerts) != 1 || inc.Alerts[0].Fingerprint != "fb66a0468a84294f" {
		t.Errorf("incident = %+v", inc)
	}
	if got := h2.rec.kinds(); len(got) != 1 || got[0] != incident.Opened {
		t.Errorf("events = %v, want [opened]", got)
	}

	// Serve's graceful shutdown releases the store for the next start, and
	// the processed entry is not processed again.
	h2.stop()
	h3 := servingHarness(t, cfg)
	h3.settle()
	if incs := h3.d.Pipeline().OpenIncidents(); len(incs) != 1 || incs[0].ID != inc.ID {
		t.Errorf("after restart: %+v, want the same incident", incs)
	}
	if ev := h3.rec.Events(); len(ev) != 0 {
		t.Errorf("restart re-notified: %v", h3.rec.kinds())
	}
}

func TestWebhookRedeliveryIsIdempotent(t *testing.T) {
	cfg := testConfig(t)
	h := servingHarness(t, cfg)
	body := payloads.Read(t, "01-firing-group-max_alerts-truncated.json")
	for range 5 {
		h.mustPost(body, "")
	}
	h.settle()
	incs := h.d.Pipeline().OpenIncidents()
	if len(incs) != 1 {
		t.Fatalf("%d incidents after 5 deliveries of one group, want 1: %+v", len(incs), incs)
	}
	if len(incs[0].Alerts) != 2 || incs[0].AlertsFiring != 2 || incs[0].Service != "api" {
		t.Errorf("incident = %+v, want service api with 2 firing alerts", incs[0])
	}
	if got := h.rec.kinds(); len(got) != 1 || got[0] != incident.Opened {
		t.Errorf("events = %v, want exactly one opened", got)
	}

	// Alertmanager keeps redelivering across our restarts too.
	h.stop()
	h2 := servingHarness(t, cfg)
	h2.mustPost(body, "")
	h2.settle()
	if incs2 := h2.d.Pipeline().OpenIncidents(); len(incs2) != 1 || incs2[0].ID != incs[0].ID {
		t.Errorf("after restart: %+v", incs2)
	}
	if ev := h2.rec.Events(); len(ev) != 0 {
		t.Errorf("redelivery after restart notified: %v", h2.rec.kinds())
	}
}

func TestWebhookFiringThenResolved(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	firing := payloads.Read(t, "01-firing-group-max_alerts-truncated.json")
	resolved := payloads.Read(t, "04-resolved-group-max_alerts-truncated.json")
	h.mustPost(firing, "")
	h.mustPost(resolved, "")
	h.settle()
	if incs := h.d.Pipeline().OpenIncidents(); len(incs) != 0 {
		t.Fatalf("still open after the resolved notification: %+v", incs)
	}
	evs := h.rec.Events()
	if got := h.rec.kinds(); len(got) != 2 || got[0] != incident.Opened || got[1] != incident.ResolvedEvent {
		t.Fatalf("events = %v, want [opened resolved]", got)
	}
	id := evs[0].Incident.ID
	if evs[1].Incident.ID != id {
		t.Errorf("resolved %s, opened %s", evs[1].Incident.ID, id)
	}
	inc, ok := h.d.Pipeline().Incident(id)
	if !ok || inc.Status != incident.Resolved {
		t.Errorf("incident %s = %+v, want resolved", id, inc)
	}
	if r := evs[1].Incident.ResolvedAt; !r.Equal(payloads.MustTime(t, "2026-11-23T19:23:07.541969Z")) {
		t.Errorf("resolved at %v, want the alerts' endsAt", r)
	}

	// Late redeliveries of either notification change nothing.
	h.mustPost(firing, "")
	h.mustPost(resolved, "")
	h.settle()
	if incs := h.d.Pipeline().OpenIncidents(); len(incs) != 0 {
		t.Errorf("a late firing redelivery reopened: %+v", incs)
	}
	if got := h.rec.kinds(); len(got) != 2 {
		t.Errorf("events after redeliveries = %v, want still [opened resolved]", got)
	}
}

func TestAPIIncidents(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	res := h.do(http.MethodGet, "/api/incidents", nil, "")
	if res.code != http.StatusOK || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/incidents = %d %q", res.code, res.header.Get("Content-Type"))
	}
	if got := strings.TrimSpace(string(res.body)); got != `{"incidents":[],"total":0,"truncated":false}` {
		t.Errorf("no incidents: %s, want an empty list", got)
	}

	h.mustPost(payloads.Read(t, "02-firing-single-warning.json"), "")
	h.settle()
	res = h.do(http.MethodGet, "/api/incidents", nil, "")
	var generic struct {
		Incidents []map[string]any `json:"incidents"`
	}
	if err := json.Unmarshal(res.body, &generic); err != nil {
		t.Fatalf("%v: %s", err, res.body)
	}
	if len(generic.Incidents) != 1 {
		t.Fatalf("incidents = %s", res.body)
	}
	for _, k := range []string{"id", "service", "severity", "rule", "reasons", "alerts", "started", "title", "status"} {
		if _, ok := generic.Incidents[0][k]; !ok {
			t.Errorf("incident has no %q: %s", k, res.body)
		}
	}
	var typed struct {
		Incidents []view.Incident `json:"incidents"`
	}
	if err := json.Unmarshal(res.body, &typed); err != nil {
		t.Fatal(err)
	}
	inc := typed.Incidents[0]
	if inc.Service != "checkout" || inc.Status != "firing" {
		t.Errorf("service/status = %q/%q", inc.Service, inc.Status)
	}
	// Nothing measured: the alert's severity=warning label decides (rule 13 → 3).
	if inc.Severity != 3 || inc.Rule != 13 || len(inc.Reasons) == 0 {
		t.Errorf("severity %d rule %d reasons %q, want 3 by rule 13 with reasons", inc.Severity, inc.Rule, inc.Reasons)
	}
	if !inc.Started.Equal(payloads.MustTime(t, "2026-11-23T19:22:45.572878088Z")) {
		t.Errorf("started = %v, want the alert's startsAt", inc.Started)
	}
	if !strings.HasPrefix(inc.Title, "INCIDENT: checkout - checkout p99 latency above 1s") {
		t.Errorf("title = %q", inc.Title)
	}
	if len(inc.Alerts) != 1 {
		t.Fatalf("alerts = %+v", inc.Alerts)
	}
	a := inc.Alerts[0]
	if a.Fingerprint != "fb66a0468a84294f" || a.Alertname != "HighLatencyP99" || a.Status != "firing" || a.Labels["service"] != "checkout" {
		t.Errorf("alert = %+v", a)
	}
}

func TestHealthAndReady(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret" // probes need no credentials; the rest does
	h := servingHarness(t, cfg)
	for _, path := range []string{"/healthz", "/readyz"} {
		res := h.do(http.MethodGet, path, nil, "")
		if res.code != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, res.code, res.body)
		}
	}
	for _, path := range []string{"/metrics", "/api/incidents", "/api/deadletters"} {
		if res := h.do(http.MethodGet, path, nil, ""); res.code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials = %d %s, want 401", path, res.code, res.body)
		}
		if res := h.do(http.MethodGet, path, nil, "Bearer s3cret"); res.code != http.StatusOK {
			t.Errorf("GET %s with the token = %d %s", path, res.code, res.body)
		}
	}
	res := h.do(http.MethodGet, "/readyz", nil, "")
	var ready struct {
		Status  string `json:"status"`
		Pending *int   `json:"inbox_pending"`
	}
	if err := json.Unmarshal(res.body, &ready); err != nil || ready.Status != "ready" || ready.Pending == nil || *ready.Pending != 0 {
		t.Errorf("/readyz body %s", res.body)
	}
	if res := h.do(http.MethodPost, "/healthz", nil, ""); res.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", res.code)
	}
}

func TestMetricsAfterRequests(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	h := servingHarness(t, cfg)
	const auth = "Bearer s3cret"
	h.mustPost(payloads.Read(t, "02-firing-single-warning.json"), auth)      // 1 firing, warning
	h.mustPost(payloads.Read(t, "03-firing-mixed-with-resolved.json"), auth) // 1 resolved + 1 firing, critical
	if res := h.post(payloads.Read(t, "02-firing-single-warning.json"), ""); res.code != 401 {
		t.Fatalf("unauthenticated: %d", res.code)
	}
	if res := h.post([]byte("{"), auth); res.code != 400 {
		t.Fatalf("malformed: %d", res.code)
	}
	h.settle()

	mfs := h.scrape()
	type want struct {
		name   string
		labels map[string]string
		value  float64
	}
	for _, w := range []want{
		{"amtriage_webhook_requests_total", map[string]string{"code": "200"}, 2},
		{"amtriage_webhook_requests_total", map[string]string{"code": "401"}, 1},
		{"amtriage_webhook_requests_total", map[string]string{"code": "400"}, 1},
		{"amtriage_alerts_received_total", map[string]string{"status": "firing"}, 2},
		{"amtriage_alerts_received_total", map[string]string{"status": "resolved"}, 1},
		{"amtriage_decisions_total", map[string]string{"severity": "3", "rule": "13"}, 1},
		{"amtriage_decisions_total", map[string]string{"severity": "2", "rule": "13"}, 1}, // firing alerts only
		{"amtriage_incidents_open", map[string]string{"severity": "1"}, 0},
		{"amtriage_incidents_open", map[string]string{"severity": "2"}, 1},
		{"amtriage_incidents_open", map[string]string{"severity": "3"}, 1},
		{"amtriage_incidents_open", map[string]string{"severity": "4"}, 0},
		{"amtriage_incident_events_total", map[string]string{"kind": "opened"}, 2},
		{"amtriage_inbox_pending", nil, 0},
	} {
		if got := scalar(mfs, w.name, w.labels); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	// Exactly the series above for these families: nothing double counted
	// under another label value.
	for name, n := range map[string]int{"amtriage_webhook_requests_total": 3, "amtriage_decisions_total": 2, "amtriage_alerts_received_total": 2} {
		if got := len(mfs[name].GetMetric()); got != n {
			t.Errorf("%s has %d series, want %d", name, got, n)
		}
	}
	if c := histogramOf(t, mfs, "amtriage_webhook_request_duration_seconds", nil).GetSampleCount(); c != 4 {
		t.Errorf("webhook_request_duration_seconds count = %d, want 4 (every webhook request)", c)
	}
	batch := histogramOf(t, mfs, "amtriage_inbox_commit_batch_size", nil)
	if batch.GetSampleSum() != 2 || batch.GetSampleCount() < 1 || batch.GetSampleCount() > 2 {
		t.Errorf("inbox_commit_batch_size sum %v count %d, want sum 2 over 1..2 commits", batch.GetSampleSum(), batch.GetSampleCount())
	}
	inbox := histogramOf(t, mfs, "amtriage_store_commit_duration_seconds", map[string]string{"file": "inbox"})
	if inbox.GetSampleCount() != batch.GetSampleCount() {
		t.Errorf("inbox commit durations %d, batches %d: want one per commit", inbox.GetSampleCount(), batch.GetSampleCount())
	}
	if state := histogramOf(t, mfs, "amtriage_store_commit_duration_seconds", map[string]string{"file": "state"}); state.GetSampleCount() < 1 {
		t.Error("no state commit measured")
	}
}

func TestWebhookConcurrentPosts(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	const n = 64
	start := time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		body := alertPayload(fmt.Sprintf("svc-%02d", i), "firing", start.Add(time.Duration(i)*time.Second))
		wg.Go(func() { codes[i] = h.postFromGoroutine(body) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("post %d answered %d", i, c)
		}
	}
	if seq := h.d.store.InboxSeq(); seq != n {
		t.Errorf("inbox seq = %d, want %d", seq, n)
	}
	h.settle()
	if incs := h.d.Pipeline().OpenIncidents(); len(incs) != n {
		t.Errorf("%d open incidents, want %d (one per service)", len(incs), n)
	}
	if evs := h.rec.Events(); len(evs) != n {
		t.Errorf("%d events, want %d", len(evs), n)
	}
	mfs := h.scrape()
	if got := scalar(mfs, "amtriage_webhook_requests_total", map[string]string{"code": "200"}); got != n {
		t.Errorf(`webhook_requests_total{code="200"} = %v`, got)
	}
	batch := histogramOf(t, mfs, "amtriage_inbox_commit_batch_size", nil)
	if batch.GetSampleSum() != n || batch.GetSampleCount() > n {
		t.Errorf("batch sizes sum %v over %d commits, want sum %d over ≤ %d", batch.GetSampleSum(), batch.GetSampleCount(), n, n)
	}
	t.Logf("%d requests in %d inbox commits", n, batch.GetSampleCount())
}

// Requests that arrive while a commit is in progress share the next one.
// Holding the inbox's write lock makes "in progress" deterministic.
func TestWebhookGroupCommit(t *testing.T) {
	h := handlerHarness(t, testConfig(t))
	tx, err := h.d.store.(*boltstore.Store).RawInbox().Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock := func() { once.Do(func() { tx.Rollback() }) }
	t.Cleanup(unlock)

	const n = 16
	start := time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC)
	codes := make(chan int, n)
	for i := range n {
		body := alertPayload(fmt.Sprintf("svc-%02d", i), "firing", start)
		go func() { codes <- h.postFromGoroutine(body) }()
	}
	// The commit loop has taken what was there and is blocked on the lock;
	// wait until at least two more requests queue behind it. (If it took
	// nearly all of them in its first batch, that batch is the group commit.)
	deadline := time.Now().Add(5 * time.Second)
	for len(h.d.committer.reqs) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	unlock()
	for range n {
		if c := <-codes; c != http.StatusOK {
			t.Errorf("answered %d", c)
		}
	}
	batch := histogramOf(t, h.scrape(), "amtriage_inbox_commit_batch_size", nil)
	if batch.GetSampleSum() != n {
		t.Errorf("batch sizes sum to %v, want %d", batch.GetSampleSum(), n)
	}
	if batch.GetSampleCount() >= n {
		t.Errorf("%d requests took %d commits: no group commit", n, batch.GetSampleCount())
	}
	var ones uint64
	for _, b := range batch.GetBucket() {
		if b.GetUpperBound() == 1 {
			ones = b.GetCumulativeCount()
		}
	}
	if ones == batch.GetSampleCount() {
		t.Errorf("every commit had batch size 1")
	}
	if seq := h.d.store.InboxSeq(); seq != n {
		t.Errorf("inbox seq = %d, want %d", seq, n)
	}
}

// Credentials never reach the log: not the configured ones, not the ones a
// client presented.
func TestSecretsNotLogged(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	cfg.Auth.BasicAuth.Username = "alertmanager"
	cfg.Auth.BasicAuth.Password = "pa55w0rd"
	h := servingHarness(t, cfg)
	body := payloads.Read(t, "02-firing-single-warning.json")
	wrongBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alertmanager:wr0ng-pass"))
	for _, auth := range []string{"", "Bearer wr0ng-t0ken", wrongBasic, "Token s3cret"} {
		res := h.post(body, auth)
		if res.code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, res.code)
		}
		for _, s := range []string{"s3cret", "pa55w0rd", "wr0ng"} {
			if strings.Contains(string(res.body), s) {
				t.Errorf("401 body contains %q: %s", s, res.body)
			}
		}
	}
	h.post([]byte("{"), "Bearer s3cret") // a 400, logged or not
	h.mustPost(body, "Bearer s3cret")
	h.settle()
	h.stop() // shutdown logs too

	logs := h.logs.String()
	if !strings.Contains(logs, "amtriage listening") {
		t.Fatalf("log capture is not working: %q", logs)
	}
	for _, s := range []string{"s3cret", "pa55w0rd", "wr0ng-t0ken", "wr0ng-pass", base64.StdEncoding.EncodeToString([]byte("alertmanager:wr0ng-pass"))} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q:\n%s", s, logs)
		}
	}
}
