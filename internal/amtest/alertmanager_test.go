package amtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhook is what the recorder keeps of one request.
type webhook struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Msg    message
	Err    error // JSON decoding error
}

// message is the part of Alertmanager's webhook body the tests look at.
type message struct {
	Version     string            `json:"version"`
	GroupKey    string            `json:"groupKey"`
	Status      string            `json:"status"`
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	ExternalURL string            `json:"externalURL"`
	Alerts      []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
		Fingerprint string            `json:"fingerprint"`
	} `json:"alerts"`
}

// recorder is a 127.0.0.1 webhook receiver that answers 200 and keeps
// every request.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []webhook
	notify chan struct{}
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{notify: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := webhook{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body}
		h.Err = json.Unmarshal(body, &h.Msg)
		r.mu.Lock()
		r.got = append(r.got, h)
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	if !strings.HasPrefix(r.srv.URL, "http://127.0.0.1:") {
		t.Fatalf("recorder listens on %s, want 127.0.0.1", r.srv.URL)
	}
	return r
}

// waitFor returns the first recorded webhook (starting at index *from) for
// which match is true, advancing *from past it.
func (r *recorder) waitFor(t *testing.T, from *int, timeout time.Duration, what string, match func(webhook) bool) webhook {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		for ; *from < len(r.got); *from++ {
			if h := r.got[*from]; match(h) {
				*from++
				r.mu.Unlock()
				return h
			}
		}
		n := len(r.got)
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("no webhook with %s within %s (%d webhooks received)", what, timeout, n)
		}
	}
}

func (r *recorder) all() []webhook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook(nil), r.got...)
}

func testAlerts() []Alert {
	start := time.Now().Add(-time.Minute) // older than group_wait: flushed at once
	mk := func(instance string) Alert {
		return Alert{
			Labels: map[string]string{
				"alertname": "AmtestHarness",
				"service":   "api",
				"severity":  "critical",
				"instance":  instance,
			},
			Annotations:  map[string]string{"summary": "harness test on " + instance},
			StartsAt:     start,
			GeneratorURL: "http://127.0.0.1:9/graph?g0.expr=up",
		}
	}
	return []Alert{mk("a"), mk("b")}
}

// allAlerts reports whether msg has exactly the two test alerts, each with
// the given status.
func allAlerts(msg message, status string) bool {
	if msg.Status != status || len(msg.Alerts) != 2 {
		return false
	}
	seen := map[string]bool{}
	for _, a := range msg.Alerts {
		if a.Status != status || a.Labels["alertname"] != "AmtestHarness" || a.Labels["service"] != "api" {
			return false
		}
		seen[a.Labels["instance"]] = true
	}
	return seen["a"] && seen["b"]
}

