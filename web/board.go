package web

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/view"
)

// boardData is the board page.
type boardData struct {
	Title    string
	Refresh  int // seconds between the script's reloads of <main>
	Rows     []boardRow
	Total    int // rows matching the filters, on every page
	Open     int // of them, not closed
	Page     int
	Pages    int
	Prev     string // links, empty on the first and last page
	Next     string
	Filters  []filterView
	Filtered bool
	Now      time.Time
}

type boardRow struct {
	ID, Service, Title, State, Age, Reason, Category string
	Severity                                         int
	Href                                             string
	Started                                          time.Time
	// Ack is shown for Sev 1–2 only: "acknowledged by X" or "not acknowledged".
	Ack      string
	Acked    bool
	ShowAck  bool
	Closed   time.Time
	IsClosed bool
}

// filterView is one filter's values, for the links that toggle them.
type filterView struct {
	Param   string
	Options []filterOption
}

type filterOption struct {
	Value, Label, Href string
	On                 bool
}

var severities = []string{"1", "2", "3", "4"}

// filters are the board's query: each set is the values allowed (nil:
// not filtered).
type filters struct {
	state, severity, service map[string]bool
	page                     int
}

// parseFilters reads ?state=, ?severity=, ?service= (repeatable) and
// ?page=; bad names the first unknown value with what is allowed.
func parseFilters(q url.Values, services []string) (f filters, bad *allowedValues, msg string) {
	f.page = 1
	take := func(param string, allowed []string) (map[string]bool, bool) {
		vals := q[param]
		if len(vals) == 0 {
			return nil, true
		}
		set := map[string]bool{}
		for _, v := range vals {
			if !slices.Contains(allowed, v) {
				msg = fmt.Sprintf("%s: %q is not one of the allowed values.", param, clip(maxCell, v))
				bad = &allowedValues{Param: param, Values: allowed}
				return nil, false
			}
			set[v] = true
		}
		return set, true
	}
	var ok bool
	if f.state, ok = take("state", incident.States); !ok {
		return f, bad, msg
	}
	if f.severity, ok = take("severity", severities); !ok {
		return f, bad, msg
	}
	if f.service, ok = take("service", services); !ok {
		return f, bad, msg
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return f, &allowedValues{Param: "page", Values: []string{"a whole number from 1"}}, fmt.Sprintf("page: %q is not a page number.", clip(maxCell, p))
		}
		f.page = n
	}
	return f, nil, ""
}

func (f filters) keep(v *view.Incident) bool {
	return (f.state == nil || f.state[v.State]) &&
		(f.severity == nil || f.severity[strconv.Itoa(int(v.Severity))]) &&
		(f.service == nil || f.service[v.Service])
}

// boardOrder puts the incidents not closed first, most severe first, then
// oldest; then the closed ones, most recently closed first.
func boardOrder(a, b view.Incident) int {
	ac, bc := a.State == incident.StateClosed, b.State == incident.StateClosed
	switch {
	case ac != bc:
		if ac {
			return 1
		}
		return -1
	case ac:
		if c := closedAt(b).Compare(closedAt(a)); c != 0 {
			return c
		}
	default:
		if c := cmp.Compare(a.Severity, b.Severity); c != 0 {
			return c
		}
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
	}
	return strings.Compare(a.ID, b.ID)
}

func closedAt(v view.Incident) time.Time { return cmp.Or(v.Closed, v.Resolved) }

