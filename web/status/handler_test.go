package status

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/view"
)

// now is the tests' clock: 14:37 UTC, so the runbook's example times show.
var now = time.Date(2025, 5, 14, 14, 37, 0, 0, time.UTC)

// source is a pipeline Board that returns everything it holds whatever
// since says, so the handler's own bound is what a test sees; it records
// the since it was asked for.
type source struct {
	incs  []view.Incident
	since time.Time
}

// board is the pipeline's Board: every incident here matched its service's
// profile unless it says otherwise (Profile "-" stands for none).
func (s *source) board(since time.Time) []view.Incident {
	s.since = since
	out := slices.Clone(s.incs)
	for i := range out {
		switch out[i].Profile {
		case "":
			out[i].Profile = out[i].Service
		case "-":
			out[i].Profile = ""
		}
	}
	return out
}

func publicSet(names ...string) func(string) bool {
	return func(s string) bool { return slices.Contains(names, s) }
}

// get serves one request and returns the response and its body.
func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	return res, rec.Body.String()
}

// articles is the data-service of each <article class="{class} …">, in order.
func articles(body, class string) []string {
	re := regexp.MustCompile(`<article class="` + class + `[ "][^>]*data-service="([^"]*)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestPagePublicAndNot(t *testing.T) {
	src := &source{incs: []view.Incident{
		{ID: "i1", Service: "checkout", Severity: 2, PeakSeverity: 2, State: incident.StateOpen,
			Started: now.Add(-5 * time.Minute), LastEvaluated: now.Add(-2 * time.Minute)},
		{ID: "i2", Service: "ledger-internal", Severity: 1, PeakSeverity: 1, State: incident.StateOpen, Started: now.Add(-time.Hour)},
		{ID: "i3", Service: "search", Severity: 4, PeakSeverity: 4, State: incident.StateOpen, Started: now.Add(-time.Hour)},
	}}
	h := New(Options{Incidents: src.board, Public: publicSet("checkout", "search"), Title: "Acme status",
		Services: []string{"checkout", "search", "ledger-internal"}, Now: func() time.Time { return now }})
	res, body := get(t, h, http.MethodGet, PagePath)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if got := articles(body, "incident"); !slices.Equal(got, []string{"checkout"}) {
		t.Errorf("current incidents %q, want only checkout (ledger-internal is not public, search's is Sev 4)", got)
	}
	for _, want := range []string{
		`<main id="status">`, "<h1>Acme status</h1>", "Some systems are affected",
		"INCIDENT: checkout partially degraded",
		"<strong>Investigating:</strong> " + messages[Investigating],
		"<dt>Duration</dt><dd>5 minutes</dd>",
		"<dt>Impact</dt><dd>" + impacts[2] + "</dd>",
		`<dt>Last Updated</dt><dd><time datetime="2025-05-14T14:35:00Z">14:35 UTC</time></dd>`,
		`<dt>Next Update</dt><dd><time datetime="2025-05-14T14:40:00Z">14:40 UTC</time></dd>`,
		`data-service="checkout"><span class="name">checkout</span> <span class="state">Partially degraded</span>`,
		`data-service="search"><span class="name">search</span> <span class="state">Operational</span>`,
		`<section id="history"`, "No incidents in the last 30 days.",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, not := range []string{"ledger-internal", "All systems operational", "i1", "i2"} {
		if strings.Contains(body, not) {
			t.Errorf("page shows %q", not)
		}
	}
	if want := now.Add(-DefaultHistory); !src.since.Equal(want) {
		t.Errorf("asked the source since %v, want %v", src.since, want)
	}
}

func TestPageOperational(t *testing.T) {
	tests := []struct {
		name   string
		incs   []view.Incident
		public func(string) bool
	}{
		{name: "no incidents", public: publicSet("api")},
		{name: "only a non-public service's", public: publicSet("api"),
			incs: []view.Incident{{Service: "batch", Severity: 1, State: incident.StateOpen, Started: now}}},
		{name: "only sev 4", public: publicSet("api"),
			incs: []view.Incident{{Service: "api", Severity: 4, State: incident.StateOpen, Started: now}}},
		{name: "no Public func: fails closed",
			incs: []view.Incident{{Service: "api", Severity: 1, State: incident.StateOpen, Started: now}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &source{incs: tt.incs}
			h := New(Options{Incidents: src.board, Public: tt.public, Now: func() time.Time { return now }})
			_, body := get(t, h, http.MethodGet, PagePath)
			if !strings.Contains(body, "All systems operational") {
				t.Error("page lacks All systems operational")
			}
			if got := articles(body, "incident"); len(got) != 0 {
				t.Errorf("current incidents %q, want none", got)
			}
			if !strings.Contains(body, "<h1>"+DefaultTitle+"</h1>") {
				t.Errorf("page lacks the default title")
			}
		})
	}
}

// The secret test: every field that may carry something internal carries a
// distinctive value, and none of them reaches the response.
func TestPageShowsNoSecret(t *testing.T) {
	secrets := []string{
		"tok-9f8e7d6c5b4a",              // a label value
		"http://10.0.0.5:9090/internal", // generatorURL
		"sk_live_51HxQ",                 // title (quotes an annotation)
		"reason-7c1e-secret",            // decision reasons
		"diag-summary-3b2a",             // diagnosis summary
		"evidence-db-pass-hunter2",      // diagnosis evidence
		"kubectl-rollout-undo-ns-secret",
		"pod-api-7d9f-x2q",             // snapshot pod
		"FATAL password=Tr0ub4dor",     // log line
		"event-msg-5e4d",               // event message
		"registry.internal/shop/api:9", // rollout image
		"ns-payments-prod",             // namespace
		"sil-0a1b2c3d",                 // silence id
		"https://am.internal:9093/#/silences/sil-0a1b2c3d",
		"https://acme.pagerduty.com/incidents/PD123XYZ", "PD123XYZ",
		"alice.oncall@acme.example", // acknowledged_by
		"bob.rollback@acme.example", // rolled back by
		"carol.closer@acme.example", // closed by
		"closure-text-8f7e", "verification-text-6d5c",
		"alertname-SecretAlert", "fp-deadbeef0123",
		"inc-id-0xC0FFEE",
		"hidden-service-q7", // a service not public
	}
	diag := &diagnosis.Diagnosis{
		Category: diagnosis.ConfigOrDeployment, Summary: "diag-summary-3b2a " + secrets[0],
		Evidence: []string{"evidence-db-pass-hunter2"}, Command: "kubectl-rollout-undo-ns-secret",
		Snapshot: &diagnosis.Snapshot{
			Namespace: "ns-payments-prod",
			Pods:      []diagnosis.Pod{{Name: "pod-api-7d9f-x2q", Message: secrets[1]}},
			Events:    []diagnosis.Event{{Object: "Pod/pod-api-7d9f-x2q", Message: "event-msg-5e4d"}},
			Rollouts:  []diagnosis.Rollout{{Images: []string{"registry.internal/shop/api:9"}}},
			Logs:      &diagnosis.Logs{Pod: "pod-api-7d9f-x2q", Lines: []string{"FATAL password=Tr0ub4dor"}},
		},
	}
	secretIncident := func(id, service, state string) view.Incident {
		inc := view.Incident{
			ID: id, Service: service, Title: "sk_live_51HxQ " + secrets[0], Status: "firing",
			Severity: 1, PeakSeverity: 1, Rule: 2, Reasons: []string{"reason-7c1e-secret", secrets[1]},
			AcknowledgedAt: now.Add(-time.Minute), AcknowledgedBy: "alice.oncall@acme.example",
			Started: now.Add(-10 * time.Minute), AlertsFiring: 1, LastEvaluated: now, Diagnosis: diag,
			Alerts: []view.Alert{{
				Fingerprint: "fp-deadbeef0123", Alertname: "alertname-SecretAlert", Status: "firing",
				Reasons: []string{"reason-7c1e-secret"}, GeneratorURL: "http://10.0.0.5:9090/internal",
				Labels: map[string]string{"token": "tok-9f8e7d6c5b4a", "service": service}, ResolvedBy: "carol.closer@acme.example",
			}},
			State: state, Verification: "verification-text-6d5c", Closure: "closure-text-8f7e",
			Silence: &view.Silence{ID: "sil-0a1b2c3d", URL: "https://am.internal:9093/#/silences/sil-0a1b2c3d",
				By: "alice.oncall@acme.example", Until: now.Add(time.Hour)},
			RolledBack:  &incident.RollbackDone{By: "bob.rollback@acme.example", At: now, Text: "bob.rollback@acme.example rolled back"},
			ClosedBy:    "carol.closer@acme.example",
			PagerDutyID: "PD123XYZ", PagerDutyURL: "https://acme.pagerduty.com/incidents/PD123XYZ",
		}
		if state == incident.StateClosed {
			inc.Resolved, inc.Closed = now.Add(-5*time.Minute), now.Add(-2*time.Minute)
		}
		return inc
	}
	src := &source{incs: []view.Incident{
		secretIncident("inc-id-0xC0FFEE", "checkout", incident.StateOpen),
		secretIncident("inc-id-0xC0FFEE", "checkout", incident.StateClosed),
		secretIncident("inc-id-0xC0FFEE", "hidden-service-q7", incident.StateOpen),
		secretIncident("inc-id-0xC0FFEE", "hidden-service-q7", incident.StateClosed),
	}}
	h := New(Options{Incidents: src.board, Public: publicSet("checkout"), Now: func() time.Time { return now },
		Services: []string{"checkout", "hidden-service-q7"}})
	res, body := get(t, h, http.MethodGet, PagePath)
	// The page did show the public service's incidents, so their fields
	// were there to leak.
	if got := articles(body, "incident"); !slices.Equal(got, []string{"checkout"}) {
		t.Fatalf("current incidents %q, want checkout", got)
	}
	if got := articles(body, "past"); !slices.Equal(got, []string{"checkout"}) {
		t.Fatalf("history %q, want checkout", got)
	}
	// Times and words only: the public record of the closed one.
	if want := `<time datetime="2025-05-14T14:27:00Z">14 May 2025 14:27 UTC</time> – <time datetime="2025-05-14T14:32:00Z">14:32 UTC</time> · 5 minutes`; !strings.Contains(body, want) {
		t.Errorf("history lacks %s", want)
	}
	var headers strings.Builder
	if err := res.Header.Write(&headers); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
			t.Errorf("body shows %q", s)
		}
		if strings.Contains(strings.ToLower(headers.String()), strings.ToLower(s)) {
			t.Errorf("headers show %q", s)
		}
	}
	// Nothing in the page links anywhere but to its own assets.
	for _, m := range regexp.MustCompile(`(?:href|src)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		if m[1] != StylePath && m[1] != ScriptPath && m[1] != "data:," { // "data:,": no favicon
			t.Errorf("page links to %q", m[1])
		}
	}
}