func TestBearerFiringAndResolved(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	const token = "amtest-token-3f9c"
	rec := newRecorder(t)
	am := Start(t, Config{WebhookURL: rec.srv.URL + "/webhook?src=amtest", BearerToken: token})
	t.Logf("alertmanager ready at %s after %s", am.URL(), time.Since(begin).Round(time.Millisecond))
	if !strings.HasPrefix(am.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL() = %q, want http://127.0.0.1:PORT", am.URL())
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(am.LogPath()), "bearer_token")); err != nil || string(b) != token+"\n" {
		t.Fatalf("bearer_token file = %q, %v; want the token with a trailing newline", b, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alerts := testAlerts()
	posted := time.Now()
	if err := am.PostAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	held, err := am.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 {
		t.Fatalf("GET /api/v2/alerts: %d alerts, want 2: %v", len(held), held)
	}

	next := 0
	fired := rec.waitFor(t, &next, 10*time.Second, "both alerts firing", func(h webhook) bool {
		return h.Err == nil && allAlerts(h.Msg, "firing")
	})
	t.Logf("firing webhook after %s", time.Since(posted).Round(time.Millisecond))

	// Every request, not only the matching one, must be well-formed.
	for i, h := range rec.all() {
		if h.Method != http.MethodPost || h.Path != "/webhook" {
			t.Errorf("webhook %d: %s %s, want POST /webhook", i, h.Method, h.Path)
		}
		if got := h.Header.Get("Authorization"); got != "Bearer "+token {
			t.Errorf("webhook %d: Authorization = %q, want %q (credentials_file newline stripped)", i, got, "Bearer "+token)
		}
		if ua := h.Header.Get("User-Agent"); !strings.HasPrefix(ua, "Alertmanager/") {
			t.Errorf("webhook %d: User-Agent = %q, want Alertmanager/*", i, ua)
		}
		if ct := h.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("webhook %d: Content-Type = %q", i, ct)
		}
		if h.Err != nil {
			t.Errorf("webhook %d: body is not JSON: %v: %s", i, h.Err, h.Body)
		}
	}
	m := fired.Msg
	if m.Version != "4" {
		t.Errorf("version = %q, want \"4\"", m.Version)
	}
	if !strings.Contains(m.GroupKey, `alertname="AmtestHarness"`) || !strings.Contains(m.GroupKey, `service="api"`) {
		t.Errorf("groupKey = %q, want one naming alertname and service", m.GroupKey)
	}
	if m.Receiver != ReceiverName {
		t.Errorf("receiver = %q, want %q", m.Receiver, ReceiverName)
	}
	if m.ExternalURL != am.URL() {
		t.Errorf("externalURL = %q, want %q", m.ExternalURL, am.URL())
	}
	if m.GroupLabels["alertname"] != "AmtestHarness" || m.GroupLabels["service"] != "api" || len(m.GroupLabels) != 2 {
		t.Errorf("groupLabels = %v, want alertname and service", m.GroupLabels)
	}
	for _, a := range m.Alerts {
		if a.Fingerprint == "" || a.Annotations["summary"] == "" {
			t.Errorf("alert %v: fingerprint %q, annotations %v", a.Labels, a.Fingerprint, a.Annotations)
		}
		if !a.StartsAt.Equal(alerts[0].StartsAt.Truncate(time.Millisecond)) && !a.StartsAt.Equal(alerts[0].StartsAt) {
			t.Errorf("alert %v: startsAt %s, want %s", a.Labels, a.StartsAt, alerts[0].StartsAt)
		}
	}

	resolvedAt := time.Now()
	if err := am.PostAlerts(ctx, Resolve(alerts)); err != nil {
		t.Fatal(err)
	}
	res := rec.waitFor(t, &next, 10*time.Second, `status "resolved"`, func(h webhook) bool {
		return h.Err == nil && allAlerts(h.Msg, "resolved")
	})
	t.Logf("resolved webhook after %s", time.Since(resolvedAt).Round(time.Millisecond))
	if res.Msg.GroupKey != m.GroupKey {
		t.Errorf("resolved groupKey = %q, firing one = %q", res.Msg.GroupKey, m.GroupKey)
	}
	if got := res.Header.Get("Authorization"); got != "Bearer "+token {
		t.Errorf("resolved webhook: Authorization = %q", got)
	}
	for _, a := range res.Msg.Alerts {
		if a.EndsAt.IsZero() || a.EndsAt.After(time.Now()) {
			t.Errorf("resolved alert %v: endsAt %s", a.Labels, a.EndsAt)
		}
	}
	t.Logf("total %s", time.Since(begin).Round(time.Millisecond))
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	am := Start(t, Config{
		WebhookURL:        rec.srv.URL + "/hook",
		BasicAuthUser:     "am-user",
		BasicAuthPassword: `p@ss "w:rd"`,
		GroupBy:           []string{"alertname"},
		SendResolved:      Bool(false),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, testAlerts()[:1]); err != nil {
		t.Fatal(err)
	}
	next := 0
	h := rec.waitFor(t, &next, 10*time.Second, "a firing alert", func(h webhook) bool {
		return h.Err == nil && h.Msg.Status == "firing"
	})
	req := &http.Request{Header: h.Header}
	user, pass, ok := req.BasicAuth()
	if !ok || user != "am-user" || pass != `p@ss "w:rd"` {
		t.Errorf("basic auth = %q, %q, %t; Authorization header %q", user, pass, ok, h.Header.Get("Authorization"))
	}
	if h.Msg.Version != "4" || h.Msg.GroupKey == "" || len(h.Msg.Alerts) != 1 {
		t.Errorf("unexpected body: %s", h.Body)
	}
}

// With MoreWebhookURLs the real Alertmanager sends each notification to
// every URL, one failing URL holding up none of the others.
func TestMoreWebhookURLsEachGetEveryNotification(t *testing.T) {
	t.Parallel()
	a, b := newRecorder(t), newRecorder(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(down.Close)
	am := Start(t, Config{WebhookURL: a.srv.URL + "/a", MoreWebhookURLs: []string{down.URL, b.srv.URL + "/b"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := am.PostAlerts(ctx, testAlerts()); err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]*recorder{"first": a, "third": b} {
		next := 0
		rec.waitFor(t, &next, 10*time.Second, "both alerts at the "+name+" URL", func(h webhook) bool {
			return h.Err == nil && allAlerts(h.Msg, "firing")
		})
	}
}

// Silences lists what Alertmanager holds: nothing at first, then a silence
// posted to its API with the fields the tests compare.
func TestSilences(t *testing.T) {
	t.Parallel()
	am := Start(t, Config{WebhookURL: "http://127.0.0.1:9/unused"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := am.Silences(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Silences on a new Alertmanager = %+v, %v; want none", got, err)
	}
	start := time.Now().UTC().Truncate(time.Second)
	body := `{"matchers":[{"name":"service","value":"api","isRegex":false,"isEqual":true}],` +
		`"startsAt":"` + start.Format(time.RFC3339) + `","endsAt":"` + start.Add(time.Hour).Format(time.RFC3339) + `",` +
		`"createdBy":"amtest","comment":"listed"}`
	resp, err := http.Post(am.URL()+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST silence: %s, %v", resp.Status, err)
	}
	got, err := am.Silences(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("Silences = %+v, %v; want the one posted", got, err)
	}
	s := got[0]
	if s.ID != created.SilenceID || s.CreatedBy != "amtest" || s.Comment != "listed" || s.Status.State != "active" ||
		len(s.Matchers) != 1 || s.Matchers[0].Name != "service" || s.Matchers[0].Value != "api" || !s.EndsAt.Equal(start.Add(time.Hour)) {
		t.Errorf("listed %+v, want the silence %s posted", s, created.SilenceID)
	}
}

func TestRenderConfig(t *testing.T) {
	dir := t.TempDir()
	yml, err := renderConfig(dir, Config{WebhookURL: "http://127.0.0.1:1/x", BearerToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`receiver: "amtriage"`,
		`group_by: ["alertname", "service"]`,
		"group_wait: 1s\n",
		"group_interval: 1s\n",
		"repeat_interval: 1h\n",
		`url: "http://127.0.0.1:1/x"`,
		"send_resolved: true\n",
		"max_alerts: 0\n",
		"type: Bearer\n",
		`credentials_file: "` + filepath.Join(dir, "bearer_token") + `"`,
	} {
		if !strings.Contains(yml, want) {
			t.Errorf("config lacks %q:\n%s", want, yml)
		}
	}
	if strings.Contains(yml, "basic_auth") {
		t.Errorf("bearer config has basic_auth:\n%s", yml)
	}

	for name, cfg := range map[string]Config{
		"no url":        {},
		"relative url":  {WebhookURL: "/hook"},
		"both auths":    {WebhookURL: "http://127.0.0.1:1/", BearerToken: "t", BasicAuthUser: "u"},
		"negative max":  {WebhookURL: "http://127.0.0.1:1/", MaxAlerts: -1},
		"sub-ms":        {WebhookURL: "http://127.0.0.1:1/", GroupWait: time.Microsecond},
		"relative more": {WebhookURL: "http://127.0.0.1:1/", MoreWebhookURLs: []string{"/hook"}},
	} {
		if _, err := renderConfig(t.TempDir(), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// MoreWebhookURLs are webhook_configs of the one receiver, each with the
// same settings and credentials as the first.
func TestRenderConfigMoreWebhookURLs(t *testing.T) {
	dir := t.TempDir()
	yml, err := renderConfig(dir, Config{WebhookURL: "http://127.0.0.1:1/a", MoreWebhookURLs: []string{"http://127.0.0.1:2/b"},
		BearerToken: "tok", MaxAlerts: 7})
	if err != nil {
		t.Fatal(err)
	}
	for want, n := range map[string]int{
		"  - name: ":                       1,
		`- url: "http://127.0.0.1:1/a"`:    1,
		`- url: "http://127.0.0.1:2/b"`:    1,
		"send_resolved: true\n":            2,
		"max_alerts: 7\n":                  2,
		"type: Bearer\n":                   2,
		filepath.Join(dir, "bearer_token"): 2,
	} {
		if got := strings.Count(yml, want); got != n {
			t.Errorf("%q %d times, want %d:\n%s", want, got, n, yml)
		}
	}
	if strings.Index(yml, "127.0.0.1:2/b") < strings.LastIndex(yml, "127.0.0.1:1/a") {
		t.Errorf("the extra URL is not after the first:\n%s", yml)
	}
}

func TestAmDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		1500 * time.Millisecond:   "1s500ms",
		90 * time.Minute:          "1h30m",
		25 * time.Hour:            "25h",
		time.Hour + time.Second:   "1h1s",
		250 * time.Millisecond:    "250ms",
		2*time.Minute + time.Hour: "1h2m",
	} {
		if got, err := amDuration("X", d, time.Second); err != nil || got != want {
			t.Errorf("amDuration(%s) = %q, %v; want %q", d, got, err, want)
		}
	}
}

func TestAlertJSON(t *testing.T) {
	ts := time.Date(2026, 11, 23, 19, 20, 45, 565975000, time.UTC)
	b, err := json.Marshal([]Alert{
		{Labels: map[string]string{"a": "b"}},
		{Labels: map[string]string{"a": "b"}, StartsAt: ts, EndsAt: ts.Add(time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"labels":{"a":"b"}},{"labels":{"a":"b"},"startsAt":"2026-11-23T19:20:45.565975Z","endsAt":"2026-11-23T19:20:46.565975Z"}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	in := []Alert{{StartsAt: time.Now().Add(time.Hour)}}
	out := Resolve(in)
	if !in[0].EndsAt.IsZero() {
		t.Error("Resolve modified its input")
	}
	if out[0].EndsAt.After(time.Now().Add(-time.Second)) || out[0].StartsAt.After(out[0].EndsAt) {
		t.Errorf("Resolve: startsAt %s endsAt %s", out[0].StartsAt, out[0].EndsAt)
	}
}
