package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

// Distinctive keys, so a leak into an error string cannot be a coincidence.
const (
	testKey    = "SECRETkeyDoNotLeak0123456789abcd" // 32 characters
	serviceKey = "SVCsecretKeyDoNotLeak0123456789z" // 32 characters
)

var started = time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC)

// errs collects every error the tests saw, to check none holds a key.
var (
	errsMu sync.Mutex
	errs   []error
)

func noteErr(err error) {
	if err != nil {
		errsMu.Lock()
		errs = append(errs, err)
		errsMu.Unlock()
	}
}

func newNotifier(t *testing.T, fake *fakepd.Server, mod func(*Config)) *Notifier {
	t.Helper()
	cfg := Config{
		URL:                fake.URL,
		RoutingKey:         rules.Secret(testKey),
		ServiceRoutingKeys: map[string]rules.Secret{"payments": rules.Secret(serviceKey)},
		Client:             &http.Client{Timeout: 5 * time.Second},
		ClientURL:          "http://amtriage.example/",
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func alert(key, name string, labels map[string]string) incident.Alert {
	l := map[string]string{"alertname": name}
	for k, v := range labels {
		l[k] = v
	}
	return incident.Alert{
		Key: key, Fingerprint: key, Name: name, Status: incident.Firing, StartsAt: started,
		Labels: l,
		Annotations: map[string]string{
			"summary":     name + " is failing",
			"runbook_url": "https://runbooks.example/" + name,
		},
		GeneratorURL: "http://prometheus.example/graph?g0.expr=up",
		Decision: severity.Decision{
			Severity: 1, Rule: 2,
			Reasons: []string{"Q2: 62% of requests failing (> 50%) [prometheus]"},
			Signals: severity.Signals{ErrorRatio: severity.Float{Known: true, Value: 0.62, Source: "prometheus"}},
		},
	}
}

func event(kind incident.EventKind, service string, sev, prev, peak severity.Level) *incident.Event {
	a := alert("a1", "HighErrorRate", map[string]string{"service": service, "namespace": "shop", "instance": "10.0.0.1:8080"})
	b := alert("a2", "Latency", map[string]string{"service": service, "namespace": "shop"})
	inc := incident.Incident{
		ID: service + "-0123456789ab", Service: service,
		Title:    "INCIDENT: " + service + " - HighErrorRate is failing since 12:30 UTC",
		Status:   incident.Firing,
		Severity: sev, PeakSeverity: peak, Rule: 2,
		Reasons:     []string{"Q2: 62% of requests failing (> 50%) [prometheus]"},
		Decisive:    "a1",
		StartedAt:   started,
		ExternalURL: "http://alertmanager.example:9093",
		Firing:      2,
	}
	if kind == incident.ResolvedEvent {
		inc.Status = incident.Resolved
		inc.ResolvedAt = started.Add(time.Hour)
	}
	return &incident.Event{
		Kind: kind, At: started, Incident: inc, PreviousSeverity: prev,
		Alerts: []incident.Alert{b, a}, AlertsTotal: 2,
	}
}

// reopened is the Reopened event of an incident that was in from.
// reopenedFrom is a reopening at sev of an incident that was at prev.
func reopenedFrom(from string, sev, prev severity.Level) *incident.Event {
	ev := reopened(from, sev)
	ev.PreviousSeverity = prev
	return ev
}

func reopened(from string, sev severity.Level) *incident.Event {
	ev := event(incident.Reopened, "api", sev, 0, 1)
	ev.PreviousState = from
	return ev
}

func notify1(t *testing.T, n *Notifier, ev *incident.Event) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	retry, err := n.Notify(ctx, ev)
	noteErr(err)
	return retry, err
}

func TestRouting(t *testing.T) {
	type step struct {
		ev      *incident.Event
		sent    string // "" nothing, else the event_action
		sev     string // payload.severity of a trigger
		wantKey string
	}
	cases := []struct {
		name      string
		steps     []step
		open      int // open alerts at the end
		dedup     string
		triggers  int
		lastState string
	}{
		{name: "sev1 pages critical", steps: []step{{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey}},
			open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "sev2 pages error", steps: []step{{event(incident.Opened, "api", 2, 0, 2), "trigger", "error", testKey}},
			open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "sev3 sends nothing", steps: []step{{ev: event(incident.Opened, "api", 3, 0, 3)}}},
		{name: "sev4 sends nothing", steps: []step{{ev: event(incident.Opened, "api", 4, 0, 4)}}},
		{name: "status update sends nothing", steps: []step{{ev: event(incident.StatusUpdate, "api", 1, 0, 1)}}},
		{name: "acknowledged from Slack acknowledges the page", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{event(incident.Acknowledged, "api", 1, 0, 1), "acknowledge", "", testKey},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Acknowledged},
		{name: "acknowledged Sev 3 sends nothing", steps: []step{{ev: event(incident.Acknowledged, "api", 3, 0, 3)}}},
		{name: "what PagerDuty told us is not sent back", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{ev: event(incident.PagerDutyChanged, "api", 1, 0, 1)},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "escalation 2 to 1 re-triggers critical", steps: []step{
			{event(incident.Opened, "api", 2, 0, 2), "trigger", "error", testKey},
			{event(incident.SeverityChanged, "api", 1, 2, 1), "trigger", "critical", testKey},
		}, open: 1, dedup: "api-0123456789ab", triggers: 2, lastState: fakepd.Triggered},
		{name: "escalation 3 to 2 triggers", steps: []step{
			{ev: event(incident.Opened, "api", 3, 0, 3)},
			{event(incident.SeverityChanged, "api", 2, 3, 2), "trigger", "error", testKey},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "drop 1 to 2 does not re-page", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{ev: event(incident.SeverityChanged, "api", 2, 1, 1)},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "resolve after page closes the alert", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{event(incident.SeverityChanged, "api", 3, 1, 1), "", "", ""},
			{event(incident.ResolvedEvent, "api", 3, 0, 1), "resolve", "", testKey},
		}, open: 0, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Resolved},
		{name: "resolve of a never-paged incident sends nothing", steps: []step{
			{ev: event(incident.Opened, "api", 3, 0, 3)},
			{ev: event(incident.ResolvedEvent, "api", 3, 0, 3)},
		}},
		{name: "reopened after monitoring re-triggers the same dedup key", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{event(incident.ResolvedEvent, "api", 1, 0, 1), "resolve", "", testKey},
			{reopened(incident.StateMonitoring, 2), "trigger", "error", testKey},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered}, // a new alert under the same key
		{name: "reopened while verifying: the page stands, nothing sent", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{ev: reopened(incident.StateVerifying, 1)},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "reopened while verifying at a higher severity: paged at it", steps: []step{
			{event(incident.Opened, "api", 2, 0, 1), "trigger", "error", testKey},
			{reopenedFrom(incident.StateVerifying, 1, 2), "trigger", "critical", testKey},
		}, open: 1, dedup: "api-0123456789ab", triggers: 2, lastState: fakepd.Triggered},
		{name: "reopened while verifying from an unpaged severity: paged", steps: []step{
			{reopenedFrom(incident.StateVerifying, 1, 3), "trigger", "critical", testKey},
		}, open: 1, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Triggered},
		{name: "verification and closing send nothing", steps: []step{
			{event(incident.Opened, "api", 1, 0, 1), "trigger", "critical", testKey},
			{ev: event(incident.VerifyPending, "api", 1, 0, 1)},
			{event(incident.ResolvedEvent, "api", 1, 0, 1), "resolve", "", testKey},
			{ev: event(incident.Closed, "api", 1, 0, 1)},
		}, open: 0, dedup: "api-0123456789ab", triggers: 1, lastState: fakepd.Resolved},
		{name: "per-service routing key", steps: []step{
			{event(incident.Opened, "payments", 1, 0, 1), "trigger", "critical", serviceKey},
			{event(incident.ResolvedEvent, "payments", 1, 0, 1), "resolve", "", serviceKey},
		}, open: 0, dedup: "payments-0123456789ab", triggers: 1, lastState: fakepd.Resolved},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakepd.New()
			defer fake.Close()
			n := newNotifier(t, fake, nil)
			sent := 0
			for i, st := range tc.steps {
				retry, err := notify1(t, n, st.ev)
				if err != nil || retry {
					t.Fatalf("step %d: retry=%v err=%v", i, retry, err)
				}
				if got := n.IsPage(st.ev); got != (st.sent == "trigger") {
					t.Errorf("step %d: IsPage %v", i, got)
				}
				evs := fake.Events()
				if st.sent == "" {
					if len(evs) != sent {
						t.Fatalf("step %d: sent %d events, want none", i, len(evs)-sent)
					}
					continue
				}
				if len(evs) != sent+1 {
					t.Fatalf("step %d: %d events, want %d", i, len(evs), sent+1)
				}
				sent++
				got := evs[len(evs)-1]
				if got.Action != st.sent || got.DedupKey != st.ev.Incident.ID || got.RoutingKey != st.wantKey {
					t.Errorf("step %d: action %q dedup %q key ok=%v", i, got.Action, got.DedupKey, got.RoutingKey == st.wantKey)
				}
				if got.Dropped {
					t.Errorf("step %d: PagerDuty dropped the event", i)
				}
				if st.sent == "trigger" && got.Payload.Severity != st.sev {
					t.Errorf("step %d: severity %q, want %q", i, got.Payload.Severity, st.sev)
				}
			}
			if len(fake.Calls()) != sent {
				t.Errorf("calls %d, want %d", len(fake.Calls()), sent)
			}
			if got := len(fake.OpenAlerts()); got != tc.open {
				t.Errorf("open alerts %d, want %d", got, tc.open)
			}
			if tc.dedup != "" {
				a, ok := fake.Alert(tc.dedup)
				if !ok || a.Status != tc.lastState || a.Triggers != tc.triggers {
					t.Errorf("alert %+v, want %s after %d triggers", a, tc.lastState, tc.triggers)
				}
			}
		})
	}
}

