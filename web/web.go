package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the pages' Content-Security-Policy: no inline script or style, so
// an alert's text that slipped through escaping still could not run.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// PageSize is the most rows the board shows on one page: past it, ?page=N.
const PageSize = 200

// ClosedFor is how long closed incidents stay on the board.
const ClosedFor = 7 * 24 * time.Hour

// Options configure the pages.
type Options struct {
	Source Source
	// Now is the clock (ages, durations); default time.Now.
	Now func() time.Time
	Log *slog.Logger
	// GrafanaURL, when set, is a dashboard's absolute URL: each incident
	// links it over the incident's time range.
	GrafanaURL string
	// Services are the configured profiles' names: the board's service
	// filter takes them even when none of theirs is on the board.
	Services []string
}

// UI serves the board, the incident pages and their assets.
type UI struct {
	src      Source
	services []string
	now      func() time.Time
	log      *slog.Logger
	grafana  string
	pages    map[string]*template.Template
	static   map[string]asset
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// New parses the templates and reads the assets once: a broken template
// fails the daemon's start, not a request.
func New(o Options) (*UI, error) {
	if o.Source == nil {
		return nil, fmt.Errorf("web: no source")
	}
	u := &UI{src: o.Source, now: o.Now, log: o.Log, grafana: o.GrafanaURL, services: slices.Clone(o.Services), pages: map[string]*template.Template{}, static: map[string]asset{}}
	if u.now == nil {
		u.now = time.Now
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if o.GrafanaURL != "" {
		if _, ok := linkable(o.GrafanaURL); !ok {
			return nil, fmt.Errorf("web: grafana URL %q is not an absolute http(s) URL", o.GrafanaURL)
		}
	}
	for _, name := range []string{"board", "incident", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parsing the %s page: %w", name, err)
		}
		u.pages[name] = t
	}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		sum := sha256.Sum256(b)
		ctype := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}[path.Ext(p)]
		u.static["/"+p] = asset{body: b, ctype: cmpOr(ctype, "application/octet-stream"), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: embedding the assets: %w", err)
	}
	return u, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Handler serves the three routes on their own, for tests and embedding;
// the daemon mounts ServeBoard, ServeIncident and Static behind its auth.
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", u.ServeBoard)
	mux.HandleFunc("GET /incidents/{id}", u.ServeIncident)
	mux.Handle("GET /static/", u.Static())
	return mux
}

// Static serves the embedded assets under /static/. They carry no data,
// so they need no auth; the pages link them by a fixed name, so they are
// cached briefly and revalidated by ETag rather than for ever.
func (u *UI) Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		a, ok := u.static[r.URL.Path]
		if !ok {
			u.errorPage(w, r, http.StatusNotFound, "Not found", "There is no asset "+r.URL.Path+".", nil)
			return
		}
		w.Header().Set("Content-Type", a.ctype)
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// SecurityHeaders go on every answer of the pages, errors included, the
// status page's too.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// render executes a page into a buffer first, so that a failing template
// answers 500 instead of half a page, and HEAD gets the right length.
func (u *UI) render(w http.ResponseWriter, r *http.Request, code int, page string, data any) {
	var b bytes.Buffer
	if err := u.pages[page].Execute(&b, data); err != nil {
		u.log.Error("rendering a page", "page", page, "err", err)
		SecurityHeaders(w.Header())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	SecurityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Incidents carry labels and log lines: never kept by a shared cache.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

// errorData is the error page: a heading, a sentence and, for bad
// filters, what is allowed.
type errorData struct {
	Title   string
	Message string
	Allowed []allowedValues
	Refresh bool
}

type allowedValues struct {
	Param  string
	Values []string
}

func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, code int, title, msg string, allowed []allowedValues) {
	u.render(w, r, code, "error", errorData{Title: title, Message: msg, Allowed: allowed})
}

var funcs = template.FuncMap{
	"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

// maxCell bounds a board cell's text (runes): with PageSize rows it bounds
// the page's size whatever the alerts say.
const maxCell = 160

// clip shortens s to n runes, marking the cut.
func clip(n int, s string) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// age is a short duration for a table cell: 45s, 12m, 3h, 5d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	}
}
