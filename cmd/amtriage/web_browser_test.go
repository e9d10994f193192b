package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/browsertest"
)

// The web pages' markup contract (issue 13) that these tests read.
const (
	webCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	webUser     = "oncall"
	webPassword = "pw-browser-5e1d"
	webToken    = "browser-e2e-token"
)

// Values an alert carries that the public status page must never show:
// a secret-looking label and annotation, internal addresses (the
// generatorURL's Prometheus, a DSN's database) and the alert's name.
var statusSecrets = []string{
	"tok-9f8e7d6c5b4a",
	"hunter2-pw",
	"10.0.0.5",
	"10.0.0.7",
	"9090/graph",
	"ApiErrorBudgetBurn",
	"internal-db",
	"DatabaseDown",
}

// webEnv is amtriage serving its pages, with basic auth (for the browser)
// and a bearer token (for the webhook and API calls of the test), the
// status page on, and two profiles: api public, internal-db not.
func startWebDaemon(t *testing.T) *daemon {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), webToken+"\n")
	writeFile(t, filepath.Join(dir, "password"), webPassword+"\n")
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), `
store:
  path: `+filepath.Join(dir, "data")+`
auth:
  bearer_token_file: token
  basic_auth: {username: `+webUser+`, password_file: password}
status_page:
  enabled: true
  title: Example status
services:
  - name: api
    match: ['service="api"']
    public: true
  - name: internal-db
    match: ['service="internal-db"']
`)
	d := startDaemon(t, cfg, freeAddr(t))
	d.token = webToken
	return d
}

// postWebAlerts opens a Sev 1 incident for each service (62% errors is
// over the default outage ratio, rule 2), through the webhook.
func postWebAlerts(t *testing.T, d *daemon) {
	t.Helper()
	for _, body := range []string{
		`{"version":"4","status":"firing","groupKey":"{}:{service=\"api\"}","truncatedAlerts":0,"alerts":[{"status":"firing",
"labels":{"alertname":"ApiErrorBudgetBurn","service":"api","severity":"critical","token":"tok-9f8e7d6c5b4a"},
"annotations":{"summary":"api is failing","error_ratio":"62%","description":"dsn postgres://app:hunter2-pw@10.0.0.7/app"},
"startsAt":"` + time.Now().Add(-3*time.Minute).UTC().Format(time.RFC3339) + `","endsAt":"0001-01-01T00:00:00Z",
"generatorURL":"http://10.0.0.5:9090/graph?g0.expr=rate%28errors%5B5m%5D%29","fingerprint":"api0001"}]}`,
		`{"version":"4","status":"firing","groupKey":"{}:{service=\"internal-db\"}","truncatedAlerts":0,"alerts":[{"status":"firing",
"labels":{"alertname":"DatabaseDown","service":"internal-db","severity":"critical"},
"annotations":{"summary":"internal-db is down","error_ratio":"62%"},
"startsAt":"` + time.Now().Add(-2*time.Minute).UTC().Format(time.RFC3339) + `","endsAt":"0001-01-01T00:00:00Z",
"generatorURL":"http://10.0.0.5:9090/graph?g0.expr=up","fingerprint":"db0001"}]}`,
	} {
		if code, err := post(context.Background(), d.url("/webhook"), d.token, []byte(body)); err != nil || code != http.StatusOK {
			t.Fatalf("post the webhook: %d %v", code, err)
		}
	}
}