func TestTriggerFields(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, func(c *Config) { c.GrafanaURL = "http://grafana.example/d/abc/api?orgId=1" })
	ev := event(incident.Opened, "api", 1, 0, 1)
	if retry, err := notify1(t, n, ev); err != nil || retry {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	trs := fake.Triggers("api-0123456789ab")
	if len(trs) != 1 {
		t.Fatalf("triggers %d", len(trs))
	}
	e := trs[0]
	p := e.Payload
	checks := []struct{ field, got, want string }{
		{"summary", p.Summary, ev.Incident.Title},
		{"source", p.Source, "api"},
		{"severity", p.Severity, "critical"},
		{"timestamp", p.Timestamp, "2025-03-01T12:30:00Z"},
		{"component", p.Component, "api"},
		{"group", p.Group, "shop"},
		{"class", p.Class, "HighErrorRate"},
		{"client", e.Client, "amtriage"},
		{"client_url", e.ClientURL, "http://amtriage.example/"},
		{"dedup_key", e.DedupKey, "api-0123456789ab"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	d := p.CustomDetails
	for _, k := range []string{"incident_id", "severity", "rule", "reasons", "signals", "alerts", "alerts_total", "started", "service"} {
		if _, ok := d[k]; !ok {
			t.Errorf("custom_details lacks %q: %v", k, d)
		}
	}
	if d["incident_id"] != "api-0123456789ab" || d["severity"] != float64(1) || d["alerts_total"] != float64(2) {
		t.Errorf("custom_details %v", d)
	}
	if _, ok := d["alerts_dropped"]; ok {
		t.Error("alerts_dropped on a small event")
	}
	alerts, _ := d["alerts"].([]any)
	if len(alerts) != 2 {
		t.Fatalf("alerts %v", d["alerts"])
	}
	first, _ := alerts[0].(map[string]any)
	for _, k := range []string{"alertname", "status", "labels", "summary", "startsAt"} {
		if _, ok := first[k]; !ok {
			t.Errorf("alert detail lacks %q: %v", k, first)
		}
	}
	if sig, _ := d["signals"].(map[string]any); sig["error_ratio"].(map[string]any)["value"] != 0.62 {
		t.Errorf("signals %v", d["signals"])
	}

	links := map[string]string{}
	for _, l := range e.Links {
		links[l.Text] = l.Href
	}
	if links["Runbook"] != "https://runbooks.example/HighErrorRate" {
		t.Errorf("runbook link %q (links %v)", links["Runbook"], links)
	}
	if links["Alert source"] != "http://prometheus.example/graph?g0.expr=up" {
		t.Errorf("generator link %q", links["Alert source"])
	}
	sil := links["Silence in Alertmanager"]
	const prefix = "http://alertmanager.example:9093/#/silences/new?filter="
	if !strings.HasPrefix(sil, prefix) {
		t.Fatalf("silence link %q", sil)
	}
	if strings.ContainsAny(sil[len(prefix):], "{}\" ") {
		t.Errorf("silence filter not escaped: %q", sil)
	}
	filter, err := url.QueryUnescape(sil[len(prefix):])
	if err != nil || filter != `{alertname="HighErrorRate",instance="10.0.0.1:8080",namespace="shop",service="api"}` {
		t.Errorf("silence filter %q (%v)", filter, err)
	}
	g, err := url.Parse(links["Grafana"])
	if err != nil || g.Host != "grafana.example" || g.Query().Get("orgId") != "1" || g.Query().Get("to") != "now" ||
		g.Query().Get("from") != fmt.Sprint(started.Add(-15*time.Minute).UnixMilli()) {
		t.Errorf("grafana link %q", links["Grafana"])
	}
}

func TestSummaryTruncated(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, nil)
	ev := event(incident.Opened, "api", 1, 0, 1)
	ev.Incident.Title = "INCIDENT: api - " + strings.Repeat("é", 2000)
	if _, err := notify1(t, n, ev); err != nil {
		t.Fatal(err)
	}
	s := fake.Triggers(ev.Incident.ID)[0].Payload.Summary
	if r := []rune(s); len(r) != MaxSummary || r[len(r)-1] != '…' {
		t.Errorf("summary of %d runes", len(r))
	}
}

func TestFailures(t *testing.T) {
	cases := []struct {
		name      string
		fault     *fakepd.Fault
		mod       func(*Config)
		timeout   time.Duration
		retry     bool
		status    int
		after     time.Duration // > 0: a RetryAfterError with this wait
		deadline  bool
		minCalls  int
		errSubstr string
	}{
		{name: "500 retries (after the HTTP client's own attempts)", fault: &fakepd.Fault{Status: 500, Times: 3},
			mod: func(c *Config) { c.Client = nil }, retry: true, status: 500, minCalls: 3},
		{name: "503 retries", fault: &fakepd.Fault{Status: 503}, retry: true, status: 503, minCalls: 1},
		{name: "400 from a fault is final", fault: &fakepd.Fault{Status: 400}, retry: false, status: 400, minCalls: 1},
		{name: "invalid event is final", mod: func(c *Config) { c.RoutingKey = rules.Secret(testKey[:31]) },
			retry: false, status: 400, minCalls: 1, errSubstr: "routing_key"},
		{name: "429 honours Retry-After", fault: &fakepd.Fault{Status: 429, RetryAfter: 7}, retry: true, status: 429,
			after: 7 * time.Second, minCalls: 1},
		{name: "429 without Retry-After waits 30s", fault: &fakepd.Fault{Status: 429}, retry: true, status: 429,
			after: DefaultRetryAfter, minCalls: 1},
		{name: "hang ends at the deadline", fault: &fakepd.Fault{Hang: true}, timeout: 300 * time.Millisecond,
			retry: true, deadline: true, minCalls: 1},
		{name: "hang with the default client", fault: &fakepd.Fault{Hang: true}, mod: func(c *Config) { c.Client = nil },
			timeout: 300 * time.Millisecond, retry: true, deadline: true, minCalls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := fakepd.New()
			defer fake.Close()
			if tc.fault != nil {
				fake.Fail(*tc.fault)
			}
			n := newNotifier(t, fake, tc.mod)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 20 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			retry, err := n.Notify(ctx, event(incident.Opened, "api", 1, 0, 1))
			noteErr(err)
			if err == nil {
				t.Fatal("no error")
			}
			if retry != tc.retry {
				t.Errorf("retry=%v, want %v (%v)", retry, tc.retry, err)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.StatusCode != tc.status {
				t.Errorf("error %v (%T), want status %d", err, err, tc.status)
			}
			var ra *notify.RetryAfterError
			if tc.after > 0 {
				if !errors.As(err, &ra) || ra.After != tc.after {
					t.Errorf("error %v, want RetryAfterError after %v", err, tc.after)
				}
			} else if errors.As(err, &ra) {
				t.Errorf("unexpected RetryAfterError %v", err)
			}
			if tc.deadline {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v, want the deadline", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("hang lasted %v", d)
				}
			}
			if got := len(fake.Calls()); got < tc.minCalls {
				t.Errorf("calls %d, want >= %d", got, tc.minCalls)
			}
			if tc.errSubstr != "" && !strings.Contains(err.Error(), tc.errSubstr) {
				t.Errorf("error %q lacks %q", err, tc.errSubstr)
			}
			if len(fake.Events()) != 0 {
				t.Errorf("events accepted: %d", len(fake.Events()))
			}
		})
	}
}