// ServeBoard answers GET /: the board, filtered by the query string.
func (u *UI) ServeBoard(w http.ResponseWriter, r *http.Request) {
	now := u.now()
	all := u.src.Board(now.Add(-ClosedFor))
	services := make([]string, 0, 16)
	for i := range all {
		services = append(services, all[i].Service)
	}
	slices.Sort(services)
	services = slices.Compact(services)
	// Configured services may be filtered on when none is on the board: a
	// shared URL keeps working.
	for _, s := range u.services {
		if _, found := slices.BinarySearch(services, s); !found {
			services = append(services, s)
		}
	}
	slices.Sort(services)
	q := known(r.URL.Query())
	f, bad, msg := parseFilters(q, services)
	if bad != nil {
		if n := len(bad.Values); n > maxAllowedShown { // a storm's services: the page stays small
			bad.Values = append(bad.Values[:maxAllowedShown:maxAllowedShown], fmt.Sprintf("… and %d more services", n-maxAllowedShown))
		}
		u.errorPage(w, r, http.StatusBadRequest, "Bad filter", msg, []allowedValues{*bad})
		return
	}
	rows := make([]view.Incident, 0, len(all))
	open := 0
	for i := range all {
		if f.keep(&all[i]) {
			rows = append(rows, all[i])
			if all[i].State != incident.StateClosed {
				open++
			}
		}
	}
	slices.SortStableFunc(rows, boardOrder)
	d := boardData{Title: "Incidents", Refresh: 15, Total: len(rows), Open: open, Page: f.page, Now: now,
		Filtered: f.state != nil || f.severity != nil || f.service != nil}
	d.Pages = max(1, (len(rows)+PageSize-1)/PageSize)
	from := len(rows) // a page past the last (however large: no overflow) is empty
	if f.page <= d.Pages {
		from = (f.page - 1) * PageSize
	}
	to := min(from+PageSize, len(rows))
	d.Rows = make([]boardRow, 0, to-from)
	for i := range rows[from:to] {
		d.Rows = append(d.Rows, rowOf(&rows[from+i], now))
	}
	if f.page > 1 {
		d.Prev = pageURL(q, min(f.page-1, d.Pages))
	}
	if f.page < d.Pages {
		d.Next = pageURL(q, f.page+1)
	}
	d.Filters = filterLinks(q, services)
	u.render(w, r, http.StatusOK, "board", d)
}

func rowOf(v *view.Incident, now time.Time) boardRow {
	row := boardRow{
		ID: v.ID, Service: clip(maxCell, v.Service), Title: clip(maxCell, cmpOr(v.Title, v.Service)), State: v.State,
		Severity: int(v.Severity), Href: "/incidents/" + url.PathEscape(v.ID),
		Started: v.Started, Age: age(now.Sub(v.Started)),
		IsClosed: v.State == incident.StateClosed, Closed: closedAt(*v),
	}
	if len(v.Reasons) > 0 {
		row.Reason = clip(maxCell, v.Reasons[0])
	}
	if v.Diagnosis != nil {
		row.Category = clip(maxCell, string(v.Diagnosis.Category))
	}
	if v.Severity >= 1 && v.Severity <= 2 {
		row.ShowAck = true
		if !v.AcknowledgedAt.IsZero() || v.AcknowledgedBy != "" {
			row.Acked = true
			row.Ack = "acknowledged"
			if v.AcknowledgedBy != "" {
				row.Ack += " by " + clip(maxCell, v.AcknowledgedBy)
			}
		} else {
			row.Ack = "not acknowledged"
		}
	}
	return row
}

// known is the board's query without what it does not read, each value
// once: the links it builds repeat the query, so an unknown or repeated
// parameter must not multiply the page.
func known(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"state", "severity", "service", "page"} {
		seen := map[string]bool{}
		for _, v := range q[k] {
			if !seen[v] {
				seen[v] = true
				out.Add(k, v)
			}
		}
	}
	return out
}

// pageURL is the board's URL with its filters and page n.
func pageURL(q url.Values, n int) string {
	q2 := url.Values{}
	for k, v := range q {
		q2[k] = v
	}
	q2.Set("page", strconv.Itoa(n))
	return "/?" + q2.Encode()
}

// filterLinks toggle each value of each filter, keeping the others, back
// to the first page: links rather than a form, so the URL is the state.
func filterLinks(q url.Values, services []string) []filterView {
	out := []filterView{}
	for _, fl := range []struct {
		param  string
		values []string
		label  func(string) string
	}{
		{"state", incident.States, func(s string) string { return s }},
		{"severity", severities, func(s string) string { return "Sev " + s }},
		{"service", services, func(s string) string { return clip(maxCell, s) }},
	} {
		if len(fl.values) > maxFilterOptions {
			continue // a storm of services would be a page of links; the query string still filters
		}
		fv := filterView{Param: fl.param}
		for _, v := range fl.values {
			on := slices.Contains(q[fl.param], v)
			q2 := url.Values{}
			for k, vs := range q {
				if k != "page" && k != fl.param {
					q2[k] = vs
				}
			}
			for _, cur := range q[fl.param] {
				if cur != v {
					q2.Add(fl.param, cur)
				}
			}
			if !on {
				q2.Add(fl.param, v)
			}
			href := "/"
			if len(q2) > 0 {
				href += "?" + q2.Encode()
			}
			fv.Options = append(fv.Options, filterOption{Value: v, Label: fl.label(v), Href: href, On: on})
		}
		out = append(out, fv)
	}
	return out
}

const maxFilterOptions = 50

// maxAllowedShown bounds the allowed values a 400 page lists.
const maxAllowedShown = 200
