// Package pagerduty is an in-process fake of the PagerDuty Events API v2
// (POST /v2/enqueue), served on 127.0.0.1 by httptest. It validates events as
// the API documents them (routing key, event action, dedup key, the trigger
// payload's summary/source/severity, links, the 512 KB size limit), answers
// 202/400/429 with the API's JSON bodies, enforces a per-routing-key rate
// limit over a rolling window, can inject faults (5xx, 429 with Retry-After,
// a hung request, a hang of every request for a while), records every accepted event, and tracks alert state per
// dedup key like PagerDuty does. Each alert opens a PagerDuty incident, and
// the fake sends the signed webhooks v3 PagerDuty would for a responder's acts
// on it (webhooks.go). All accessors are safe for concurrent use and
// return copies.
package pagerduty

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/amtriage/amtriage/internal/fakes/fault"
)

// Documented limits the fake enforces.
const (
	MaxBodyBytes      = 512 * 1024 // "an event payload may be at most 512 KB"
	MaxSummary        = 1024       // characters
	MaxDedupKey       = 255        // characters
	RoutingKeyLen     = 32
	DefaultRateLimit  = 120 // events per DefaultRateWindow per routing key
	DefaultRateWindow = time.Minute
)

// Alert states.
const (
	Triggered    = "triggered"
	Acknowledged = "acknowledged"
	Resolved     = "resolved"
)

// Link is a links[] entry.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// Image is an images[] entry.
type Image struct {
	Src  string `json:"src"`
	Href string `json:"href,omitempty"`
	Alt  string `json:"alt,omitempty"`
}

// Payload is a trigger event's payload.
type Payload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// Event is one event the fake accepted (answered 202).
type Event struct {
	RoutingKey string   `json:"routing_key"`
	Action     string   `json:"event_action"`
	DedupKey   string   `json:"dedup_key,omitempty"`
	Payload    *Payload `json:"payload,omitempty"`
	Links      []Link   `json:"links,omitempty"`
	Images     []Image  `json:"images,omitempty"`
	Client     string   `json:"client,omitempty"`
	ClientURL  string   `json:"client_url,omitempty"`

	// Filled in by the fake.
	Size    int             `json:"-"` // bytes of the request body
	Raw     json.RawMessage `json:"-"` // the request body
	Dropped bool            `json:"-"` // accepted but had no effect (ack/resolve without an open alert)
}

// Alert is PagerDuty's alert for one (routing key, dedup key) while open, and
// its history once resolved.
type Alert struct {
	RoutingKey string
	DedupKey   string
	Status     string // Triggered, Acknowledged or Resolved
	Severity   string // of the latest trigger
	Summary    string // of the first trigger (PagerDuty keeps the alert's title)
	Triggers   int    // triggers applied to it (1 + de-duplicated ones)
}

// Call is one request the fake received, whatever its outcome.
type Call struct {
	Status   int      // HTTP status answered; 0 for a hung request
	Action   string   // event_action, if the body parsed
	DedupKey string   // dedup_key, if the body parsed
	Errors   []string // validation errors answered with 400
	Fault    bool     // answered by an injected fault
}

// Fault is an injected failure for the next Times requests (default 1).
type Fault = fault.Fault

// Server is the fake Events API. URL is the base to give
// pagerduty.WithV2EventsAPIEndpoint; the endpoint is URL + "/v2/enqueue".
type Server struct {
	URL string

	srv  *httptest.Server
	hang fault.Gate

	mu         sync.Mutex
	now        func() time.Time
	rateLimit  int
	rateWindow time.Duration
	sent       map[string][]time.Time // routing key → times of counted events
	events     []Event
	alerts     []*Alert
	calls      []Call
	faults     fault.Queue
	hungUntil  time.Time // wall clock: requests received before it hang

	// Webhooks v3 (webhooks.go).
	incidents      []*incidentState // one per alert, in opening order
	incidentSeq    int
	whSecrets      []string
	whSubscription string
	echoes         []Webhook // webhooks for changes made through the Events API
}