// checkPage asserts what every page answers and carries: the security
// headers and the markup contract's head (viewport, refresh without JS,
// the embedded stylesheet).
func checkPage(t *testing.T, b *browsertest.Browser, what string, resp browsertest.Response) {
	t.Helper()
	if resp.Status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200", what, resp.Status)
	}
	for _, h := range []struct{ name, want string }{
		{"Content-Security-Policy", webCSP},
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "same-origin"},
	} {
		if got := resp.Header.Get(h.name); got != h.want {
			t.Errorf("%s: %s = %q, want %q", what, h.name, got, h.want)
		}
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("%s: Content-Type %q, want text/html", what, resp.Header.Get("Content-Type"))
	}
	if n := b.Count(`meta[name="viewport"][content="width=device-width, initial-scale=1"]`); n != 1 {
		t.Errorf("%s: %d viewport meta tags, want 1", what, n)
	}
	// With JavaScript on, the browser keeps a noscript's content as text.
	noscript := ""
	if b.Count("noscript") > 0 {
		noscript = b.InnerHTML("noscript")
	}
	if !strings.Contains(noscript, `http-equiv="refresh"`) || !strings.Contains(noscript, `content="30"`) {
		t.Errorf("%s: noscript %q, want a 30 s meta refresh for browsers without JavaScript", what, noscript)
	}
	// The public status page has its own stylesheet under /status/.
	if n := b.Count(`link[rel="stylesheet"][href="/static/amtriage.css"], link[rel="stylesheet"][href="/status/status.css"]`); n != 1 {
		t.Errorf("%s: %d links to amtriage's stylesheet, want 1", what, n)
	}
}

// incidentID waits for the incident of service and returns its ID.
func incidentID(t *testing.T, d *daemon, service string, sev int) string {
	t.Helper()
	var id string
	waitFor(t, 10*time.Second, service+" incident at Sev "+fmt.Sprint(sev), func() bool {
		for _, inc := range d.incidents() {
			if inc.Service == service && inc.Severity == sev {
				id = inc.ID
				return true
			}
		}
		return false
	})
	return id
}