func TestClientRateLimit(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	n := newNotifier(t, fake, func(c *Config) {
		c.RateLimit, c.RateWindow = 2, time.Minute
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	ev := event(incident.Opened, "api", 1, 0, 1)
	for i := range 2 {
		if _, err := notify1(t, n, ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	retry, err := notify1(t, n, ev)
	var ra *notify.RetryAfterError
	if !retry || !errors.As(err, &ra) || ra.After != 50*time.Second {
		t.Fatalf("retry=%v err=%v, want RetryAfterError after 50s", retry, err)
	}
	if len(fake.Calls()) != 2 {
		t.Errorf("calls %d: the limited event went out", len(fake.Calls()))
	}
	// Another routing key has its own budget.
	if _, err := notify1(t, n, event(incident.Opened, "payments", 1, 0, 1)); err != nil {
		t.Fatalf("other key: %v", err)
	}
	mu.Lock()
	now = now.Add(51 * time.Second)
	mu.Unlock()
	if _, err := notify1(t, n, ev); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestStormFitsSizeLimit(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, nil)
	ev := event(incident.Opened, "api", 1, 0, 1)
	ev.Alerts = nil
	for i := range 2000 {
		a := alert(fmt.Sprintf("k%04d", i), "PodCrashLooping", map[string]string{
			"service": "api", "namespace": "shop", "pod": fmt.Sprintf("api-%04d-%s", i, strings.Repeat("x", 100)),
		})
		a.Annotations["summary"] = strings.Repeat("crash looping ", 30)
		ev.Alerts = append(ev.Alerts, a)
	}
	ev.AlertsTotal = 2000
	ev.Incident.Decisive = "k0000"
	if retry, err := notify1(t, n, ev); err != nil || retry {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	trs := fake.Triggers(ev.Incident.ID)
	if len(trs) != 1 {
		t.Fatalf("triggers %d", len(trs))
	}
	if trs[0].Size > MaxEventBytes {
		t.Errorf("event of %d bytes", trs[0].Size)
	}
	d := trs[0].Payload.CustomDetails
	kept := len(d["alerts"].([]any))
	dropped, _ := d["alerts_dropped"].(float64)
	if kept == 0 || dropped == 0 || kept+int(dropped) != 2000 || d["alerts_total"] != float64(2000) {
		t.Errorf("kept %d dropped %v total %v", kept, d["alerts_dropped"], d["alerts_total"])
	}
	t.Logf("event %d bytes, %d alerts kept, %v dropped", trs[0].Size, kept, dropped)
}

// TestKeyRedacted: a server that echoes the whole request (routing key
// included) in its error message must not get the key into an error.
func TestKeyRedacted(t *testing.T) {
	for _, status := range []int{400, 429, 500} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"status": "invalid event", "message": "bad event " + string(body), "errors": []string{string(body)},
			})
		}))
		n, err := New(Config{URL: srv.URL, RoutingKey: rules.Secret(testKey), Client: &http.Client{}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Notify(context.Background(), event(incident.Opened, "api", 1, 0, 1))
		srv.Close()
		noteErr(err)
		if err == nil {
			t.Fatalf("%d: no error", status)
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err)} {
			if strings.Contains(s, testKey) {
				t.Errorf("%d: routing key in %q", status, s)
			}
		}
		if !strings.Contains(err.Error(), "<redacted>") {
			t.Errorf("%d: echoed body not in the error? %q", status, err)
		}
	}
	// A connection refused.
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	n, _ := New(Config{URL: u, RoutingKey: rules.Secret(testKey), Client: &http.Client{}})
	retry, err := n.Notify(context.Background(), event(incident.Opened, "api", 1, 0, 1))
	noteErr(err)
	if err == nil || !retry {
		t.Errorf("refused: retry=%v err=%v", retry, err)
	}
}

