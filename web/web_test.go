package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
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
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/postmortem"
	"github.com/amtriage/amtriage/triage/prom"
	"github.com/amtriage/amtriage/view"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fakeSource serves fixed incidents; it filters the closed ones by
// closedSince as the pipeline does, and remembers the cut-off asked for.
type fakeSource struct {
	incs        []view.Incident
	details     map[string]view.Detail
	reports     map[string]postmortem.Report
	evidence    map[string][]byte
	evidenceErr error
	closedSince time.Time
}

func (f *fakeSource) Board(closedSince time.Time) []view.Incident {
	f.closedSince = closedSince
	out := []view.Incident{}
	for _, v := range f.incs {
		if v.State == incident.StateClosed && closedAt(v).Before(closedSince) {
			continue
		}
		out = append(out, v)
	}
	return out
}

func (f *fakeSource) IncidentDetail(id string) (view.Detail, bool) {
	d, ok := f.details[id]
	return d, ok
}

func (f *fakeSource) Postmortem(id string, now time.Time) (postmortem.Report, bool) {
	r, ok := f.reports[id]
	r.Now = now
	return r, ok
}

func (f *fakeSource) Evidence(id string) ([]byte, bool, error) {
	if f.evidenceErr != nil {
		return nil, false, f.evidenceErr
	}
	b, ok := f.evidence[id]
	return b, ok, nil
}

func inc(id string, sev severity.Level, state, service string, age time.Duration) view.Incident {
	v := view.Incident{
		ID: id, Service: service, Title: "INCIDENT: " + service + " - " + id, Status: "firing",
		Severity: sev, PeakSeverity: sev, Rule: 3, Reasons: []string{"error ratio 12% > 5% (" + id + ")", "second reason"},
		Started: now.Add(-age), State: state, AlertsFiring: 1, AlertsTotal: 1,
		Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.Application, Summary: "pods ready but failing"},
	}
	if state == incident.StateClosed {
		v.Status = "resolved"
		v.Closed = now.Add(-age / 2)
	}
	return v
}