// New starts a fake with the default rate limit (120 events per minute per
// routing key).
func New() *Server {
	s := &Server{
		now:        time.Now,
		rateLimit:  DefaultRateLimit,
		rateWindow: DefaultRateWindow,
		sent:       map[string][]time.Time{},
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

// SetRateLimit sets how many events one routing key may send per rolling
// window; n <= 0 disables the limit.
func (s *Server) SetRateLimit(n int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit, s.rateWindow = n, window
	s.sent = map[string][]time.Time{}
}

// SetNow replaces the fake's clock (for the rate limit).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// HangFor makes every request received in the next d hang until its client
// gives up (or the server closes): a PagerDuty that stops answering for a
// while, then recovers. Requests already hung stay hung; those after d are
// answered normally.
func (s *Server) HangFor(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hungUntil = time.Now().Add(d)
}

// Fail queues a fault for the next f.Times requests (at least one).
func (s *Server) Fail(f Fault) { s.faults.Add(f) }

// Events returns every accepted event, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Triggers returns the accepted trigger events with dedupKey.
func (s *Server) Triggers(dedupKey string) []Event { return s.byAction("trigger", dedupKey) }

// Resolves returns the accepted resolve events with dedupKey.
func (s *Server) Resolves(dedupKey string) []Event { return s.byAction("resolve", dedupKey) }

func (s *Server) byAction(action, dedupKey string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.events {
		if e.Action == action && e.DedupKey == dedupKey {
			out = append(out, e)
		}
	}
	return out
}

// OpenAlerts returns the alerts that are triggered or acknowledged.
func (s *Server) OpenAlerts() []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Alert
	for _, a := range s.alerts {
		if a.Status != Resolved {
			out = append(out, *a)
		}
	}
	return out
}

// Alerts returns every alert ever opened, oldest first.
func (s *Server) Alerts() []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Alert, len(s.alerts))
	for i, a := range s.alerts {
		out[i] = *a
	}
	return out
}

// Alert returns the latest alert with dedupKey (any routing key).
func (s *Server) Alert(dedupKey string) (Alert, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.alerts) - 1; i >= 0; i-- {
		if s.alerts[i].DedupKey == dedupKey {
			return *s.alerts[i], true
		}
	}
	return Alert{}, false
}

// Calls returns every request received, whatever its outcome.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Errors = append([]string(nil), c.Errors...)
		out[i] = c
	}
	return out
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) invalid(w http.ResponseWriter, call Call, errs ...string) {
	call.Status, call.Errors = http.StatusBadRequest, errs
	s.record(call)
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"status":  "invalid event",
		"message": "Event object is invalid",
		"errors":  errs,
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/enqueue" {
		s.record(Call{Status: http.StatusNotFound})
		writeJSON(w, http.StatusNotFound, map[string]any{"status": "not found", "message": "Not Found"})
		return
	}
	if r.Method != http.MethodPost {
		s.record(Call{Status: http.StatusMethodNotAllowed})
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"status": "method not allowed", "message": "Method Not Allowed"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	call := Call{}
	if err != nil {
		s.invalid(w, call, "could not read request body")
		return
	}
	var ev Event
	jsonErr := json.Unmarshal(body, &ev)
	if jsonErr == nil {
		call.Action, call.DedupKey = ev.Action, ev.DedupKey
	}

	s.mu.Lock()
	hung := time.Now().Before(s.hungUntil)
	s.mu.Unlock()
	if hung {
		call.Fault = true
		s.record(call)
		s.hang.Hang(r)
		return
	}
	if f, ok := s.faults.Next(); ok {
		call.Fault = true
		if f.Hang {
			s.record(call)
			s.hang.Hang(r)
			return
		}
		call.Status = f.Status
		s.record(call)
		f.SetRetryAfter(w)
		writeJSON(w, f.Status, map[string]any{"status": "error", "message": http.StatusText(f.Status)})
		return
	}

	if len(body) > MaxBodyBytes {
		s.invalid(w, call, fmt.Sprintf("Event object is too large (must be %d bytes or less)", MaxBodyBytes))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			s.invalid(w, call, "Content-Type must be application/json")
			return
		}
	}
	if jsonErr != nil {
		s.invalid(w, call, "Invalid JSON: "+jsonErr.Error())
		return
	}
	if errs := validate(&ev); len(errs) > 0 {
		s.invalid(w, call, errs...)
		return
	}
	ev.Size, ev.Raw = len(body), json.RawMessage(bytes.Clone(body))

	s.mu.Lock()
	if wait, limited := s.rateLimited(ev.RoutingKey); limited {
		s.mu.Unlock()
		call.Status = http.StatusTooManyRequests
		s.record(call)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"status":  "throttle event",
			"message": "Requests for this service are arriving too quickly.  Please retry later.",
		})
		return
	}
	s.apply(&ev)
	s.events = append(s.events, ev)
	s.mu.Unlock()

	call.Status, call.DedupKey = http.StatusAccepted, ev.DedupKey
	s.record(call)
	writeJSON(w, http.StatusAccepted, map[string]any{
		"status":    "success",
		"message":   "Event processed",
		"dedup_key": ev.DedupKey,
	})
}

