package web

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/postmortem"
	"github.com/amtriage/amtriage/view"
)

// incidentData is the incident page.
type incidentData struct {
	Title   string
	Refresh int
	view.Detail
	Now      time.Time
	Duration string
	Alerts   []alertView
	Links    []linkView
	Evidence *evidenceView
	// EvidenceError says the evidence could not be read (the rest of the
	// page still renders).
	EvidenceError string
	Postmortem    *postmortemView
	Timeline      []incident.Entry
}

// linkView is a link, or its text when its URL is not an absolute http(s)
// one (an alert's javascript: or relative URL is shown, never followed).
type linkView struct {
	Text, URL string
	Safe      bool
}

func link(text, raw string) linkView {
	u, ok := linkable(raw)
	if !ok {
		return linkView{Text: text, URL: raw}
	}
	return linkView{Text: text, URL: u, Safe: true}
}

// linkable is raw when it is an absolute http(s) URL with a host, with no
// character that would need care in an attribute.
func linkable(raw string) (string, bool) {
	if raw == "" || strings.ContainsAny(raw, "<>\"'`\\ \t\r\n") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", false
	}
	return u.String(), true
}

// ownPath accepts the links the post-mortem makes to this daemon's API.
func ownPath(raw string) bool {
	return strings.HasPrefix(raw, "/api/incidents/") && !strings.ContainsAny(raw, "<>\"'`\\ \t\r\n")
}

type alertView struct {
	view.Alert
	Labels []kv
	Source linkView
}

type kv struct{ K, V string }

func sortedKV(m map[string]string) []kv {
	out := make([]kv, 0, min(len(m), maxLabels))
	budget := maxLabelText
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if len(out) == maxLabels || budget <= 0 {
			out = append(out, kv{"…", fmt.Sprintf("%d more labels (the API has them all)", len(m)-len(out))})
			break
		}
		k2, v := clip(maxLabel, k), clip(min(maxLabel, max(budget, 1)), m[k])
		budget -= len(k2) + len(v)
		out = append(out, kv{k2, v})
	}
	return out
}

// The incident page's bounds on what alerts say: the page stays small
// whatever a webhook carried (the webhook's own limit is 32 MiB; the API
// has it all).
const (
	maxText      = 1000 // characters of a reason, a timeline entry, a title
	maxLabel     = 256  // characters of a label name or value
	maxLabels    = 32   // labels shown per alert
	maxLabelText = 2048 // bytes of labels shown per alert
	maxReasons   = 16   // reasons shown per alert
)

// bound clips d's alert-controlled text to the page's bounds, on copies.
func bound(d *view.Detail) {
	clipAll := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = clip(maxText, s)
		}
		return out
	}
	d.Title, d.Service = clip(maxText, d.Title), clip(maxText, d.Service)
	d.Reasons = clipAll(d.Reasons)
	d.Alerts = slices.Clone(d.Alerts)
	for i := range d.Alerts {
		d.Alerts[i].Reasons = clipAll(d.Alerts[i].Reasons[:min(len(d.Alerts[i].Reasons), maxReasons)])
		d.Alerts[i].Alertname = clip(maxText, d.Alerts[i].Alertname)
	}
	d.Timeline = slices.Clone(d.Timeline)
	for i := range d.Timeline {
		d.Timeline[i].Text = clip(maxText, d.Timeline[i].Text)
	}
}

// evidenceView is the evidence record as shown: each query summarised.
type evidenceView struct {
	evidence.Evidence
	Queries []queryView
	Panels  []panelView
}

type queryView struct {
	Name, Query, Step, Error, Clipped string
	Series                            []seriesView
}

type seriesView struct {
	Labels         string
	Points         int
	Last, Min, Max string
	LastAt         time.Time
}

type panelView struct {
	ID             int64
	Src            string // empty: no PNG kept
	Width, Height  int
	Error, Clipped string
}

// postmortemView is postmortem.Report's sections, in its order.
type postmortemView struct {
	postmortem.Report
	Duration  string
	Timeline  []postmortem.Entry
	Links     []linkView
	Checklist []checklistSection
	Markdown  string
}

type checklistSection struct {
	Heading string
	Items   []string
}