func newUI(t testing.TB, src Source) *UI {
	t.Helper()
	u, err := New(Options{Source: src, Now: func() time.Time { return now }, GrafanaURL: "https://grafana.example/d/amtriage"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func get(t testing.TB, h http.Handler, method, target string) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return answer{rec.Code, rec.Result().Header, string(b)}
}

var rowRE = regexp.MustCompile(`<tr data-incident="([^"]*)" data-severity="([^"]*)" data-state="([^"]*)"`)

// rowIDs are the board's rows, in order.
func rowIDs(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

// rowOfID is the markup of one row of the board.
func rowOfID(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `<tr data-incident="`+id+`"`)
	if i < 0 {
		t.Fatalf("no row %s in\n%s", id, body)
	}
	j := strings.Index(body[i:], "</tr>")
	return body[i : i+j]
}

func TestBoardOrderAndRows(t *testing.T) {
	acked := inc("sev1-acked", 1, incident.StateOpen, "api", 3*time.Hour)
	acked.AcknowledgedAt, acked.AcknowledgedBy = now.Add(-time.Hour), "alice"
	src := &fakeSource{incs: []view.Incident{
		inc("sev3-old", 3, incident.StateOpen, "web", 5*time.Hour),
		inc("closed-recent", 1, incident.StateClosed, "api", 2*time.Hour),
		inc("sev1-young", 1, incident.StateOpen, "api", 12*time.Minute),
		acked,
		inc("sev2-verifying", 2, incident.StateVerifying, "db", 40*time.Second),
		inc("closed-older", 2, incident.StateClosed, "web", 30*time.Hour),
		inc("closed-8d", 1, incident.StateClosed, "web", 17*24*time.Hour), // closed 8.5 days ago
		inc("sev4-monitoring", 4, incident.StateMonitoring, "web", 72*time.Hour),
	}}
	a := get(t, newUI(t, src).Handler(), http.MethodGet, "/")
	if a.code != http.StatusOK {
		t.Fatalf("GET / = %d\n%s", a.code, a.body)
	}
	if !src.closedSince.Equal(now.Add(-7 * 24 * time.Hour)) {
		t.Errorf("closedSince = %v, want 7 days ago", src.closedSince)
	}
	want := []string{"sev1-acked", "sev1-young", "sev2-verifying", "sev3-old", "sev4-monitoring", "closed-recent", "closed-older"}
	if got := rowIDs(a.body); !slices.Equal(got, want) {
		t.Errorf("rows = %v\nwant %v", got, want)
	}
	for _, tc := range []struct {
		id   string
		want []string
		not  []string
	}{
		{"sev1-young", []string{`data-severity="1"`, `data-state="open"`, `<span class="sev sev1">Sev 1</span>`, `>12m</time>`,
			`<a href="/incidents/sev1-young">INCIDENT: api - sev1-young</a>`, "error ratio 12% &gt; 5% (sev1-young)", ">application<", "not acknowledged"},
			[]string{"second reason"}},
		{"sev1-acked", []string{"acknowledged by alice", ">3h</time>"}, []string{"not acknowledged"}},
		{"sev2-verifying", []string{`data-state="verifying"`, "Sev 2", ">40s</time>", "not acknowledged"}, nil},
		{"sev3-old", []string{"Sev 3", ">5h<"}, []string{"acknowledged"}},
		{"sev4-monitoring", []string{"Sev 4", ">3d<", `data-state="monitoring"`}, []string{"acknowledged"}},
		{"closed-recent", []string{`data-state="closed"`, "2026-12-01 11:00:00 UTC"}, nil},
	} {
		row := rowOfID(t, a.body, tc.id)
		for _, w := range tc.want {
			if !strings.Contains(row, w) {
				t.Errorf("row %s lacks %q:\n%s", tc.id, w, row)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(row, n) {
				t.Errorf("row %s has %q:\n%s", tc.id, n, row)
			}
		}
	}
	for _, w := range []string{`<table id="incidents">`, `<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<noscript><meta http-equiv="refresh" content="30"></noscript>`, `href="/static/amtriage.css"`, `src="/static/amtriage.js"`,
		`data-refresh="15"`} {
		if !strings.Contains(a.body, w) {
			t.Errorf("board lacks %q", w)
		}
	}
	if strings.Contains(a.body, `rel="next"`) || strings.Contains(a.body, `rel="prev"`) {
		t.Errorf("one page of rows has pagination links")
	}
}

func TestBoardFilters(t *testing.T) {
	src := &fakeSource{incs: []view.Incident{
		inc("a", 1, incident.StateOpen, "api", time.Hour),
		inc("b", 2, incident.StateVerifying, "api", time.Hour),
		inc("c", 3, incident.StateOpen, "web", time.Hour),
		inc("d", 1, incident.StateClosed, "db", time.Hour),
	}}
	h := newUI(t, src).Handler()
	for _, tc := range []struct {
		query   string
		code    int
		want    []string // rows, or for a 400 what the page names
		allowed []string
	}{
		{"", 200, []string{"a", "b", "c", "d"}, nil},
		{"?state=open", 200, []string{"a", "c"}, nil},
		{"?state=open&state=closed", 200, []string{"a", "c", "d"}, nil},
		{"?severity=1", 200, []string{"a", "d"}, nil},
		{"?severity=1&severity=2&service=api", 200, []string{"a", "b"}, nil},
		{"?service=web&state=open", 200, []string{"c"}, nil},
		{"?service=db&state=open", 200, nil, nil},
		{"?state=firing", 400, nil, []string{"open", "verifying", "monitoring", "closed"}},
		{"?state=open&state=bogus", 400, nil, []string{"open", "closed"}},
		{"?severity=5", 400, nil, []string{"1", "2", "3", "4"}},
		{"?severity=sev1", 400, nil, []string{"1", "4"}},
		{"?service=nope", 400, nil, []string{"api", "db", "web"}},
		{"?service=%3Cscript%3E", 400, nil, []string{"api", "&#34;&lt;script&gt;&#34;"}},
		{"?page=0", 400, nil, []string{"page"}},
		{"?page=x", 400, nil, []string{"page"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			a := get(t, h, http.MethodGet, "/"+tc.query)
			if a.code != tc.code {
				t.Fatalf("code = %d, want %d\n%s", a.code, tc.code, a.body)
			}
			if tc.code == 200 {
				if got := rowIDs(a.body); !slices.Equal(got, tc.want) {
					t.Errorf("rows = %v, want %v", got, tc.want)
				}
				return
			}
			if ct := a.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("400 Content-Type = %q, want an HTML page", ct)
			}
			for _, w := range tc.allowed {
				if !strings.Contains(a.body, "<code>"+w+"</code>") && !strings.Contains(a.body, w) {
					t.Errorf("400 page does not name %q:\n%s", w, a.body)
				}
			}
			if strings.Contains(a.body, "<script>") {
				t.Errorf("400 page echoes markup:\n%s", a.body)
			}
		})
	}
	// The filter links keep the other filters and toggle their own value.
	a := get(t, h, http.MethodGet, "/?state=open&service=api")
	for _, w := range []string{`href="/?service=api"`, `href="/?service=api&amp;state=open&amp;state=verifying"`, `href="/?service=api&amp;severity=1&amp;state=open"`} {
		if !strings.Contains(a.body, w) {
			t.Errorf("filter links lack %s", w)
		}
	}
}

var relRE = regexp.MustCompile(`<a rel="(next|prev)" href="([^"]*)"`)

func TestBoardPagination(t *testing.T) {
	src := &fakeSource{}
	for i := range 450 {
		src.incs = append(src.incs, inc(fmt.Sprintf("inc-%03d", i), severity.Level(1+i%4), incident.StateOpen, fmt.Sprintf("svc-%d", i%7), time.Duration(i+1)*time.Minute))
	}
	h := newUI(t, src).Handler()
	target := "/?state=open"
	seen := map[string]bool{}
	var sizes []int
	for page := 1; target != ""; page++ {
		a := get(t, h, http.MethodGet, target)
		if a.code != 200 {
			t.Fatalf("GET %s = %d", target, a.code)
		}
		rows := rowIDs(a.body)
		sizes = append(sizes, len(rows))
		for _, id := range rows {
			if seen[id] {
				t.Errorf("page %d repeats %s", page, id)
			}
			seen[id] = true
		}
		links := map[string]string{}
		for _, m := range relRE.FindAllStringSubmatch(a.body, -1) {
			links[m[1]] = html.UnescapeString(m[2])
		}
		if _, hasPrev := links["prev"]; hasPrev != (page > 1) {
			t.Errorf("page %d: prev link %v", page, hasPrev)
		}
		if next := links["next"]; next != "" && !strings.Contains(next, "state=open") {
			t.Errorf("page %d: next link %q drops the filter", page, next)
		}
		target = links["next"]
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if !slices.Equal(sizes, []int{200, 200, 50}) || len(seen) != 450 {
		t.Errorf("pages of %v rows, %d distinct; want 200, 200, 50 and 450", sizes, len(seen))
	}
	// Past the last page: no rows, a way back, still a page (a refresh of
	// a shared URL after incidents closed must not fail).
	a := get(t, h, http.MethodGet, "/?page=9")
	if a.code != 200 || len(rowIDs(a.body)) != 0 || !strings.Contains(a.body, `<a rel="prev" href="/?page=3"`) || !strings.Contains(a.body, "no page 9") {
		t.Errorf("page 9: %d\n%s", a.code, a.body)
	}
}

// TestBoardPageBounded: whatever the alerts' strings, a page's size is
// bounded by the row count and the cells' clipping.
func TestBoardPageBounded(t *testing.T) {
	src := &fakeSource{}
	huge := strings.Repeat("x", 1<<20)
	for i := range 1000 {
		v := inc(fmt.Sprintf("inc-%d", i), 1, incident.StateOpen, "api", time.Minute)
		v.Title, v.Reasons, v.AcknowledgedBy = huge, []string{huge}, huge
		src.incs = append(src.incs, v)
	}
	a := get(t, newUI(t, src).Handler(), http.MethodGet, "/")
	if len(rowIDs(a.body)) != PageSize {
		t.Fatalf("%d rows, want %d", len(rowIDs(a.body)), PageSize)
	}
	if len(a.body) > 1<<20 {
		t.Errorf("page of %d bytes for %d rows of 1 MiB strings, want under 1 MiB", len(a.body), PageSize)
	}
}

func TestNotFound(t *testing.T) {
	h := newUI(t, &fakeSource{}).Handler()
	for _, target := range []string{"/incidents/nope", "/incidents/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/static/nope.css"} {
		a := get(t, h, http.MethodGet, target)
		if a.code != 404 || a.header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("GET %s = %d %q, want a 404 page", target, a.code, a.header.Get("Content-Type"))
		}
		if strings.Contains(a.body, "<script>alert") {
			t.Errorf("GET %s echoes markup", target)
		}
		if !strings.Contains(a.body, `<a href="/">`) {
			t.Errorf("GET %s: the 404 page has no way back", target)
		}
	}
}

func TestSecurityHeadersAndHEAD(t *testing.T) {
	src := detailedSource()
	h := newUI(t, src).Handler()
	for _, target := range []string{"/", "/?state=nope", "/incidents/inc-1", "/incidents/nope", "/static/amtriage.css", "/static/amtriage.js"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			a := get(t, h, method, target)
			for k, want := range map[string]string{
				// The contract's policy, written out: no inline script or style.
				"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "same-origin",
			} {
				if got := a.header.Get(k); got != want {
					t.Errorf("%s %s: %s = %q, want %q", method, target, k, got, want)
				}
			}
			if method == http.MethodHead && a.body != "" {
				t.Errorf("HEAD %s has a body", target)
			}
			if method == http.MethodHead && a.code != get(t, h, http.MethodGet, target).code {
				t.Errorf("HEAD %s = %d, unlike GET", target, a.code)
			}
		}
	}
}

func TestStatic(t *testing.T) {
	h := newUI(t, &fakeSource{}).Handler()
	for _, tc := range []struct{ path, ctype, has string }{
		{"/static/amtriage.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/static/amtriage.css", "text/css; charset=utf-8", "max-width: 600px"},
		{"/static/amtriage.js", "text/javascript; charset=utf-8", "data-refresh"},
	} {
		a := get(t, h, http.MethodGet, tc.path)
		if a.code != 200 || a.header.Get("Content-Type") != tc.ctype || !strings.Contains(a.body, tc.has) {
			t.Errorf("GET %s = %d %q, has %q: %v", tc.path, a.code, a.header.Get("Content-Type"), tc.has, strings.Contains(a.body, tc.has))
		}
		etag := a.header.Get("ETag")
		if etag == "" || !strings.Contains(a.header.Get("Cache-Control"), "max-age=") {
			t.Errorf("GET %s: ETag %q Cache-Control %q", tc.path, etag, a.header.Get("Cache-Control"))
		}
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("If-None-Match", etag)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d, want 304", tc.path, rec.Code)
		}
	}
}