// rateLimited counts one event for key over the rolling window, or reports
// how long until the key may send again. Call with s.mu held.
func (s *Server) rateLimited(key string) (time.Duration, bool) {
	if s.rateLimit <= 0 {
		return 0, false
	}
	now := s.now()
	times := s.sent[key]
	i := 0
	for i < len(times) && !times[i].After(now.Add(-s.rateWindow)) {
		i++
	}
	times = times[i:]
	if len(times) >= s.rateLimit {
		s.sent[key] = times
		wait := times[0].Add(s.rateWindow).Sub(now)
		if wait < time.Second {
			wait = time.Second
		}
		return wait, true
	}
	s.sent[key] = append(times, now)
	return 0, false
}

// apply changes alert state as PagerDuty does. Call with s.mu held.
func (s *Server) apply(ev *Event) {
	if ev.DedupKey == "" { // only a trigger gets here without one
		var b [16]byte
		_, _ = rand.Read(b[:])
		ev.DedupKey = hex.EncodeToString(b[:])
	}
	var open *Alert
	for _, a := range s.alerts {
		if a.RoutingKey == ev.RoutingKey && a.DedupKey == ev.DedupKey && a.Status != Resolved {
			open = a
		}
	}
	switch ev.Action {
	case "trigger":
		if open == nil {
			a := &Alert{
				RoutingKey: ev.RoutingKey, DedupKey: ev.DedupKey, Status: Triggered,
				Severity: ev.Payload.Severity, Summary: ev.Payload.Summary, Triggers: 1,
			}
			s.alerts = append(s.alerts, a)
			s.openIncident(a, ev)
			s.echo("incident.triggered", a)
			return
		}
		open.Triggers++
		open.Severity = ev.Payload.Severity
	case "acknowledge":
		if open == nil {
			ev.Dropped = true
			return
		}
		if open.Status != Acknowledged {
			open.Status = Acknowledged
			s.echo("incident.acknowledged", open)
		}
	case "resolve":
		if open == nil {
			ev.Dropped = true
			return
		}
		open.Status = Resolved
		s.echo("incident.resolved", open)
	}
}

func validate(ev *Event) []string {
	var errs []string
	switch {
	case strings.TrimSpace(ev.RoutingKey) == "":
		errs = append(errs, "'routing_key' is missing or blank")
	case len(ev.RoutingKey) != RoutingKeyLen:
		errs = append(errs, fmt.Sprintf("'routing_key' must be %d characters", RoutingKeyLen))
	}
	switch ev.Action {
	case "trigger", "acknowledge", "resolve":
	case "":
		errs = append(errs, "'event_action' is missing or blank")
	default:
		errs = append(errs, "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
	}
	if utf8.RuneCountInString(ev.DedupKey) > MaxDedupKey {
		errs = append(errs, fmt.Sprintf("Length of 'dedup_key' is too long (must be %d characters or less)", MaxDedupKey))
	}
	if ev.Action != "trigger" && ev.Action != "" && strings.TrimSpace(ev.DedupKey) == "" {
		errs = append(errs, "'dedup_key' is missing or blank")
	}
	if ev.Action == "trigger" {
		p := ev.Payload
		if p == nil {
			errs = append(errs, "'payload' is missing or blank")
		} else {
			switch {
			case strings.TrimSpace(p.Summary) == "":
				errs = append(errs, "'payload.summary' is missing or blank")
			case utf8.RuneCountInString(p.Summary) > MaxSummary:
				errs = append(errs, fmt.Sprintf("Length of 'payload.summary' is too long (must be %d characters or less)", MaxSummary))
			}
			if strings.TrimSpace(p.Source) == "" {
				errs = append(errs, "'payload.source' is missing or blank")
			}
			switch p.Severity {
			case "critical", "error", "warning", "info":
			case "":
				errs = append(errs, "'payload.severity' is missing or blank")
			default:
				errs = append(errs, "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')")
			}
			if p.Timestamp != "" {
				if _, err := time.Parse(time.RFC3339Nano, p.Timestamp); err != nil {
					errs = append(errs, "'payload.timestamp' is not a valid ISO 8601 timestamp")
				}
			}
		}
	}
	for i, l := range ev.Links {
		if strings.TrimSpace(l.Href) == "" {
			errs = append(errs, fmt.Sprintf("'links[%d].href' is missing or blank", i))
		}
	}
	for i, im := range ev.Images {
		if !strings.HasPrefix(im.Src, "https://") {
			errs = append(errs, fmt.Sprintf("'images[%d].src' must be an HTTPS URL", i))
		}
	}
	return errs
}
