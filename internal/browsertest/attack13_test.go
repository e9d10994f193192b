package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/triage/postmortem"
	"github.com/amtriage/amtriage/view"
	"github.com/amtriage/amtriage/web"
	"github.com/amtriage/amtriage/web/status"
)

// atkSource is a web.Source a test changes while the browser reads it.
type atkSource struct {
	mu      sync.Mutex
	incs    []view.Incident
	details map[string]view.Detail
}

func (s *atkSource) Board(time.Time) []view.Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]view.Incident(nil), s.incs...)
}

func (s *atkSource) IncidentDetail(id string) (view.Detail, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.details[id]
	return d, ok
}

func (s *atkSource) Postmortem(string, time.Time) (postmortem.Report, bool) {
	return postmortem.Report{}, false
}
func (s *atkSource) Evidence(string) ([]byte, bool, error) { return nil, false, nil }

func (s *atkSource) add(v view.Incident) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.incs = append(s.incs, v)
	if s.details == nil {
		s.details = map[string]view.Detail{}
	}
	s.details[v.ID] = view.Detail{Incident: v}
}

func atkInc(id string) view.Incident {
	return view.Incident{ID: id, Service: "api", Title: "INCIDENT: api " + id, Severity: 1, PeakSeverity: 1, State: incident.StateOpen,
		Started: time.Now().Add(-time.Minute), Reasons: []string{"error ratio 62%"},
		Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment, Summary: "bad rollout", Command: "kubectl -n shop rollout undo deployment/api --to-revision=4"}}
}