func TestPageEscapesServiceName(t *testing.T) {
	evil := `<script>alert(1)</script>"onmouseover=alert(2)`
	src := &source{incs: []view.Incident{
		{Service: evil, Severity: 2, State: incident.StateOpen, Started: now},
		{Service: evil, Severity: 2, State: incident.StateClosed, Started: now.Add(-time.Hour), Closed: now.Add(-time.Minute)},
	}}
	h := New(Options{Incidents: src.board, Public: publicSet(evil), Now: func() time.Time { return now }})
	_, body := get(t, h, http.MethodGet, PagePath)
	for _, raw := range []string{"<script>alert", `"onmouseover=`} {
		if strings.Contains(body, raw) {
			t.Errorf("page has raw %q", raw)
		}
	}
	// Shown, escaped: in text and in the data-service attribute.
	if !strings.Contains(body, "INCIDENT: &lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=alert(2) partially degraded") {
		t.Error("page lacks the escaped title")
	}
	if n := strings.Count(body, `data-service="&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=alert(2)"`); n != 3 {
		t.Errorf("escaped data-service %d times, want 3 (incident, past, service list)", n)
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := New(Options{Now: func() time.Time { return now }})
	tests := []struct {
		method, path string
		code         int
		ctype, cache string
	}{
		{http.MethodGet, PagePath, 200, "text/html; charset=utf-8", "public, max-age=30"},
		{http.MethodHead, PagePath, 200, "text/html; charset=utf-8", "public, max-age=30"},
		{http.MethodGet, StylePath, 200, "text/css; charset=utf-8", "public, max-age=3600"},
		{http.MethodGet, ScriptPath, 200, "text/javascript; charset=utf-8", "public, max-age=3600"},
		{http.MethodGet, "/status/nope", 404, "text/plain; charset=utf-8", ""},
		{http.MethodPost, PagePath, 405, "text/plain; charset=utf-8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res, _ := get(t, h, tt.method, tt.path)
			want := map[string]string{
				"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "same-origin",
				"Content-Type":            tt.ctype,
				"Cache-Control":           tt.cache,
			}
			if res.StatusCode != tt.code {
				t.Errorf("status %d, want %d", res.StatusCode, tt.code)
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.code == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", res.Header.Get("Allow"))
			}
		})
	}
}