// TestNoKeyInAnyError checks every error the tests before it saw (it is
// declared after them, so it runs after them unless shuffled).
func TestNoKeyInAnyError(t *testing.T) {
	errsMu.Lock()
	defer errsMu.Unlock()
	if len(errs) == 0 {
		t.Skip("no errors collected (run the whole package)")
	}
	for _, err := range errs {
		s := fmt.Sprintf("%v|%+v|%#v", err, err, err)
		if strings.Contains(s, testKey) || strings.Contains(s, serviceKey) || strings.Contains(s, testKey[:31]) {
			t.Errorf("routing key in error %q", s)
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no routing key accepted")
	}
	if _, err := New(Config{URL: "ftp://x", RoutingKey: "k"}); err == nil {
		t.Error("ftp URL accepted")
	}
	if _, err := New(Config{RoutingKey: "k", ServiceRoutingKeys: map[string]rules.Secret{"a": ""}}); err == nil {
		t.Error("empty service key accepted")
	}
	n, err := New(Config{RoutingKey: "k"})
	if err != nil || n.Name() != "pagerduty" || n.cfg.URL != "https://events.pagerduty.com" || n.cfg.Client == nil {
		t.Errorf("defaults: %v %+v", err, n)
	}
	var _ notify.Notifier = n
	var _ notify.PageReporter = n
	// Config printed by mistake does not show keys.
	s := fmt.Sprintf("%v %+v", Config{RoutingKey: testKey}, Config{ServiceRoutingKeys: map[string]rules.Secret{"a": testKey}})
	if strings.Contains(s, testKey) {
		t.Errorf("config prints its key: %s", s)
	}
}

func TestSilenceURL(t *testing.T) {
	got := SilenceURL("http://am:9093/", map[string]string{"b": `x"y\z`, "a": "1 2&3"})
	want := `{a="1 2&3",b="x\"y\\z"}`
	const prefix = "http://am:9093/#/silences/new?filter="
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("%q", got)
	}
	if f, err := url.QueryUnescape(got[len(prefix):]); err != nil || f != want {
		t.Errorf("filter %q, want %q", f, want)
	}
	if strings.Contains(got, "+") || strings.Contains(got[len(prefix):], "&") {
		t.Errorf("ambiguous escaping %q", got)
	}
}

