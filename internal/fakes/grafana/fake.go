// Package grafana is an in-process fake of Grafana's annotations HTTP API
// and its panel rendering (GET /render/d-solo/…, see render.go),
// served on 127.0.0.1 by httptest. It requires `Authorization: Bearer
// <token>`, implements POST /api/annotations, PATCH, GET and DELETE
// /api/annotations/:id and a tag-filtered GET /api/annotations with Grafana's
// documented semantics and JSON bodies, can inject faults (an HTTP status,
// optionally with Retry-After, or a request that hangs until the client gives
// up, or a request served whose answer is lost), and records every request. All accessors are safe for concurrent use
// and return copies.
package grafana

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/amtriage/amtriage/internal/fakes/fault"
)

// MaxBodyBytes bounds a request body the fake reads.
const MaxBodyBytes = 1 << 20

// Annotation is one stored annotation, as GET /api/annotations/:id returns it.
// As in Grafana, a point annotation has TimeEnd == Time; a region has
// TimeEnd > Time.
type Annotation struct {
	ID           int64           `json:"id"`
	DashboardUID string          `json:"dashboardUID,omitempty"`
	PanelID      int64           `json:"panelId,omitempty"`
	Time         int64           `json:"time"`
	TimeEnd      int64           `json:"timeEnd"`
	Tags         []string        `json:"tags"`
	Text         string          `json:"text"`
	Data         json.RawMessage `json:"data,omitempty"`
	Patches      int             `json:"-"` // PATCHes applied to it
}

// IsRegion reports whether the annotation spans a time range.
func (a Annotation) IsRegion() bool { return a.TimeEnd > a.Time }

// Request is one request the fake received, whatever its outcome.
type Request struct {
	Method     string
	Path       string
	Status     int    // HTTP status answered; 0 for a hung request
	Body       string // request body as received
	Authorized bool   // carried the right bearer token
	Fault      bool   // answered by an injected fault
}

// Fault is an injected failure for the next Times requests (default 1).
type Fault = fault.Fault

// Server is the fake Grafana. URL is the base (no trailing slash).
type Server struct {
	URL string

	token string
	srv   *httptest.Server
	hang  fault.Gate

	mu          sync.Mutex
	nextID      int64
	annotations map[int64]*Annotation
	requests    []Request
	faults      fault.Queue
	renders     []Render
	renderPad   int
}

