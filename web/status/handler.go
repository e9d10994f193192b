package status

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtriage/amtriage/view"
	"github.com/amtriage/amtriage/web"
)

// Paths the handler answers. The page's own stylesheet and reload script are
// served beside it, not under /static, so the status page needs nothing
// else mounted; they carry no data and are as public as the page.
const (
	PagePath   = "/status"
	StylePath  = "/status/status.css"
	ScriptPath = "/status/status.js"
)

// DefaultHistory is how far back the page's history goes: the runbook's
// "Document incident on status page history", 30 days.
const DefaultHistory = 30 * 24 * time.Hour

// DefaultTitle heads the page when status_page.title is empty.
const DefaultTitle = "Service status"

// MaxHistory bounds the history shown, so the page stays small through a
// bad month; the rest are counted.
const MaxHistory = 200

//go:embed templates/status.html
var templates embed.FS

//go:embed assets/status.css
var styleCSS []byte

//go:embed assets/status.js
var scriptJS []byte

var page = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock":   clock,
	"date":    func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") },
	"words":   Words,
	// until is an end time after its start: the date only when another day.
	"until": func(end, start time.Time) string {
		end, start = end.UTC(), start.UTC()
		if end.Format(time.DateOnly) == start.Format(time.DateOnly) {
			return end.Format("15:04 UTC")
		}
		return end.Format("2 Jan 2006 15:04 UTC")
	},
	"class": func(p Phase) string { return strings.ToLower(string(p)) },
}).ParseFS(templates, "templates/status.html"))

// Options configures the page.
type Options struct {
	// Incidents lists every incident not closed and those closed at or
	// after since (the pipeline's Board).
	Incidents func(since time.Time) []view.Incident
	// Public says whether a service's profile has public: true. Nil shows
	// nothing: the page fails closed. Only incidents whose alerts all
	// matched that profile (view.Incident.Profile) are shown.
	Public func(service string) bool
	// Services are the public services to list with their state, in
	// order, even when they have no incident (the configuration's services
	// with public: true). Nil lists those public services that have one.
	// Each is checked with Public too.
	Services []string
	// Title heads the page (status_page.title); DefaultTitle when empty.
	Title string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// History is how far back closed incidents are shown; DefaultHistory
	// when zero or negative.
	History time.Duration
	// Log reports rendering failures; slog.Default() when nil.
	Log *slog.Logger
	// Cadence is how often updates go out while open
	// (incidents.sev1_updates, sev2_updates): the page's next update.
	Cadence Cadence
	// CacheFor, when positive, serves the page rendered once for that
	// long: it is open to anyone, and each rendering copies the incidents
	// under the pipeline's lock.
	CacheFor time.Duration
}

// New is the status page's handler: GET and HEAD of PagePath, StylePath and
// ScriptPath, without auth. Mount it at all three, e.g. "GET /status" and
// "GET /status/" on a ServeMux; any other path is a 404.
func New(o Options) http.Handler {
	if o.Title == "" {
		o.Title = DefaultTitle
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.Public == nil {
		o.Public = func(string) bool { return false }
	}
	if o.Incidents == nil {
		o.Incidents = func(time.Time) []view.Incident { return nil }
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &handler{o: o}
}

type handler struct {
	o Options

	mu       sync.Mutex
	cached   []byte
	cachedAt time.Time
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	web.SecurityHeaders(hdr) // the board's: the page uses only its own stylesheet and script
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case PagePath:
		h.page(w, r)
	case StylePath:
		asset(w, r, "text/css; charset=utf-8", styleCSS)
	case ScriptPath:
		asset(w, r, "text/javascript; charset=utf-8", scriptJS)
	default:
		http.NotFound(w, r)
	}
}

// asset serves an embedded file; it changes only with the binary, so an
// hour's caching is safe and a deploy is seen within one.
func asset(w http.ResponseWriter, r *http.Request, ctype string, body []byte) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	write(w, r, ctype, body)
}

// write sends body with its length; HEAD gets the headers only.
func write(w http.ResponseWriter, r *http.Request, ctype string, body []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body) // the client went away: nothing to do
	}
}

// serviceState is one public service and how it is doing.
type serviceState struct {
	Name  string
	State string
	// Level is the most severe current incident's, 0 when operational.
	Level   int
	Monitor bool
}