// TestLinksOnlyHTTP: URLs taken from alerts (runbook, generator URL, the
// Alertmanager external URL of the silence link) go into links only when
// they are absolute http(s) URLs with a host; the others are dropped, and
// counted in custom_details.
func TestLinksOnlyHTTP(t *testing.T) {
	tests := []struct {
		name                       string
		runbook, generator, extURL string
		wantLinks                  []string // texts, in order
		wantDropped                float64
	}{
		{name: "all http(s)", runbook: "https://runbooks.example/x", generator: "http://prom.example/graph", extURL: "http://am.example:9093",
			wantLinks: []string{"Runbook", "Alert source", "Silence in Alertmanager"}},
		{name: "javascript runbook", runbook: "javascript:alert(document.cookie)", generator: "http://prom.example/graph", extURL: "http://am.example:9093",
			wantLinks: []string{"Alert source", "Silence in Alertmanager"}, wantDropped: 1},
		{name: "mixed-case scheme", runbook: "JavaScript:alert(1)", generator: "HTTP://prom.example/graph", extURL: "http://am.example:9093",
			wantLinks: []string{"Alert source", "Silence in Alertmanager"}, wantDropped: 1},
		{name: "javascript external URL", runbook: "https://runbooks.example/x", generator: "data:text/html,<script>alert(1)</script>", extURL: "javascript:alert(1)//",
			wantLinks: []string{"Runbook"}, wantDropped: 2},
		{name: "relative, hostless and other schemes", runbook: "/runbooks/x", generator: "http:///graph", extURL: "ftp://am.example",
			wantLinks: nil, wantDropped: 3},
		{name: "file and vbscript", runbook: "file:///etc/passwd", generator: "vbscript:msgbox(1)", extURL: "http://am.example:9093",
			wantLinks: []string{"Silence in Alertmanager"}, wantDropped: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fakepd.New()
			defer fake.Close()
			n := newNotifier(t, fake, nil)
			ev := event(incident.Opened, "api", 1, 0, 1)
			for i := range ev.Alerts {
				ev.Alerts[i].Annotations["runbook_url"] = tt.runbook
				ev.Alerts[i].GeneratorURL = tt.generator
			}
			ev.Incident.ExternalURL = tt.extURL
			if _, err := notify1(t, n, ev); err != nil {
				t.Fatal(err)
			}
			trs := fake.Triggers(ev.Incident.ID)
			if len(trs) != 1 {
				t.Fatalf("triggers %d", len(trs))
			}
			var texts []string
			for _, l := range trs[0].Links {
				texts = append(texts, l.Text)
				if u, err := url.Parse(l.Href); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					t.Errorf("link %q sent", l.Href)
				}
			}
			if !slices.Equal(texts, tt.wantLinks) {
				t.Errorf("links %v, want %v", texts, tt.wantLinks)
			}
			got, _ := trs[0].Payload.CustomDetails["links_dropped"].(float64)
			if got != tt.wantDropped {
				t.Errorf("custom_details.links_dropped = %v, want %v", got, tt.wantDropped)
			}
		})
	}
}

