package browsertest

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// csp is the policy the amtriage pages send (the markup contract).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

const goodPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/site.css">
<script src="/static/site.js" defer></script>
<title>good</title></head>
<body><h1 id="title">Incidents</h1>
<table id="incidents"><tr data-incident="i1"><td class="sev1">Sev 1</td><td><a href="/second">api is failing</a></td></tr></table>
<p id="hidden" hidden>not shown</p>
</body></html>`

const secondPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><link rel="stylesheet" href="/static/site.css"><title>second</title></head>
<body><h1 id="title">The second page</h1><section id="timeline"><ol><li><time datetime="2026-11-23T03:00:00Z">03:00</time> opened</li></ol></section></body></html>`

// badPage breaks the CSP twice (an inline script, a style attribute), logs
// an error, throws, and loads a missing image.
const badPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>bad</title>
<script>document.title = "inline ran";</script>
<script src="/static/bad.js"></script></head>
<body><p style="color: red">styled</p><img src="/missing.png" alt=""></body></html>`

const blankPage = `<!doctype html><html><head><link rel="icon" href="data:,"></head><body></body></html>`

func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	html := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, body)
		}
	}
	static := func(ctype, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			io.WriteString(w, body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", html(goodPage))
	mux.Handle("GET /second", html(secondPage))
	mux.Handle("GET /bad", html(badPage))
	mux.Handle("GET /blank", html(blankPage))
	mux.Handle("GET /static/site.css", static("text/css", `body{font-family:sans-serif;background:#fff;color:#123}.sev1{background:#c00;color:#fff;padding:1em}`))
	mux.Handle("GET /static/site.js", static("text/javascript", `document.body.dataset.js = "ran";`))
	mux.Handle("GET /static/bad.js", static("text/javascript", `console.error("bad thing", 42); throw new Error("boom from bad.js");`))
	mux.HandleFunc("GET /private", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "am" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		html(secondPage)(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// One browser for the cases: its start is most of the cost.
func TestBrowser(t *testing.T) {
	srv := testServer(t)
	b := Start(t)

	t.Run("a clean page: no problems, headers, clicks, text", func(t *testing.T) {
		b := b.With(t)
		resp := b.Navigate(srv.URL + "/")
		if resp.Status != http.StatusOK || resp.Header.Get("Content-Security-Policy") != csp {
			t.Fatalf("response %d %v, want 200 with the CSP", resp.Status, resp.Header)
		}
		b.WaitVisible("table#incidents tr[data-incident]")
		if got := b.Text("h1#title"); got != "Incidents" {
			t.Errorf("h1 text %q", got)
		}
		if got := b.Count("tr[data-incident]"); got != 1 {
			t.Errorf("%d rows, want 1", got)
		}
		if got := b.Count("tr.nothing"); got != 0 {
			t.Errorf("Count of an absent selector = %d", got)
		}
		if got := b.Attrs("body"); len(got) != 1 || got[0]["data-js"] != "ran" {
			t.Errorf("body attributes %v: the external script did not run", got)
		}
		if !strings.Contains(b.HTML(), `<a href="/second">api is failing</a>`) {
			t.Error("HTML lacks the link")
		}
		b.Screenshot("good")
		b.NoProblems("good page")

		resp = b.ClickNavigate(`tr[data-incident="i1"] a`)
		if resp.Status != 200 || !strings.HasSuffix(b.Location(), "/second") {
			t.Fatalf("after the click: %d at %s", resp.Status, b.Location())
		}
		if got := b.Attrs("section#timeline li time"); len(got) != 1 || got[0]["datetime"] != "2026-11-23T03:00:00Z" {
			t.Errorf("timeline times %v", got)
		}
		if got := b.InnerHTML("section#timeline ol"); !strings.Contains(got, "<time") {
			t.Errorf("timeline inner HTML %q", got)
		}
		b.NoProblems("second page")
	})

	t.Run("a bad page: every kind of problem is caught", func(t *testing.T) {
		b := b.With(t)
		b.Navigate(srv.URL + "/bad")
		got := b.Problems()
		kinds := map[string]int{}
		for _, p := range got {
			kinds[p.Kind]++
		}
		want := map[string]int{"csp": 2, "console": 1, "exception": 1}
		for k, n := range want {
			if kinds[k] < n {
				t.Errorf("%d %s problem(s), want at least %d; all: %v", kinds[k], k, n, got)
			}
		}
		if !slices.ContainsFunc(got, func(p Problem) bool { return p.Kind == "log" && strings.Contains(p.URL, "/missing.png") }) {
			t.Errorf("the missing image is not among the problems: %v", got)
		}
		if !slices.ContainsFunc(got, func(p Problem) bool { return p.Kind == "exception" && strings.Contains(p.Text, "boom from bad.js") }) {
			t.Errorf("the exception's message is not among the problems: %v", got)
		}
		if title, _ := run(b, chromedp.Title()); title == "inline ran" {
			t.Error("the inline script ran despite the CSP")
		}
		if again := b.Problems(); len(again) != 0 {
			t.Errorf("Problems did not forget what it returned: %v", again)
		}
	})

	t.Run("a blank page's screenshot is blank", func(t *testing.T) {
		b := b.With(t)
		b.Navigate(srv.URL + "/blank")
		shot, err := run(b, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckNonBlank(shot); err == nil {
			t.Error("CheckNonBlank accepted the screenshot of an empty page")
		}
		b.NoProblems("blank page")
	})

	t.Run("basic auth: 401 without, the page with the header", func(t *testing.T) {
		b := b.With(t)
		if resp := b.Navigate(srv.URL + "/private"); resp.Status != http.StatusUnauthorized {
			t.Errorf("without credentials: %d, want 401", resp.Status)
		}
		b.Problems() // the 401 is logged as a failed load: expected here
		b.SetHeaders(map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("am:pw"))})
		if resp := b.Navigate(srv.URL + "/private"); resp.Status != http.StatusOK {
			t.Errorf("with credentials: %d, want 200", resp.Status)
		}
		b.WaitVisible("h1#title")
		b.NoProblems("private page")
		b.SetHeaders(nil)
		if resp := b.Navigate(srv.URL + "/private"); resp.Status != http.StatusUnauthorized {
			t.Errorf("after SetHeaders(nil): %d, want 401", resp.Status)
		}
		b.Problems()
	})
}

func TestCheckNonBlank(t *testing.T) {
	encode := func(img image.Image) []byte {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	uniform := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range uniform.Pix {
		uniform.Pix[i] = 0xff
	}
	twoTone := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for x := range 64 {
		for y := range 64 {
			twoTone.Set(x, y, color.Gray{Y: uint8(255 * (x % 2))})
		}
	}
	gradient := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for x := range 64 {
		for y := range 64 {
			gradient.Set(x, y, color.RGBA{R: uint8(x * 4), G: uint8(y * 4), B: 128, A: 255})
		}
	}
	for _, tc := range []struct {
		name    string
		png     []byte
		wantErr string
	}{
		{"not a PNG", []byte("GIF89a"), "not a PNG"},
		{"one colour", encode(uniform), "1 distinct colour"},
		{"two colours", encode(twoTone), "2 distinct colour"},
		{"many colours", encode(gradient), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNonBlank(tc.png)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckNonBlank: %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("CheckNonBlank: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestFind(t *testing.T) {
	t.Run("the environment variable wins", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvChromium, self)
		if got, err := Find(); err != nil || got != self {
			t.Errorf("Find() = %q, %v; want %q", got, err, self)
		}
	})
	t.Run("a missing binary named by the variable is an error", func(t *testing.T) {
		t.Setenv(EnvChromium, "/nonexistent/chromium")
		if got, err := Find(); err == nil || !strings.Contains(err.Error(), EnvChromium) {
			t.Errorf("Find() = %q, %v; want an error naming %s", got, err, EnvChromium)
		}
	})
	t.Run("nothing on PATH", func(t *testing.T) {
		t.Setenv(EnvChromium, "")
		t.Setenv("PATH", t.TempDir())
		if got, err := Find(); err == nil || !strings.Contains(err.Error(), "chromium") {
			t.Errorf("Find() = %q, %v; want an error listing the names tried", got, err)
		}
	})
}