type pageData struct {
	Title string
	// Overall is the banner, from the current incidents; OverallClass
	// colours it (the words say the same).
	Overall, OverallClass string
	Now                   time.Time
	Current               []Entry
	History               []Entry
	HistoryDropped        int
	HistoryDays           int
	Services              []serviceState
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	body, err := h.rendered(h.o.Now().UTC())
	if err != nil {
		h.o.Log.Error("status page: rendering", "err", err)
		http.Error(w, "status page unavailable", http.StatusInternalServerError)
		return
	}
	// Proxies and browsers may share it for as long as the page takes to
	// refresh itself: it is the same for everyone.
	w.Header().Set("Cache-Control", "public, max-age=30")
	write(w, r, "text/html; charset=utf-8", body)
}

// rendered is the page at now, from the cache when it is recent enough.
// Rendered into a buffer first so a template failure is a clean 500, not
// half a page with a 200.
func (h *handler) rendered(now time.Time) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock() // one rendering at a time: a crowd waits for it
	if h.o.CacheFor > 0 && h.cached != nil && now.Sub(h.cachedAt) >= 0 && now.Sub(h.cachedAt) < h.o.CacheFor {
		return h.cached, nil
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, h.build(now)); err != nil {
		return nil, err
	}
	h.cached, h.cachedAt = buf.Bytes(), now
	return h.cached, nil
}

// build maps the public services' incidents to entries: the current ones
// most severe first, then oldest; the history newest first, bounded.
func (h *handler) build(now time.Time) pageData {
	since := now.Add(-h.o.History)
	data := pageData{Title: h.o.Title, Now: now, HistoryDays: int(h.o.History.Round(24*time.Hour) / (24 * time.Hour))}
	for _, inc := range h.o.Incidents(since) {
		// The profile, not the name: a label's value can name an
		// incident after a public profile its alerts do not match
		// (staging's job="checkout"). Every alert must have matched it.
		if inc.Service == "" || inc.Profile != inc.Service || !h.o.Public(inc.Profile) {
			continue
		}
		e := h.o.Cadence.Public(inc, now)
		switch {
		case e.Hidden():
		case e.Phase != Resolved:
			data.Current = append(data.Current, e)
		case !e.Ended.Before(since) || !inc.Closed.Before(since):
			// The source may return more than asked: the bound is
			// checked here too.
			data.History = append(data.History, e)
		}
	}
	slices.SortStableFunc(data.Current, func(a, b Entry) int {
		if a.Level != b.Level {
			return int(a.Level) - int(b.Level)
		}
		return a.Started.Compare(b.Started)
	})
	slices.SortStableFunc(data.History, func(a, b Entry) int { return b.Ended.Compare(a.Ended) })
	if len(data.History) > MaxHistory {
		data.HistoryDropped = len(data.History) - MaxHistory
		data.History = data.History[:MaxHistory]
	}
	data.Services = h.services(data.Current)
	data.Overall, data.OverallClass = overall(data.Current)
	return data
}

// services lists the public services with the words of their most severe
// current incident: "Operational" when none.
func (h *handler) services(current []Entry) []serviceState {
	names := h.o.Services
	if names == nil {
		for _, e := range current {
			names = append(names, e.Service)
		}
		slices.Sort(names)
	}
	var out []serviceState
	seen := map[string]bool{}
	for _, name := range names {
		if name == "" || seen[name] || !h.o.Public(name) {
			continue
		}
		seen[name] = true
		s := serviceState{Name: name, State: "Operational"}
		for _, e := range current { // most severe first
			if e.Service != name {
				continue
			}
			if e.Phase == Monitoring {
				if s.Level == 0 {
					s.State, s.Level, s.Monitor = "Recovered, monitoring", int(e.Level), true
				}
				continue
			}
			s.State, s.Level, s.Monitor = capital(titleWords[e.Level]), int(e.Level), false
			break
		}
		out = append(out, s)
	}
	return out
}

// overall is the banner: a major outage if any open incident is Sev 1,
// recovering if all are being monitored.
func overall(current []Entry) (words, class string) {
	words, class = "All systems operational", "operational"
	for _, e := range current { // most severe first
		switch {
		case e.Phase == Monitoring:
			if class == "operational" {
				words, class = "Some systems are recovering", "monitoring"
			}
		case e.Level == 1:
			return "Major outage in progress", "sev-1"
		default:
			words, class = "Some systems are affected", "affected"
		}
	}
	return words, class
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// clock is t as the runbook writes it, "14:35 UTC", with the date when it
// is not today's.
func clock(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Format(time.DateOnly) == now.Format(time.DateOnly) {
		return t.Format("15:04 UTC")
	}
	return t.Format("2 Jan 15:04 UTC")
}