// timelineTimes are the times of the incident's timeline, from the API.
func timelineTimes(t *testing.T, d *daemon, id string) []time.Time {
	t.Helper()
	resp, err := d.get("/api/incidents/" + id)
	if err != nil {
		t.Fatalf("GET /api/incidents/%s: %v", id, err)
	}
	defer resp.Body.Close()
	var body struct {
		Timeline []struct {
			At time.Time `json:"at"`
		} `json:"timeline"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/incidents/%s: %d", id, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode /api/incidents/%s: %v", id, err)
	}
	var out []time.Time
	for _, e := range body.Timeline {
		out = append(out, e.At)
	}
	return out
}

// TestWebPagesInBrowser: a real amtriage, two incidents opened through
// the webhook, and headless Chromium reading the board, an incident page
// and the public status page as a user would, with their console clean
// and a screenshot of each.
func TestWebPagesInBrowser(t *testing.T) {
	b := browsertest.Start(t) // first: without Chromium, skip before starting anything
	d := startWebDaemon(t)
	postWebAlerts(t, d)
	apiID := incidentID(t, d, "api", 1)
	dbID := incidentID(t, d, "internal-db", 1)

	// The assets carry no data: no auth.
	for path, ctype := range map[string]string{"/static/amtriage.css": "text/css", "/static/amtriage.js": "text/javascript"} {
		resp, err := httpClient.Get(d.url(path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s without credentials: %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
		}
	}

	t.Run("without credentials the board is 401, the status page open", func(t *testing.T) {
		b := b.With(t)
		for _, path := range []string{"/", "/incidents/" + apiID} {
			if resp := b.Navigate(d.url(path)); resp.Status != http.StatusUnauthorized {
				t.Errorf("GET %s in the browser without credentials: %d, want 401", path, resp.Status)
			}
		}
		b.SetHeaders(map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(webUser+":wrong"))})
		if resp := b.Navigate(d.url("/")); resp.Status != http.StatusUnauthorized {
			t.Errorf("GET / with a wrong password: %d, want 401", resp.Status)
		}
		b.SetHeaders(nil)
		b.Problems() // each 401 is logged as a failed load: expected here
	})

	t.Run("status page: the public service, none of the secrets", func(t *testing.T) {
		b := b.With(t)
		resp := b.Navigate(d.url("/status"))
		checkPage(t, b, "status page", resp)
		b.WaitVisible("main#status")
		b.WaitVisible(`main#status article.incident[data-service="api"]`)
		if got := b.Text(`article.incident[data-service="api"]`); !strings.Contains(got, "api") {
			t.Errorf("the api incident's text %q does not name the service", got)
		}
		for _, sel := range []string{`[data-service="internal-db"]`, `article[data-service]:not([data-service="api"])`} {
			if n := b.Count(sel); n != 0 {
				t.Errorf("status page: %d elements %s, want none (internal-db is not public)", n, sel)
			}
		}
		html, text := b.HTML(), b.Text("body")
		for _, s := range statusSecrets {
			if strings.Contains(html, s) || strings.Contains(text, s) {
				t.Errorf("status page shows %q", s)
			}
		}
		b.Screenshot("status")
		b.NoProblems("status page")
	})

	t.Run("board and incident page with basic auth", func(t *testing.T) {
		b := b.With(t)
		b.SetHeaders(map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(webUser+":"+webPassword))})
		defer b.SetHeaders(nil)

		resp := b.Navigate(d.url("/"))
		checkPage(t, b, "board", resp)
		row := fmt.Sprintf(`table#incidents tr[data-incident=%q]`, apiID)
		b.WaitVisible(row)
		attrs := b.Attrs(row)
		if len(attrs) != 1 || attrs[0]["data-severity"] != "1" || attrs[0]["data-state"] != "open" {
			t.Errorf("board: api rows %v, want one with data-severity=1 data-state=open", attrs)
		}
		// The board is internal: it lists the non-public service too.
		if n := b.Count(fmt.Sprintf(`table#incidents tr[data-incident=%q]`, dbID)); n != 1 {
			t.Errorf("board: %d internal-db rows, want 1", n)
		}
		b.Screenshot("board")
		b.NoProblems("board")

		before := timelineTimes(t, d, apiID)
		link := fmt.Sprintf(`%s a[href="/incidents/%s"]`, row, apiID)
		resp = b.ClickNavigate(link)
		checkPage(t, b, "incident page", resp)
		if loc := b.Location(); !strings.HasSuffix(loc, "/incidents/"+apiID) {
			t.Fatalf("the click opened %s, want /incidents/%s", loc, apiID)
		}
		b.WaitVisible("h1#title")
		if title := strings.TrimSpace(b.Text("h1#title")); title == "" {
			t.Error("incident page: empty h1#title")
		}
		b.WaitVisible("section#timeline li")
		if n := b.Count("section#timeline li:not(:has(time[datetime]))"); n != 0 {
			t.Errorf("incident page: %d timeline entries without a <time datetime>", n)
		}
		var shown []time.Time
		for _, a := range b.Attrs("section#timeline li time[datetime]") {
			at, err := time.Parse(time.RFC3339, a["datetime"])
			if err != nil || !strings.HasSuffix(a["datetime"], "Z") {
				t.Errorf("timeline datetime %q: want RFC 3339 in UTC (%v)", a["datetime"], err)
				continue
			}
			shown = append(shown, at)
		}
		// Every entry the API had before the page loaded is on the page
		// (entries are only appended; the page may show later ones too).
		for _, at := range before {
			found := false
			for _, s := range shown {
				found = found || s.Equal(at.Truncate(time.Second)) || s.Equal(at)
			}
			if !found {
				t.Errorf("incident page: timeline entry at %s missing (page shows %v)", at.UTC().Format(time.RFC3339Nano), shown)
			}
		}
		b.Screenshot("incident")
		b.NoProblems("incident page")

		// On a phone the pages fit the screen's width: no sideways
		// scrolling (the board's table stacks its rows).
		b.Viewport(375, 800)
		for _, page := range []string{"/", "/incidents/" + apiID, "/status"} {
			b.Navigate(d.url(page))
			if w := b.Int(`document.documentElement.scrollWidth`); w > 375 {
				t.Errorf("%s on a 375 px phone is %d px wide", page, w)
			}
		}
		b.Screenshot("board-phone")
		b.NoProblems("pages on a phone")
	})
}