// TestRateLimitHoldsTheRoutingKey: a 429 (from PagerDuty or the client-side
// limit) is reported as a hold on the routing key's enqueue method, which
// the outbox applies to every event sent with that key; each key is its own
// method, named without the key.
func TestRateLimitHoldsTheRoutingKey(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, nil)
	api, payments := event(incident.Opened, "api", 1, 0, 1), event(incident.Opened, "payments", 1, 0, 1)
	fake.Fail(fakepd.Fault{Status: 429, RetryAfter: 9})
	_, err := notify1(t, n, api)
	var ra *notify.RetryAfterError
	if !errors.As(err, &ra) || ra.Method == "" || ra.After != 9*time.Second {
		t.Fatalf("error %v, want a RetryAfterError with a method", err)
	}
	if strings.Contains(ra.Method, testKey) || strings.Contains(ra.Method, serviceKey) {
		t.Errorf("method %q names a routing key", ra.Method)
	}
	tests := []struct {
		name string
		ev   *incident.Event
		want []string
	}{
		{"trigger with the default key", api, []string{ra.Method}},
		{"resolve with the default key", event(incident.ResolvedEvent, "api", 1, 0, 1), []string{ra.Method}},
		{"a service with its own key", payments, []string{"enqueue:payments"}},
		{"Sev 3 calls nothing", event(incident.Opened, "api", 3, 0, 3), nil},
	}
	for _, tt := range tests {
		if got, known := n.Methods(tt.ev); !known || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Methods = %v, want %v", tt.name, got, tt.want)
		}
	}

	// Through the routing wrapper the daemon puts around it, too.
	routed := &notify.Routed{Notifier: n, Sends: func(string, severity.Level) bool { return true }}
	if got, known := routed.Methods(payments); !known || !slices.Equal(got, []string{"enqueue:payments"}) {
		t.Errorf("through notify.Routed: Methods = %v, %v", got, known)
	}

	limited := newNotifier(t, fake, func(c *Config) { c.RateLimit = 1 })
	if _, err := notify1(t, limited, payments); err != nil {
		t.Fatal(err)
	}
	_, err = notify1(t, limited, payments)
	if !errors.As(err, &ra) || ra.Method != "enqueue:payments" {
		t.Fatalf("client-side limit: %v, want a hold on enqueue:payments", err)
	}
}