// ServeIncident answers GET /incidents/{id}.
func (u *UI) ServeIncident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := u.src.IncidentDetail(id)
	if !ok {
		u.errorPage(w, r, http.StatusNotFound, "No such incident",
			fmt.Sprintf("There is no incident %q: unknown, or pruned after incidents.retention.", clip(maxCell, id)), nil)
		return
	}
	bound(&d)
	now := u.now()
	data := incidentData{Title: cmpOr(d.Title, d.Service), Refresh: 30, Detail: d, Now: now}
	end := now
	if d.State == incident.StateClosed {
		end = closedAt(d.Incident)
	}
	data.Duration = age(end.Sub(d.Started))
	data.Timeline = slices.Clone(d.Timeline)
	slices.SortStableFunc(data.Timeline, func(a, b incident.Entry) int { return a.At.Compare(b.At) })
	seen := map[string]bool{}
	add := func(l linkView) {
		if l.URL != "" && !seen[l.URL] {
			seen[l.URL] = true
			data.Links = append(data.Links, l)
		}
	}
	add(link("PagerDuty incident", d.PagerDutyURL))
	if d.Silence != nil {
		add(link("Alertmanager silence", d.Silence.URL))
	}
	if u.grafana != "" {
		add(link("Grafana", grafanaRange(u.grafana, d.Started, end)))
	}
	for _, a := range d.Alerts {
		av := alertView{Alert: a, Labels: sortedKV(a.Labels), Source: link("Prometheus", a.GeneratorURL)}
		data.Alerts = append(data.Alerts, av)
		add(link("Prometheus: "+cmpOr(a.Alertname, a.Fingerprint), a.GeneratorURL))
	}
	if rep, ok := u.src.Postmortem(id, now); ok {
		pm := postmortemOf(rep, id)
		data.Postmortem = &pm
		for _, l := range pm.Links {
			add(l) // runbooks and the Alertmanager: only the post-mortem knows the annotations
		}
	}
	ev, ok, err := u.src.Evidence(id)
	switch {
	case err != nil:
		u.log.Error("reading evidence", "incident", id, "err", err)
		data.EvidenceError = "The evidence could not be read."
	case ok:
		v, err := evidenceOf(ev, id)
		if err != nil {
			u.log.Error("decoding evidence", "incident", id, "err", err)
			data.EvidenceError = "The evidence record could not be decoded."
		} else {
			data.Evidence = v
		}
	}
	u.render(w, r, http.StatusOK, "incident", data)
}

// grafanaRange is the dashboard over the incident, with five minutes
// either side.
func grafanaRange(base string, from, to time.Time) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	q.Set("from", strconv.FormatInt(from.Add(-5*time.Minute).UnixMilli(), 10))
	q.Set("to", strconv.FormatInt(to.Add(5*time.Minute).UnixMilli(), 10))
	u.RawQuery = q.Encode()
	return u.String()
}

func evidenceOf(raw []byte, id string) (*evidenceView, error) {
	var e evidence.Evidence
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("decoding the evidence of %s: %w", id, err)
	}
	v := &evidenceView{Evidence: e}
	for _, q := range e.Queries {
		qv := queryView{Name: q.Name, Query: q.Query, Step: q.Step, Error: q.Error}
		if q.RangeAnswer != nil {
			qv.Clipped = q.Clipped
			for _, s := range q.Series {
				sv := seriesView{Labels: labelString(s.Labels), Points: len(s.Points)}
				if n := len(s.Points); n > 0 {
					lo, hi := math.Inf(1), math.Inf(-1)
					for _, p := range s.Points {
						lo, hi = min(lo, p.V), max(hi, p.V)
					}
					sv.Last, sv.Min, sv.Max = num(s.Points[n-1].V), num(lo), num(hi)
					sv.LastAt = time.UnixMilli(s.Points[n-1].T).UTC()
				}
				qv.Series = append(qv.Series, sv)
			}
		}
		v.Queries = append(v.Queries, qv)
	}
	for _, p := range e.Panels {
		pv := panelView{ID: p.ID, Width: p.Width, Height: p.Height, Error: p.Error, Clipped: p.Clipped}
		if p.Bytes > 0 && p.Error == "" && p.Clipped == "" {
			pv.Src = "/api/incidents/" + url.PathEscape(id) + "/evidence/panels/" + strconv.FormatInt(p.ID, 10) + ".png"
		}
		v.Panels = append(v.Panels, pv)
	}
	return v, nil
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

func labelString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, p := range sortedKV(m) {
		parts = append(parts, p.K+"="+strconv.Quote(p.V))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func postmortemOf(r postmortem.Report, id string) postmortemView {
	v := postmortemView{Report: r, Markdown: "/api/incidents/" + url.PathEscape(id) + "/postmortem"}
	end := cmp.Or(r.End, r.Now)
	v.Duration = fmt.Sprintf("%d minutes", int(max(0, end.Sub(r.Start)).Minutes()))
	if r.End.IsZero() {
		v.Duration += " so far"
	}
	v.Timeline = slices.Clone(r.Timeline)
	slices.SortStableFunc(v.Timeline, func(a, b postmortem.Entry) int { return a.At.Compare(b.At) })
	for _, l := range r.Evidence {
		if ownPath(l.URL) {
			v.Links = append(v.Links, linkView{Text: l.Text, URL: l.URL, Safe: true})
			continue
		}
		v.Links = append(v.Links, link(l.Text, l.URL))
	}
	for _, s := range postmortem.Checklist {
		v.Checklist = append(v.Checklist, checklistSection{s.Heading, s.Items})
	}
	return v
}