const (
	xssScript = `<script>alert(1)</script>`
	xssAttr   = `"onmouseover=alert(1) x="`
	xssURL    = `javascript:alert(1)`
)

func evil(s string) string { return s + xssScript + xssAttr }

// detailedSource has one incident, inc-1, with every field set; evil
// marks every alert-controlled string.
func detailedSource() *fakeSource {
	v := inc("inc-1", 1, incident.StateOpen, "checkout", 20*time.Minute)
	v.Title = evil("INCIDENT: checkout - ")
	v.Service = "checkout"
	v.Reasons = []string{evil("error ratio above 5% "), evil("second ")}
	v.AcknowledgedBy = evil("bob")
	v.PagerDutyURL = "https://acme.pagerduty.com/incidents/PD1"
	v.Closure = evil("✅ INCIDENT RESOLVED\nRoot Cause: ")
	v.Silence = &view.Silence{ID: "s-1", URL: xssURL, By: "amtriage"}
	v.Diagnosis = &diagnosis.Diagnosis{
		Category: diagnosis.ConfigOrDeployment, Summary: evil("CrashLoopBackOff after rollout "),
		Evidence: []string{evil("pod restarted ")},
		Command:  "kubectl -n shop rollout undo deployment/checkout --to-revision=4 " + xssScript,
		Snapshot: &diagnosis.Snapshot{
			Namespace: "shop", Workload: "deployment/checkout", PodsTotal: 3,
			Deployment: &diagnosis.Deployment{Name: "checkout", Desired: 3, Ready: 1, Updated: 3, Available: 1, Revision: 5},
			Pods:       []diagnosis.Pod{{Name: "checkout-5d-x1", Phase: "Running", Reason: "CrashLoopBackOff", Message: evil("back-off "), Restarts: 7}},
			Rollouts:   []diagnosis.Rollout{{Revision: 5, ReplicaSet: "checkout-5d", Images: []string{"shop/checkout:1.5.0"}, Change: "checkout: 1.4.2 → 1.5.0", Created: now.Add(-30 * time.Minute)}},
			Events:     []diagnosis.Event{{Time: now.Add(-10 * time.Minute), Object: "Pod/checkout-5d-x1", Reason: "BackOff", Message: evil("Back-off restarting ")}},
			Logs:       &diagnosis.Logs{Pod: "checkout-5d-x1", Container: "app", Lines: []string{evil("FATAL config missing ")}},
		},
	}
	alert := view.Alert{
		Fingerprint: "fp1", Alertname: evil("HighErrorRate"), Status: "firing", StartsAt: now.Add(-20 * time.Minute),
		Severity: 1, Rule: 3, Reasons: []string{evil("alert reason ")},
		Labels:       map[string]string{"service": "checkout", "evil": evil("v"), evil("k"): "x", "team": xssURL},
		GeneratorURL: xssURL,
	}
	good := alert
	good.Fingerprint, good.Alertname, good.GeneratorURL = "fp2", "Latency", "http://prometheus:9090/graph?g0.expr=up&x=1"
	v.Alerts = []view.Alert{alert, good}
	v.AlertsTotal = 2
	d := view.Detail{Incident: v, Timeline: []incident.Entry{
		{At: now.Add(-19 * time.Minute).In(time.FixedZone("CET", 3600)), Kind: "declared", Text: evil("Sev 1 ")},
		{At: now.Add(-20 * time.Minute), Kind: "opened", Text: "first alert"},
		{At: now.Add(-5 * time.Minute), Kind: "status_update"},
	}}
	rep := postmortem.Report{
		ID: "inc-1", Title: v.Title, Service: "checkout", Severity: 1, PeakSeverity: 1, Status: "open",
		Start: v.Started, Impact: []string{evil("deciding reason: ")},
		Timeline:  []postmortem.Entry{{At: v.Started, What: evil("detected ")}},
		RootCause: evil("bad rollout "), RootCauseEvidence: []string{evil("ev ")},
		SuggestedFix: v.Diagnosis.Command,
		Evidence: []postmortem.Link{
			{Text: "incident in the API, with its timeline", URL: "/api/incidents/inc-1"},
			{Text: evil("runbook of HighErrorRate"), URL: xssURL},
			{Text: "runbook of Latency", URL: "https://runbooks.example/latency"},
			{Text: "rel", URL: "//evil.example/x"},
			{Text: "Alertmanager", URL: "http://alertmanager:9093"},
		},
	}
	ev := evidence.Evidence{
		Incident: "inc-1", Service: "checkout", Severity: 1, Trigger: "opened", DeclaredAt: now.Add(-19 * time.Minute), CollectedAt: now.Add(-18 * time.Minute),
		From: now.Add(-49 * time.Minute), To: now.Add(-19 * time.Minute),
		Queries: []evidence.Query{
			{Name: "error_ratio", Query: evil(`sum(rate(http_requests_total{code=~"5.."}[5m]))`), Step: "10s", RangeAnswer: &prom.RangeAnswer{Series: []prom.Series{
				{Labels: map[string]string{"pod": evil("p")}, Points: []prom.Point{{T: now.Add(-20 * time.Minute).UnixMilli(), V: 0.02}, {T: now.Add(-19 * time.Minute).UnixMilli(), V: 0.125}, {T: now.Add(-19*time.Minute + 10*time.Second).UnixMilli(), V: 0.1}}},
			}, Clipped: "… clipped: 3 series more"}},
			{Name: "p99_latency", Query: "histogram_quantile(0.99, x)", Error: evil("query failed ")},
		},
		Panels:  []evidence.Panel{{ID: 2, Width: 1000, Height: 500, Bytes: 1234, URL: "/api/incidents/inc-1/evidence/panels/2.png"}, {ID: 3, Error: evil("render failed ")}},
		Missing: []string{evil("logs: no pod ")},
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return &fakeSource{
		incs:     []view.Incident{v},
		details:  map[string]view.Detail{"inc-1": d},
		reports:  map[string]postmortem.Report{"inc-1": rep},
		evidence: map[string][]byte{"inc-1": raw},
	}
}

func TestIncidentPage(t *testing.T) {
	a := get(t, newUI(t, detailedSource()).Handler(), http.MethodGet, "/incidents/inc-1")
	if a.code != 200 {
		t.Fatalf("GET /incidents/inc-1 = %d\n%s", a.code, a.body)
	}
	for _, w := range []string{
		`<h1 id="title"><span class="sev sev1">Sev 1</span> INCIDENT: checkout - &lt;script&gt;`,
		`<span class="state" id="state">open</span>`,
		"<pre><code>✅ INCIDENT RESOLVED\nRoot Cause: &lt;script&gt;",
		// every reason of the decision
		`<li>error ratio above 5% &lt;script&gt;`, `<li>second &lt;script&gt;`,
		// the rollback command, copyable
		`<pre><code id="rollback-command">kubectl -n shop rollout undo deployment/checkout --to-revision=4 &lt;script&gt;`,
		`<button type="button" class="copy" data-copy="rollback-command" hidden>`,
		// the snapshot
		"<code>checkout-5d-x1</code>", "CrashLoopBackOff", "checkout: 1.4.2 → 1.5.0", "BackOff", "FATAL config missing &lt;script&gt;",
		// evidence: queries with their last values, panels, what is missing
		"error_ratio", "<td data-label=\"Last\">0.1 ", "<td data-label=\"Max\">0.125</td>", "… clipped: 3 series more", "query failed &lt;script&gt;",
		`<img src="/api/incidents/inc-1/evidence/panels/2.png"`, "render failed &lt;script&gt;", "logs: no pod &lt;script&gt;",
		// links: only absolute http(s) ones are links
		`<a href="https://acme.pagerduty.com/incidents/PD1" rel="noopener noreferrer">PagerDuty incident</a>`,
		`<a href="https://grafana.example/d/amtriage?from=`,
		`<a href="http://prometheus:9090/graph?g0.expr=up&amp;x=1" rel="noopener noreferrer">`,
		`<a href="https://runbooks.example/latency" rel="noopener noreferrer">runbook of Latency</a>`,
		`<a href="http://alertmanager:9093" rel="noopener noreferrer">Alertmanager</a>`,
		`Alertmanager silence: <code class="unlinked">javascript:alert(1)</code>`,
		`rel: <code class="unlinked">//evil.example/x</code>`,
		// post-mortem sections
		`<section id="postmortem">`, "<h3>Impact</h3>", "<h3>Root cause</h3>", "bad rollout &lt;script&gt;", "Suggested by the diagnosis",
		"Post-incident checklist", "Close incident ticket", `<a href="/api/incidents/inc-1/postmortem">`,
		// alerts with their labels
		"<dt>team</dt><dd>javascript:alert(1)</dd>", "Prometheus: <code class=\"unlinked\">javascript:alert(1)</code>",
	} {
		if !strings.Contains(a.body, w) {
			t.Errorf("incident page lacks %q", w)
		}
	}
	// The timeline: one <li> per entry, oldest first, each with its UTC time.
	i := strings.Index(a.body, `<section id="timeline">`)
	if i < 0 {
		t.Fatal("no timeline section")
	}
	sec := a.body[i : i+strings.Index(a.body[i:], "</section>")]
	lis := regexp.MustCompile(`<li><time datetime="([^"]+)">`).FindAllStringSubmatch(sec, -1)
	want := []string{"2026-12-01T11:40:00Z", "2026-12-01T11:41:00Z", "2026-12-01T11:55:00Z"}
	var got []string
	for _, m := range lis {
		got = append(got, m[1])
	}
	if !slices.Equal(got, want) || strings.Count(sec, "<li>") != 3 {
		t.Errorf("timeline times = %v, want %v (UTC, oldest first)\n%s", got, want, sec)
	}
}

func TestIncidentPageWithoutExtras(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no evidence", nil, "No evidence: it is gathered when an incident is declared at Sev 1 or 2."},
		{"evidence unreadable", errors.New("disk gone"), "The evidence could not be read."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := inc("bare", 3, incident.StateOpen, "web", time.Minute)
			v.Diagnosis = nil
			src := &fakeSource{details: map[string]view.Detail{"bare": {Incident: v}}, evidenceErr: tc.err}
			a := get(t, newUI(t, src).Handler(), http.MethodGet, "/incidents/bare")
			if a.code != 200 {
				t.Fatalf("code %d", a.code)
			}
			for _, w := range []string{tc.want, "No diagnosis yet.", "No post-mortem.", "No alerts kept."} {
				if !strings.Contains(a.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
}

var (
	tagRE  = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9]*)((?:[^>"']|"[^"]*"|'[^']*')*)>`)
	attrRE = regexp.MustCompile(`([^\s=/"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?`)
)

// liveMarkup lists what an injection would have created: script elements
// other than ours, event handler attributes, javascript: links.
func liveMarkup(body string) []string {
	var bad []string
	for _, m := range tagRE.FindAllStringSubmatch(body, -1) {
		tag, attrs := strings.ToLower(m[1]), m[2]
		parsed := map[string]string{}
		for _, am := range attrRE.FindAllStringSubmatch(attrs, -1) {
			name := strings.ToLower(am[1])
			val := strings.Trim(am[2], `"'`)
			parsed[name] = html.UnescapeString(val)
			if strings.HasPrefix(name, "on") {
				bad = append(bad, "handler attribute in "+m[0])
			}
			if name == "style" {
				bad = append(bad, "style attribute in "+m[0])
			}
		}
		if tag == "script" && parsed["src"] != "/static/amtriage.js" {
			bad = append(bad, "script "+m[0])
		}
		for _, k := range []string{"href", "src", "action", "formaction"} {
			if v, ok := parsed[k]; ok && !(tag == "link" && parsed["rel"] == "icon" && v == "data:,") { // ours: no favicon request
				l := strings.ToLower(strings.TrimSpace(v))
				if !(strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "/")) || strings.HasPrefix(l, "//") {
					bad = append(bad, k+"="+v+" in "+m[0])
				}
			}
		}
	}
	return bad
}

func TestEscaping(t *testing.T) {
	src := detailedSource()
	// The board's cells too: service and the category come from alerts and the cluster.
	b := src.incs[0]
	b.Service = evil("svc")
	b.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.Category(evil("cat"))}
	src.incs = append(src.incs, b)
	src.incs[1].ID = evil("id")
	h := newUI(t, src).Handler()
	for _, target := range []string{"/", "/incidents/inc-1", "/?service=" + strings.ReplaceAll(xssScript, "<", "%3C")} {
		a := get(t, h, http.MethodGet, target)
		if bad := liveMarkup(a.body); len(bad) > 0 {
			t.Errorf("GET %s: live markup from alert strings:\n%s", target, strings.Join(bad, "\n"))
		}
		if strings.Contains(a.body, xssScript) || strings.Contains(a.body, `"onmouseover`) {
			t.Errorf("GET %s: unescaped payload in the page", target)
		}
		if strings.Count(a.body, "<script") != 1 {
			t.Errorf("GET %s: %d script tags, want ours alone", target, strings.Count(a.body, "<script"))
		}
	}
	// The scanner itself finds what it must.
	for _, s := range []string{`<a href="javascript:alert(1)">`, `<img src=x onerror=alert(1)>`, `<script>alert(1)</script>`, `<p style="x">`, `<a href="//evil">`} {
		if len(liveMarkup(s)) == 0 {
			t.Errorf("the scanner misses %s", s)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{{}, {Source: &fakeSource{}, GrafanaURL: "javascript:alert(1)"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
}

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{-time.Second, "0s"}, {45 * time.Second, "45s"}, {12 * time.Minute, "12m"}, {3*time.Hour + 59*time.Minute, "3h"}, {47 * time.Hour, "47h"}, {50 * time.Hour, "2d"}} {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// What a shared or crafted board URL carries is bounded: a page number of
// any size is an empty page (never a panic), parameters the board does not
// read and repeated values are not echoed into its links, and a
// configured service with nothing on the board may be filtered on.
func TestBoardQueryBounds(t *testing.T) {
	src := &fakeSource{incs: []view.Incident{inc("a", 1, incident.StateOpen, "api", time.Minute)}}
	u, err := New(Options{Source: src, Now: func() time.Time { return now }, Services: []string{"api", "checkout"}})
	if err != nil {
		t.Fatal(err)
	}
	h := u.Handler()
	for _, p := range []string{"9223372036854775807", "92233720368547759", "46116860184273880"} {
		if a := get(t, h, http.MethodGet, "/?page="+p); a.code != http.StatusOK || len(rowIDs(a.body)) != 0 {
			t.Errorf("page %s: %d with %d rows, want an empty page", p, a.code, len(rowIDs(a.body)))
		}
	}
	plain := get(t, h, http.MethodGet, "/?service=api")
	junk := "&x=" + strings.Repeat("y", 100<<10) + strings.Repeat("&service=api", 2000)
	if a := get(t, h, http.MethodGet, "/?service=api"+junk); a.code != http.StatusOK || len(a.body) > len(plain.body)+1024 {
		t.Errorf("a 100 KB unknown parameter and 2000 repeats: %d, %d bytes against %d without", a.code, len(a.body), len(plain.body))
	}
	if a := get(t, h, http.MethodGet, "/?service=checkout"); a.code != http.StatusOK || len(rowIDs(a.body)) != 0 {
		t.Errorf("a configured service with no incident: %d, %d rows; want an empty board", a.code, len(rowIDs(a.body)))
	}
	if a := get(t, h, http.MethodGet, "/?service=nope"); a.code != http.StatusBadRequest || !strings.Contains(a.body, "checkout") {
		t.Errorf("an unknown service: %d, want 400 naming the configured ones", a.code)
	}
}

// An incident page stays bounded whatever its alerts carry.
func TestIncidentPageBounded(t *testing.T) {
	huge := strings.Repeat("v", 200<<10)
	d := view.Detail{Incident: inc("big", 1, incident.StateOpen, "api", time.Minute)}
	d.Reasons = []string{huge}
	for i := range view.MaxAlerts {
		labels := map[string]string{"alertname": "A", "blob": huge}
		for j := range 200 {
			labels[fmt.Sprintf("l%03d", j)] = "x"
		}
		d.Alerts = append(d.Alerts, view.Alert{Fingerprint: fmt.Sprint(i), Alertname: "A", Labels: labels, Reasons: []string{huge}})
	}
	for range 200 {
		d.Timeline = append(d.Timeline, incident.Entry{At: now, Kind: "update", Text: huge})
	}
	src := &fakeSource{details: map[string]view.Detail{"big": d}}
	a := get(t, newUI(t, src).Handler(), http.MethodGet, "/incidents/big")
	if a.code != http.StatusOK || len(a.body) > 2<<20 {
		t.Errorf("incident page: %d, %d bytes for 50 alerts of 200 KB labels; want under 2 MiB", a.code, len(a.body))
	}
}