// New starts a fake that accepts token as its service account token.
func New(token string) *Server {
	s := &Server{
		token:       token,
		nextID:      1,
		annotations: map[int64]*Annotation{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close releases hung requests and stops the server.
func (s *Server) Close() {
	s.hang.Close()
	s.srv.Close()
}

// Fail queues a fault for the next f.Times requests (at least one).
func (s *Server) Fail(f Fault) { s.faults.Add(f) }

// FailNext makes the next n requests fail with status.
func (s *Server) FailNext(n, status int) { s.Fail(Fault{Status: status, Times: n}) }

// HangNext makes the next n requests hang until their context ends.
func (s *Server) HangNext(n int) { s.Fail(Fault{Hang: true, Times: n}) }

// Annotations returns every stored annotation, by id.
func (s *Server) Annotations() []Annotation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Annotation, 0, len(s.annotations))
	for _, a := range s.annotations {
		out = append(out, clone(a))
	}
	slices.SortFunc(out, func(a, b Annotation) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Annotation returns the annotation with id.
func (s *Server) Annotation(id int64) (Annotation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.annotations[id]
	if !ok {
		return Annotation{}, false
	}
	return clone(a), true
}

// Delete removes an annotation, as a user deleting it in Grafana would.
func (s *Server) Delete(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.annotations[id]
	delete(s.annotations, id)
	return ok
}

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count returns how many requests with method were answered with status
// (any status when status is 0).
func (s *Server) Count(method string, status int) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

func clone(a *Annotation) Annotation {
	c := *a
	c.Tags = slices.Clone(a.Tags)
	c.Data = slices.Clone(a.Data)
	return c
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) answer(w http.ResponseWriter, req Request, status int, v any) {
	req.Status = status
	s.record(req)
	writeJSON(w, status, v)
}

func msg(m string) map[string]any { return map[string]any{"message": m} }

// body is the JSON Grafana binds for POST and PATCH. Pointers tell absent
// fields from zero ones (PATCH replaces tags whenever they are present).
type body struct {
	DashboardUID string          `json:"dashboardUID"`
	DashboardID  int64           `json:"dashboardId"`
	PanelID      int64           `json:"panelId"`
	Time         int64           `json:"time"`
	TimeEnd      int64           `json:"timeEnd"`
	Tags         *[]string       `json:"tags"`
	Text         string          `json:"text"`
	Data         json.RawMessage `json:"data"`
}

func (s *Server) authorized(r *http.Request) bool {
	got := r.Header.Get("Authorization")
	want := "Bearer " + s.token
	return s.token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	req := Request{Method: r.Method, Path: r.URL.Path, Body: string(raw), Authorized: s.authorized(r)}

	if f, ok := s.faults.Next(); ok {
		req.Fault = true
		if f.Lost {
			s.route(httptest.NewRecorder(), req, r, raw, err)
			if f.Hang { // performed, then never answered: a kill mid-call
				s.hang.Hang(r)
				return
			}
			fault.Drop(w)
			return
		}
		if f.Hang {
			s.record(req)
			s.hang.Hang(r)
			return
		}
		f.SetRetryAfter(w)
		s.answer(w, req, f.Status, msg(http.StatusText(f.Status)))
		return
	}
	s.route(w, req, r, raw, err)
}

// route serves a request that no fault answers.
func (s *Server) route(w http.ResponseWriter, req Request, r *http.Request, raw []byte, err error) {
	if !req.Authorized {
		s.answer(w, req, http.StatusUnauthorized, msg("Unauthorized"))
		return
	}
	if err != nil || len(raw) > MaxBodyBytes {
		s.answer(w, req, http.StatusBadRequest, msg("bad request data"))
		return
	}

	const prefix = "/api/annotations"
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case strings.HasPrefix(r.URL.Path, renderPrefix) && r.Method == http.MethodGet:
		s.render(w, req, r)
	case path == prefix:
		switch r.Method {
		case http.MethodPost:
			s.post(w, req, raw)
		case http.MethodGet:
			s.list(w, req, r)
		default:
			s.answer(w, req, http.StatusMethodNotAllowed, msg("Method Not Allowed"))
		}
	case strings.HasPrefix(path, prefix+"/"):
		id, err := strconv.ParseInt(strings.TrimPrefix(path, prefix+"/"), 10, 64)
		if err != nil {
			s.answer(w, req, http.StatusBadRequest, msg("annotationId is invalid"))
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.get(w, req, id)
		case http.MethodPatch:
			s.patch(w, req, id, raw)
		case http.MethodDelete:
			if s.Delete(id) {
				s.answer(w, req, http.StatusOK, msg("Annotation deleted"))
			} else {
				s.answer(w, req, http.StatusNotFound, msg("Annotation not found"))
			}
		default:
			s.answer(w, req, http.StatusMethodNotAllowed, msg("Method Not Allowed"))
		}
	default:
		s.answer(w, req, http.StatusNotFound, msg("Not found"))
	}
}

func (s *Server) post(w http.ResponseWriter, req Request, raw []byte) {
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		s.answer(w, req, http.StatusBadRequest, msg("bad request data"))
		return
	}
	if b.Text == "" || b.Time <= 0 || (b.TimeEnd != 0 && b.TimeEnd < b.Time) {
		// Grafana: "text field should not be empty", ErrTimerangeMissing,
		// or an inverted range, all answered the same way.
		s.answer(w, req, http.StatusBadRequest, msg("Failed to save annotation"))
		return
	}
	a := &Annotation{
		DashboardUID: b.DashboardUID,
		PanelID:      b.PanelID,
		Time:         b.Time,
		TimeEnd:      b.TimeEnd,
		Text:         b.Text,
		Tags:         []string{},
		Data:         slices.Clone(b.Data),
	}
	if a.TimeEnd == 0 {
		a.TimeEnd = a.Time
	}
	if b.Tags != nil {
		a.Tags = dedup(*b.Tags)
	}
	s.mu.Lock()
	a.ID = s.nextID
	s.nextID++
	s.annotations[a.ID] = a
	s.mu.Unlock()
	s.answer(w, req, http.StatusOK, map[string]any{"message": "Annotation added", "id": a.ID})
}

func (s *Server) patch(w http.ResponseWriter, req Request, id int64, raw []byte) {
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		s.answer(w, req, http.StatusBadRequest, msg("bad request data"))
		return
	}
	s.mu.Lock()
	a, ok := s.annotations[id]
	if !ok {
		s.mu.Unlock()
		s.answer(w, req, http.StatusNotFound, msg("Could not find annotation to update"))
		return
	}
	next := clone(a)
	if b.Text != "" {
		next.Text = b.Text
	}
	if b.Tags != nil {
		next.Tags = dedup(*b.Tags)
	}
	if b.Time > 0 {
		next.Time = b.Time
	}
	if b.TimeEnd > 0 {
		next.TimeEnd = b.TimeEnd
	}
	if next.TimeEnd < next.Time {
		s.mu.Unlock()
		s.answer(w, req, http.StatusBadRequest, msg("Failed to update annotation"))
		return
	}
	next.Patches++
	*a = next
	s.mu.Unlock()
	s.answer(w, req, http.StatusOK, msg("Annotation patched"))
}

func (s *Server) get(w http.ResponseWriter, req Request, id int64) {
	a, ok := s.Annotation(id)
	if !ok {
		s.answer(w, req, http.StatusNotFound, msg("Annotation not found"))
		return
	}
	s.answer(w, req, http.StatusOK, a)
}

// list answers GET /api/annotations, honouring tags (AND, or OR with
// matchAny=true), dashboardUID and limit (default 100), newest first.
func (s *Server) list(w http.ResponseWriter, req Request, r *http.Request) {
	q := r.URL.Query()
	tags := q["tags"]
	matchAny := q.Get("matchAny") == "true"
	limit := 100
	if v := q.Get("limit"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			limit = n
		}
	}
	all := s.Annotations()
	slices.Reverse(all)
	out := []Annotation{}
	for _, a := range all {
		if uid := q.Get("dashboardUID"); uid != "" && a.DashboardUID != uid {
			continue
		}
		if len(tags) > 0 {
			n := 0
			for _, t := range tags {
				if slices.Contains(a.Tags, t) {
					n++
				}
			}
			if (matchAny && n == 0) || (!matchAny && n < len(tags)) {
				continue
			}
		}
		out = append(out, a)
		if len(out) == limit {
			break
		}
	}
	s.answer(w, req, http.StatusOK, out)
}

func dedup(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
