package triage

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/triage/postmortem"
	"github.com/amtriage/amtriage/view"
	"github.com/amtriage/amtriage/web"
	"github.com/amtriage/amtriage/web/status"
)

// Board lists every incident not closed and those closed at or after
// closedSince, without their alerts (a board of a thousand storms stays
// small), most severe first, then oldest.
func (p *Pipeline) Board(closedSince time.Time) []view.Incident {
	p.mu.RLock()
	defer p.mu.RUnlock()
	all := p.book.Incidents("all")
	out := make([]view.Incident, 0, len(all))
	for _, inc := range all {
		if inc.State == incident.StateClosed && cmp.Or(inc.ClosedAt, inc.ResolvedAt).Before(closedSince) {
			continue
		}
		out = append(out, view.SummaryOf(inc))
	}
	return out
}

// webSource is web.Source over the pipeline (incidents, post-mortems) and
// the store (evidence).
type webSource struct {
	p  *Pipeline
	st store.Store
}

var _ web.Source = webSource{}

func (s webSource) Board(closedSince time.Time) []view.Incident { return s.p.Board(closedSince) }

func (s webSource) IncidentDetail(id string) (view.Detail, bool) { return s.p.IncidentDetail(id) }

func (s webSource) Postmortem(id string, now time.Time) (postmortem.Report, bool) {
	return s.p.Postmortem(id, now, s.st != nil && s.st.HasEvidence(id))
}

func (s webSource) Evidence(id string) ([]byte, bool, error) {
	if s.st == nil {
		return nil, false, nil
	}
	b, ok, err := s.st.Evidence(id)
	if err != nil {
		return nil, false, fmt.Errorf("reading the evidence of %s: %w", id, err)
	}
	return b, ok, nil
}

// webPages are the pages the API mounts: the board and incident pages
// (behind its auth) and, when status_page.enabled, the public status page.
type webPages struct {
	ui     *web.UI
	status http.Handler // nil: GET /status is not served
}

// newWebPages builds the pages of cfg over the pipeline and the store.
func newWebPages(cfg *rules.Config, p *Pipeline, st store.Store, now func() time.Time, log *slog.Logger) (*webPages, error) {
	services := make([]string, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		services = append(services, s.Name)
	}
	ui, err := web.New(web.Options{Source: webSource{p: p, st: st}, Now: now, Log: log, GrafanaURL: grafanaDashboard(cfg.Grafana), Services: services})
	if err != nil {
		return nil, fmt.Errorf("web pages: %w", err)
	}
	if cfg.StatusPage.Enabled && time.Duration(cfg.Incidents.Retention) < status.DefaultHistory {
		log.Warn("status_page: its history covers incidents.retention, not 30 days; set incidents.retention: 720h for all 30",
			"retention", time.Duration(cfg.Incidents.Retention).String())
	}
	return &webPages{ui: ui, status: statusPage(cfg, p, now)}, nil
}

// statusPage is the public status page, GET /status, when
// status_page.enabled; nil otherwise. It is served without auth: it shows
// only the public wording of the services whose profile says public: true.
func statusPage(cfg *rules.Config, p *Pipeline, now func() time.Time) http.Handler {
	if !cfg.StatusPage.Enabled {
		return nil
	}
	public := map[string]bool{}
	var names []string
	for _, svc := range cfg.Services {
		if svc.Public {
			public[svc.Name] = true
			names = append(names, svc.Name)
		}
	}
	return status.New(status.Options{
		Incidents: p.Board, Public: func(service string) bool { return public[service] }, Services: names,
		Title: cfg.StatusPage.Title, Now: now,
		// The incidents kept are the history there is: 30 days needs
		// incidents.retention of 720h (the README says so; serve warns).
		History:  min(status.DefaultHistory, time.Duration(cfg.Incidents.Retention)),
		Cadence:  status.Cadence{Sev1: time.Duration(cfg.Incidents.Sev1Updates), Sev2: time.Duration(cfg.Incidents.Sev2Updates)},
		CacheFor: statusCacheFor,
	})
}

// statusCacheFor is how long the open status page is served as rendered.
const statusCacheFor = 5 * time.Second

// grafanaDashboard is the dashboard the incident pages link, when Grafana
// is configured with one: the annotations' dashboard, else the panels'.
func grafanaDashboard(g rules.GrafanaConfig) string {
	uid := cmp.Or(g.DashboardUID, g.Render.DashboardUID)
	if uid == "" || !(strings.HasPrefix(g.URL, "http://") || strings.HasPrefix(g.URL, "https://")) {
		return ""
	}
	return strings.TrimRight(g.URL, "/") + "/d/" + url.PathEscape(uid)
}

// webRoutes mounts the pages: the board and incident pages behind the
// API's auth (basic auth works in a browser), their assets without it
// (they carry no data), the status page without it when enabled.
func (a *API) webRoutes(mux *http.ServeMux) {
	// Through the pages in force: a reload replaces them (status_page,
	// services[].public, grafana).
	page := func(serve func(p *webPages, w http.ResponseWriter, r *http.Request)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := a.web.Load()
			if p == nil {
				a.fail(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
				return
			}
			serve(p, w, r)
		})
	}
	mux.Handle("GET /{$}", a.authed(page(func(p *webPages, w http.ResponseWriter, r *http.Request) { p.ui.ServeBoard(w, r) })))
	mux.Handle("GET /incidents/{id}", a.authed(page(func(p *webPages, w http.ResponseWriter, r *http.Request) { p.ui.ServeIncident(w, r) })))
	mux.Handle("GET /static/", page(func(p *webPages, w http.ResponseWriter, r *http.Request) { p.ui.Static().ServeHTTP(w, r) }))
	// The status page is served without auth when enabled; its assets are
	// under /status/. Off, the path is the API's: 404 behind auth.
	status := page(func(p *webPages, w http.ResponseWriter, r *http.Request) {
		if p.status == nil {
			a.authed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				a.fail(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (the status page is off: status_page.enabled)")
			})).ServeHTTP(w, r)
			return
		}
		p.status.ServeHTTP(w, r)
	})
	mux.Handle("GET /status", status)
	mux.Handle("GET /status/", status)
	// Other methods on the pages' paths: 405 naming GET, as the API's
	// catch-all does for its own paths (after auth, like it).
	notGet := a.authed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		a.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+": GET")
	}))
	mux.Handle("/{$}", notGet)
	mux.Handle("/incidents/{id}", notGet)
	mux.Handle("/static/", notGet)
}