func TestHead(t *testing.T) {
	src := &source{incs: []view.Incident{{Service: "api", Severity: 1, State: incident.StateOpen, Started: now}}}
	h := New(Options{Incidents: src.board, Public: publicSet("api"), Now: func() time.Time { return now }})
	_, getBody := get(t, h, http.MethodGet, PagePath)
	res, body := get(t, h, http.MethodHead, PagePath)
	if res.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: status %d, body %d bytes; want 200 and none", res.StatusCode, len(body))
	}
	if want := fmt.Sprint(len(getBody)); res.Header.Get("Content-Length") != want {
		t.Errorf("HEAD Content-Length %q, want GET's %s", res.Header.Get("Content-Length"), want)
	}
}

// The markup contract every page keeps, and what CSP would reject.
func TestMarkupContract(t *testing.T) {
	src := &source{incs: []view.Incident{
		{Service: "api", Severity: 1, State: incident.StateOpen, Started: now},
		{Service: "api", Severity: 2, State: incident.StateClosed, Started: now.Add(-2 * time.Hour), Closed: now.Add(-time.Hour)},
	}}
	h := New(Options{Incidents: src.board, Public: publicSet("api"), Now: func() time.Time { return now }})
	_, body := get(t, h, http.MethodGet, PagePath)
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<noscript><meta http-equiv="refresh" content="30"></noscript>`,
		`<main id="status">`, `<section id="history"`,
		`<link rel="stylesheet" href="/status/status.css">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, re := range []string{`<style`, `\sstyle=`, `<script>`, `<script(?:\s[^>]*)?>[^<]`, `\son[a-z]+=`, `javascript:`} {
		if regexp.MustCompile(re).MatchString(body) {
			t.Errorf("page matches %s, which CSP would reject", re)
		}
	}
}

