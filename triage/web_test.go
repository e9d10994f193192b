package triage

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/payloads"
	"github.com/amtriage/amtriage/view"
)

// TestWebPagesOverTheDaemon serves the pages from a whole daemon: an
// alert posted through the webhook is on the board and has its page,
// both behind the API's basic auth; the assets are not; the JSON
// catch-all still answers the rest.
func TestWebPagesOverTheDaemon(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BasicAuth.Username = "oncall"
	cfg.Auth.BasicAuth.Password = "pa55"
	h := servingHarness(t, cfg)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("oncall:pa55"))
	h.mustPost(payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) {
		a := payloads.FirstAlert(m)
		a["labels"].(map[string]any)["evil"] = `<script>alert(1)</script>"onmouseover=alert(1)`
		a["generatorURL"] = "javascript:alert(1)"
	}), auth)
	h.settle()
	res := h.do(http.MethodGet, "/api/incidents", nil, auth)
	var list struct {
		Incidents []view.Incident `json:"incidents"`
	}
	if err := json.Unmarshal(res.body, &list); err != nil || len(list.Incidents) != 1 {
		t.Fatalf("incidents: %v %s", err, res.body)
	}
	id := list.Incidents[0].ID

	for _, tc := range []struct {
		method, path, auth string
		code               int
		ctype              string
		has                []string
	}{
		{"GET", "/", "", 401, "application/json", nil},
		{"GET", "/incidents/" + id, "", 401, "application/json", nil},
		{"GET", "/", auth, 200, "text/html; charset=utf-8", []string{`<tr data-incident="` + id + `" data-severity="3" data-state="open"`, "checkout p99 latency above 1s", "Sev 3"}},
		{"HEAD", "/", auth, 200, "text/html; charset=utf-8", nil},
		{"GET", "/?state=nope", auth, 400, "text/html; charset=utf-8", []string{"<code>verifying</code>"}},
		{"GET", "/incidents/" + id, auth, 200, "text/html; charset=utf-8", []string{`<h1 id="title">`, `<section id="timeline">`,
			"&lt;script&gt;alert(1)&lt;/script&gt;", `<code class="unlinked">javascript:alert(1)</code>`,
			`<a href="https://runbooks.example.com/shop/checkout/HighLatencyP99" rel="noopener noreferrer">`}},
		{"GET", "/incidents/nope", auth, 404, "text/html; charset=utf-8", []string{"No such incident"}},
		{"GET", "/static/amtriage.css", "", 200, "text/css; charset=utf-8", []string{"prefers-color-scheme"}},
		{"GET", "/static/amtriage.js", "", 200, "text/javascript; charset=utf-8", nil},
		{"POST", "/", auth, 405, "application/json", nil},
		{"GET", "/status", auth, 404, "application/json", nil}, // status_page.enabled is off
		{"GET", "/api/nope", auth, 404, "application/json", nil},
	} {
		res := h.do(tc.method, tc.path, nil, tc.auth)
		if res.code != tc.code || !strings.HasPrefix(res.header.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s %s (auth %t) = %d %q, want %d %q\n%.500s", tc.method, tc.path, tc.auth != "", res.code, res.header.Get("Content-Type"), tc.code, tc.ctype, res.body)
			continue
		}
		if tc.code == 401 && !strings.Contains(res.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s %s: 401 without a basic auth challenge: the browser would not ask", tc.method, tc.path)
		}
		if strings.HasPrefix(tc.ctype, "text/") && res.header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s %s: no CSP", tc.method, tc.path)
		}
		for _, w := range tc.has {
			if !strings.Contains(string(res.body), w) {
				t.Errorf("%s %s lacks %q", tc.method, tc.path, w)
			}
		}
		if strings.Contains(string(res.body), "<script>alert") {
			t.Errorf("%s %s: the label's markup is live", tc.method, tc.path)
		}
	}
}

// TestPipelineBoard: the board has what is not closed, whatever the
// cut-off, and what closed at or after it, without alerts.
func TestPipelineBoard(t *testing.T) {
	h := servingHarness(t, testConfig(t))
	p := h.d.Pipeline()
	h.mustPost(payloads.Read(t, "02-firing-single-warning.json"), "")
	h.settle()
	board := func(since time.Time) []view.Incident {
		t.Helper()
		got := p.Board(since)
		for _, v := range got {
			if v.Alerts != nil || v.Service != "checkout" || (v.State == "open" && v.AlertsTotal != 1) {
				t.Errorf("Board entry = %+v, want a summary without alerts", v)
			}
		}
		return got
	}
	if n := len(board(time.Now().Add(time.Hour))); n != 1 {
		t.Fatalf("open incident: Board = %d incidents, want 1 whatever the cut-off", n)
	}
	h.mustPost(payloads.Edit(t, "02-firing-single-warning.json", func(m map[string]any) {
		m["status"] = "resolved"
		a := payloads.FirstAlert(m)
		a["status"], a["endsAt"] = "resolved", time.Now().UTC().Format(time.RFC3339Nano)
	}), "")
	h.settle()
	clockAt(p, time.Now(), 3*time.Hour) // past monitor_for (1h): closed at once on the sweep
	if err := p.Sweep(); err != nil {
		t.Fatal(err)
	}
	h.settle()
	got := board(time.Time{})
	if len(got) != 1 || got[0].State != "closed" || got[0].Closed.IsZero() {
		t.Fatalf("after monitor_for: %+v, want one closed incident", got)
	}
	closed := got[0].Closed
	if n := len(board(closed)); n != 1 {
		t.Errorf("Board(closed at) = %d, want 1 (closed at or after the cut-off)", n)
	}
	if n := len(board(closed.Add(time.Second))); n != 0 {
		t.Errorf("Board(after it closed) = %d, want 0", n)
	}
}