// atkServe serves the pages; status, when set, answers every request
// after the first page with that code (credentials expired, daemon down),
// and hits counts the requests of the pages.
func atkServe(t *testing.T, src web.Source, status *atomic.Int32, hits *atomic.Int32) *httptest.Server {
	t.Helper()
	ui, err := web.New(web.Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	h := ui.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hits.Add(1)
			if c := status.Load(); c != 0 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="amtriage"`)
				http.Error(w, "no", int(c))
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fastTimers makes the page's timers 50 times faster (15 s → 300 ms), in
// the page's own world, before its scripts run.
func fastTimers(b *Browser) {
	b.t.Helper()
	src := `(function(){var si=window.setInterval,st=window.setTimeout;
window.setInterval=function(f,ms){return si(f,Math.max(20,(ms||0)/50));};
window.setTimeout=function(f,ms){return st(f,Math.max(0,(ms||0)/50));};
var d0=Date.now(),rn=Date.now;Date.now=function(){return d0+(rn()-d0)*50;};})();`
	step(b, "fast timers", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		return err
	}))
}

func (b *Browser) eval(js string) string {
	b.t.Helper()
	return step(b, "eval "+js, chromedp.Evaluate[string](js))
}

func waitRows(b *Browser, want int, within time.Duration) int {
	deadline := time.Now().Add(within)
	n := 0
	for time.Now().Before(deadline) {
		if n = b.Count("#incidents tr[data-incident]"); n == want {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// TestAttack13RefreshFrozenByFocus: the script skips a refresh while
// anything inside <main> has focus, and focus stays where a click left it.
// Ctrl-clicking (or middle-clicking) an incident to open it in a new tab,
// a filter link, or the Copy button leaves the focus in <main>: the board
// then never refreshes again, silently (no "stale" mark), until the reader
// clicks on the page's background.
func TestAttack13RefreshFrozenByFocus(t *testing.T) {
	b := Start(t)
	src := &atkSource{}
	src.add(atkInc("inc-1"))
	var status, hits atomic.Int32
	srv := atkServe(t, src, &status, &hits)
	fastTimers(b)
	if resp := b.Navigate(srv.URL + "/"); resp.Status != 200 {
		t.Fatalf("board: %d", resp.Status)
	}
	// Control: untouched, the board refreshes.
	src.add(atkInc("inc-2"))
	if n := waitRows(b, 2, 3*time.Second); n != 2 {
		t.Fatalf("control: %d rows after a refresh, want 2 (the script did not refresh at all)", n)
	}
	// The reader ctrl-clicks an incident to open it in a new tab.
	nodes := step(b, "rows' links", chromedp.Nodes(chromedp.CSS(`#incidents td.title a`), chromedp.NodeVisible))
	step(b, "ctrl-click", chromedp.MouseClickNode(nodes[0], chromedp.ButtonModifiers(chromedp.ModifierCtrl)))
	t.Logf("focus after the ctrl-click: %s", b.eval(`document.activeElement.tagName + " " + (document.activeElement.getAttribute("href")||"")`))
	src.add(atkInc("inc-3"))
	if n := waitRows(b, 3, 3*time.Second); n != 3 {
		t.Errorf("after ctrl-clicking an incident (open in a new tab) the board shows %d rows for 3 s (= 10 refresh periods), want 3: "+
			"the focus left on the link stops every refresh; stale mark %q", n, b.eval(`document.getElementById("main").getAttribute("data-stale")||""`))
	}
}

// TestAttack13CopyFreezesIncidentPage: clicking Copy leaves the focus on
// the button, inside <main>: the incident page then stops refreshing, so
// its state (open → monitoring) is never updated.
func TestAttack13CopyFreezesIncidentPage(t *testing.T) {
	b := Start(t)
	src := &atkSource{}
	src.add(atkInc("inc-1"))
	var status, hits atomic.Int32
	srv := atkServe(t, src, &status, &hits)
	fastTimers(b)
	b.Navigate(srv.URL + "/incidents/inc-1")
	if b.Count("button.copy:not([hidden])") != 1 {
		t.Skip("no clipboard: the Copy button stays hidden")
	}
	b.Click("button.copy")
	t.Logf("focus after Copy: %s, button says %q", b.eval(`document.activeElement.tagName`), b.Text("button.copy"))
	src.mu.Lock()
	d := src.details["inc-1"]
	d.State = incident.StateMonitoring
	src.details["inc-1"] = d
	src.mu.Unlock()
	deadline := time.Now().Add(4 * time.Second) // 30 s refresh → 600 ms: ~6 periods
	got := ""
	for time.Now().Before(deadline) {
		// Read in one evaluation: the refresh may swap the node between a
		// lookup and a read (Text's "No node with given id").
		if got = strings.TrimSpace(b.eval(`(document.getElementById("state") || {}).textContent || ""`)); got == incident.StateMonitoring {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("after clicking Copy the page still says %q after ~6 refresh periods, want %q: the focused button stops every refresh", got, incident.StateMonitoring)
}

// TestAttack13PollsA401Forever: once the credentials are gone (or the
// daemon answers 500), the script keeps fetching the page every period,
// for as long as the tab is open, with no backoff: a wall screen left on
// the board hammers the daemon (and its auth failure metrics/logs).
func TestAttack13PollsA401Forever(t *testing.T) {
	b := Start(t)
	src := &atkSource{}
	src.add(atkInc("inc-1"))
	var status, hits atomic.Int32
	srv := atkServe(t, src, &status, &hits)
	fastTimers(b)
	b.Navigate(srv.URL + "/")
	status.Store(http.StatusUnauthorized)
	hits.Store(0)
	time.Sleep(6 * time.Second) // 20 periods of 300 ms (15 s each, unaccelerated: 5 minutes)
	n := hits.Load()
	t.Logf("%d fetches in 20 periods after the first 401; stale mark %q", n, b.eval(`document.getElementById("main").getAttribute("data-stale")||""`))
	if n > 8 {
		t.Errorf("%d fetches in 20 refresh periods answered 401: want a backoff (or stop, and say \"sign in again\") after a 401", n)
	}
}

// TestAttack13XSSInBrowser (held): payloads in every alert field the pages
// show, read in Chromium with the refresh running: no script runs, no CSP
// violation, every link is http(s) or our own path.
func TestAttack13XSSInBrowser(t *testing.T) {
	b := Start(t)
	pw := func(s string) string {
		return s + `"><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><svg onload="window.__pwned=3">'` + "`"
	}
	v := atkInc(pw("inc-x"))
	v.Service, v.Title, v.Reasons, v.AcknowledgedBy = pw("svc"), pw("t"), []string{pw("r")}, pw("bob")
	v.Severity, v.PeakSeverity = 2, 2
	v.Closure, v.Verification, v.ClosedBy = pw("c"), pw("v"), pw("cb")
	v.PagerDutyURL = "javascript:window.__pwned=4"
	v.Silence = &view.Silence{ID: pw("s"), URL: "java\tscript:window.__pwned=5", By: pw("by")}
	v.RolledBack = &incident.RollbackDone{Text: pw("rb"), By: pw("rbb")}
	v.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.Category(pw("cat")), Summary: pw("sum"), Evidence: []string{pw("e")}, Command: pw("cmd"),
		Snapshot: &diagnosis.Snapshot{Namespace: pw("ns"), Workload: pw("w"), Pods: []diagnosis.Pod{{Name: pw("pod"), Message: pw("m"), Node: pw("n")}},
			Logs: &diagnosis.Logs{Pod: pw("p"), Lines: []string{pw("line"), "</code></pre><script>window.__pwned=6</script>"}}}}
	urls := []string{"javascript:window.__pwned=7", "data:text/html,<script>parent.__pwned=8</script>", "vbscript:msgbox(1)",
		"java\tscript:window.__pwned=9", "//evil.example/x", `http://x.example/"onmouseover="window.__pwned=10`, " javascript:window.__pwned=11", "JaVaScRiPt:window.__pwned=12",
		"http://a.example/" + pw("")}
	for i, u := range urls {
		v.Alerts = append(v.Alerts, view.Alert{Fingerprint: pw(fmt.Sprint(i)), Alertname: pw("A"), Status: "firing", Severity: 2, Reasons: []string{pw("ar")},
			Labels: map[string]string{pw("k"): pw("v"), "runbook_url": u}, GeneratorURL: u, ResolvedBy: pw("rb")})
	}
	src := &atkSource{}
	src.add(v)
	var status, hits atomic.Int32
	srv := atkServe(t, src, &status, &hits)
	fastTimers(b)
	for _, p := range []string{"/", "/incidents/" + strings.NewReplacer("/", "%2F", "?", "%3F", "#", "%23", "%", "%25", `"`, "%22", "<", "%3C", ">", "%3E", " ", "%20", "`", "%60").Replace(v.ID), "/?service=" + "%3Cscript%3E"} {
		resp := b.Navigate(srv.URL + p)
		time.Sleep(1500 * time.Millisecond) // a few refreshes
		if got := b.eval(`String(window.__pwned||"")`); got != "" {
			t.Errorf("GET %s (%d): window.__pwned = %s", p, resp.Status, got)
		}
		for _, a := range b.Attrs("a[href]") {
			h := a["href"]
			if !(strings.HasPrefix(h, "/") && !strings.HasPrefix(h, "//")) && !strings.HasPrefix(h, "http://") && !strings.HasPrefix(h, "https://") {
				t.Errorf("GET %s: live link %q", p, h)
			}
		}
		if want := 200; !strings.HasPrefix(p, "/?") && resp.Status != want {
			t.Errorf("GET %s = %d, want %d", p, resp.Status, want)
		}
		for _, pr := range b.Problems() {
			if !strings.Contains(pr.Text, "status of 400") { // the bad filter's page is a 400, by design
				t.Errorf("GET %s: %s", p, pr)
			}
		}
		t.Logf("GET %s: %d, %d links checked", p, resp.Status, len(b.Attrs("a[href]")))
	}
}

// TestAttack13StatusReloadDiesOnOneFailure: the public status page's
// script reloads the whole document every 30 s. One reload that fails (a
// 502 from the proxy while amtriage restarts, a 503) replaces the page by
// that error, which has no script: the tab never reloads again and the
// public reads an error page after amtriage is back. The board's script
// fetches first and keeps the page on failure; the status page should too.
func TestAttack13StatusReloadDiesOnOneFailure(t *testing.T) {
	b := Start(t)
	var down atomic.Bool
	var hits atomic.Int32
	sp := status.New(status.Options{
		Incidents: func(time.Time) []view.Incident { return []view.Incident{atkInc("inc-1")} },
		Public:    func(s string) bool { return s == "api" }, Services: []string{"api"},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == status.PagePath {
			hits.Add(1)
			if down.Load() {
				http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
				return
			}
		}
		sp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	fastTimers(b)
	b.Navigate(srv.URL + status.PagePath)
	if b.Count("main#status") != 1 {
		t.Fatal("no status page")
	}
	down.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	down.Store(false) // amtriage is back
	n := hits.Load()
	time.Sleep(3 * time.Second) // 5 periods of 600 ms (the script's 30 s, on an accelerated clock)
	t.Logf("requests: %d while down, %d after; page now %q", n, hits.Load()-n, strings.TrimSpace(b.Text("body")))
	if b.Count("main#status") != 1 {
		t.Errorf("after one failed reload and 5 periods with the daemon back, the public page shows %q and no longer reloads (%d requests since)",
			strings.TrimSpace(b.Text("body")), hits.Load()-n)
	}
}

// TestAttack13WithoutJavaScript (held?): scripts off, the board and an
// incident page render whole, the copy button stays hidden, the noscript
// refresh is live.
func TestAttack13WithoutJavaScript(t *testing.T) {
	b := Start(t)
	src := &atkSource{}
	src.add(atkInc("inc-1"))
	var st, hits atomic.Int32
	srv := atkServe(t, src, &st, &hits)
	step(b, "scripts off", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	for _, p := range []string{"/", "/incidents/inc-1", "/incidents/nope", "/?state=bad"} {
		resp := b.Navigate(srv.URL + p)
		t.Logf("%s: %d, rows %d, copy visible %d, noscript meta refresh elements %d, title %q", p, resp.Status, b.Count("#incidents tr[data-incident]"),
			b.Count("button.copy:not([hidden])"), b.Count(`meta[http-equiv="refresh"]`), b.Text("#title"))
	}
}