func TestHistory(t *testing.T) {
	day := 24 * time.Hour
	closed := func(service string, ago time.Duration) view.Incident {
		return view.Incident{Service: service, Severity: 2, State: incident.StateClosed,
			Started: now.Add(-ago - time.Hour), Resolved: now.Add(-ago - 10*time.Minute), Closed: now.Add(-ago)}
	}
	tests := []struct {
		name    string
		history time.Duration
		incs    []view.Incident
		want    []string
	}{
		{
			name: "30 days by default, newest first",
			incs: []view.Incident{closed("d29", 29*day), closed("d31", 31*day), closed("d1", day), closed("d10", 10*day)},
			want: []string{"d1", "d10", "d29"},
		},
		{
			name:    "a shorter history",
			history: 7 * day,
			incs:    []view.Incident{closed("d6", 6*day), closed("d8", 8*day)},
			want:    []string{"d6"},
		},
		{
			name: "open, verifying and monitoring incidents are current, not history",
			incs: []view.Incident{
				{Service: "open", Severity: 2, State: incident.StateOpen, Started: now},
				{Service: "verifying", Severity: 2, State: incident.StateVerifying, Started: now},
				{Service: "monitoring", Severity: 2, State: incident.StateMonitoring, Started: now},
				closed("closed", time.Hour),
			},
			want: []string{"closed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for _, inc := range tt.incs {
				names = append(names, inc.Service)
			}
			src := &source{incs: tt.incs}
			h := New(Options{Incidents: src.board, Public: publicSet(names...), History: tt.history, Now: func() time.Time { return now }})
			_, body := get(t, h, http.MethodGet, PagePath)
			if got := articles(body, "past"); !slices.Equal(got, tt.want) {
				t.Errorf("history %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHistoryBounded(t *testing.T) {
	var incs []view.Incident
	for i := range MaxHistory + 50 {
		incs = append(incs, view.Incident{Service: "api", Severity: 3, State: incident.StateClosed,
			Started: now.Add(-time.Duration(i+1) * time.Hour), Closed: now.Add(-time.Duration(i) * time.Hour)})
	}
	src := &source{incs: incs}
	h := New(Options{Incidents: src.board, Public: publicSet("api"), Now: func() time.Time { return now }})
	_, body := get(t, h, http.MethodGet, PagePath)
	if n := len(articles(body, "past")); n != MaxHistory {
		t.Errorf("%d past incidents shown, want %d", n, MaxHistory)
	}
	if !strings.Contains(body, "And 50 earlier incidents.") {
		t.Error("page does not count the incidents left off")
	}
}

func TestCurrentOrderAndServiceStates(t *testing.T) {
	src := &source{incs: []view.Incident{
		{Service: "web", Severity: 3, State: incident.StateOpen, Started: now.Add(-time.Hour)},
		{Service: "api", Severity: 2, State: incident.StateOpen, Started: now.Add(-time.Minute)},
		{Service: "db", Severity: 1, State: incident.StateMonitoring, Started: now.Add(-time.Hour), Resolved: now.Add(-time.Minute)},
		{Service: "api", Severity: 2, State: incident.StateOpen, Started: now.Add(-2 * time.Minute)},
		{Service: "db", Severity: 3, State: incident.StateOpen, Started: now},
	}}
	h := New(Options{Incidents: src.board, Public: publicSet("api", "db", "web", "cdn"), Now: func() time.Time { return now }})
	_, body := get(t, h, http.MethodGet, PagePath)
	// Most severe first, then oldest.
	if got, want := articles(body, "incident"), []string{"db", "api", "api", "web", "db"}; !slices.Equal(got, want) {
		t.Errorf("current incidents %q, want %q", got, want)
	}
	// Without Options.Services: the public services with an incident,
	// sorted; an open incident outranks one being monitored.
	re := regexp.MustCompile(`data-service="([^"]*)"><span class="name">[^<]*</span> <span class="state">([^<]*)</span>`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		got = append(got, m[1]+": "+m[2])
	}
	want := []string{"api: Partially degraded", "db: Degraded performance", "web: Degraded performance"}
	if !slices.Equal(got, want) {
		t.Errorf("services %q, want %q", got, want)
	}
}

func TestAssets(t *testing.T) {
	h := New(Options{})
	for path, want := range map[string]string{StylePath: "prefers-color-scheme: dark", ScriptPath: `getElementById("status")`} {
		if _, body := get(t, h, http.MethodGet, path); !strings.Contains(body, want) {
			t.Errorf("%s lacks %q", path, want)
		}
	}
}

func TestOverall(t *testing.T) {
	open := func(l int) view.Incident {
		return view.Incident{Service: "api", Severity: severity.Level(l), State: incident.StateOpen, Started: now}
	}
	monitoring := view.Incident{Service: "api", Severity: 1, State: incident.StateMonitoring, Started: now, Resolved: now}
	tests := []struct {
		name string
		incs []view.Incident
		want string
	}{
		{"none", nil, `<p class="overall operational" role="status">All systems operational</p>`},
		{"sev 1 open", []view.Incident{open(3), open(1)}, `<p class="overall sev-1" role="status">Major outage in progress</p>`},
		{"sev 2 and a monitored sev 1", []view.Incident{monitoring, open(2)}, `<p class="overall affected" role="status">Some systems are affected</p>`},
		{"only monitored", []view.Incident{monitoring}, `<p class="overall monitoring" role="status">Some systems are recovering</p>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &source{incs: tt.incs}
			h := New(Options{Incidents: src.board, Public: publicSet("api"), Now: func() time.Time { return now }})
			if _, body := get(t, h, http.MethodGet, PagePath); !strings.Contains(body, tt.want) {
				t.Errorf("page lacks %s", tt.want)
			}
		})
	}
}

// With CacheFor the page is rendered once for that long: a crowd on an
// open page copies the incidents once, not once each.
func TestPageCached(t *testing.T) {
	now := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	calls := 0
	h := New(Options{
		Incidents: func(time.Time) []view.Incident { calls++; return nil },
		Public:    func(string) bool { return true },
		Now:       func() time.Time { return now },
		CacheFor:  5 * time.Second,
	})
	get := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PagePath, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET: %d", rec.Code)
		}
	}
	for range 10 {
		get()
	}
	if calls != 1 {
		t.Errorf("%d renderings for 10 requests within 5 s, want 1", calls)
	}
	now = now.Add(6 * time.Second)
	get()
	if calls != 2 {
		t.Errorf("%d renderings once the cache is 6 s old, want 2", calls)
	}
}

// An incident named after a public profile whose alerts did not all match
// it (a label's value, job="checkout" in staging) is not shown.
func TestPageShowsOnlyTheProfilesIncidents(t *testing.T) {
	now := time.Date(2025, 5, 14, 14, 40, 0, 0, time.UTC)
	src := &source{incs: []view.Incident{{Service: "checkout", Profile: "-", Severity: 1, State: incident.StateOpen, Started: now.Add(-time.Minute)}}}
	h := New(Options{Incidents: src.board, Public: publicSet("checkout"), Now: func() time.Time { return now }})
	_, body := get(t, h, http.MethodGet, PagePath)
	if strings.Contains(body, "INCIDENT: checkout") || strings.Contains(body, `class="incident"`) {
		t.Errorf("an incident outside the public profile is on the page:\n%s", body)
	}
}
