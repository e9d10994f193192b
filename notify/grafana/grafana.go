// Package grafana is the Grafana annotations receiver: one annotation per
// incident, posted when it opens at the incident's start, patched when its
// severity changes, and closed into a region (timeEnd) when it resolves, so
// the incident shows on every dashboard that displays the built-in Grafana
// annotations filtered by the `amtriage` tag.
//
// The annotation id is kept in notify.ReceiverState under the incident id, so
// a redelivered event updates the annotation instead of posting a second one.
// Grafana has no idempotency key, so every annotation carries the tag
// incident:<id>, and a POST whose outcome was never recorded (its answer was
// lost, or the process died before saving the id) is looked up by that tag
// before it is repeated.
package grafana

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"

	"github.com/amtriage/amtriage/internal/clip"
)

// receiverName is Name() and the key of this receiver's ReceiverState.
const receiverName = "grafana"

const (
	// Tag is on every annotation the receiver writes.
	Tag = "amtriage"
	// ResolvedTag is added when the incident resolves.
	ResolvedTag = "resolved"
	// IncidentTagPrefix + the incident id tags each annotation: how an
	// annotation whose id was not recorded is found again.
	IncidentTagPrefix = "incident:"

	maxReasons         = 5                // reasons listed in the text
	maxReasonRunes     = 300              // each, truncated beyond
	maxResponseBytes   = 64 << 10         // of a response body read
	maxErrorMessage    = 200              // characters of Grafana's message kept in errors
	defaultRetryAfter  = 30 * time.Second // 429 without Retry-After
	defaultHTTPTimeout = 10 * time.Second
)

// Config configures the receiver.
type Config struct {
	URL          string       // Grafana base URL, e.g. http://grafana:3000 (a trailing "/" is trimmed)
	Token        rules.Secret // service account token, sent as a bearer token
	DashboardUID string       // optional: annotate this dashboard only (empty: organization annotation)
	PanelID      int64        // optional, with DashboardUID: annotate this panel only
	Client       *http.Client // default notify.NewHTTPClient(10s)
}

// Notifier delivers incident events to Grafana as annotations. It is safe for
// concurrent use on different incidents; the outbox serialises the events of
// one incident.
type Notifier struct {
	cfg   Config
	base  string
	state notify.ReceiverState
}

// State is what the receiver remembers per incident (in ReceiverState).
type State struct {
	ID int64 `json:"id"` // the incident's annotation
	// Posting marks a POST attempted whose answer was not recorded: look
	// the annotation up before posting again.
	Posting bool `json:"posting,omitempty"`
}

// APIError is a non-2xx answer from Grafana. It never holds the token.
type APIError struct {
	Method     string
	Path       string
	Status     int
	Message    string        // Grafana's "message", or the start of the body
	RetryAfter time.Duration // from Retry-After; 0 when absent
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("grafana: %s %s: HTTP %d", e.Method, e.Path, e.Status)
	}
	return fmt.Sprintf("grafana: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// New builds the receiver.
func New(cfg Config, state notify.ReceiverState) (*Notifier, error) {
	base := strings.TrimRight(cfg.URL, "/")
	u, err := url.Parse(base)
	if base == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("grafana: url %q must be an absolute http(s) URL", cfg.URL)
	}
	if u.User != nil {
		return nil, errors.New("grafana: url must not carry credentials; use the token")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("grafana: url %q must not have a query or fragment", cfg.URL)
	}
	if cfg.Token == "" {
		return nil, errors.New("grafana: token is required")
	}
	if cfg.PanelID < 0 {
		return nil, fmt.Errorf("grafana: panel id %d must not be negative", cfg.PanelID)
	}
	if state == nil {
		return nil, errors.New("grafana: receiver state is required")
	}
	if cfg.Client == nil {
		cfg.Client = notify.NewHTTPClient(defaultHTTPTimeout)
	}
	return &Notifier{cfg: cfg, base: base, state: state}, nil
}

// String describes the receiver without its token, also for %v and %#v.
func (n *Notifier) String() string { return "grafana(" + n.base + ")" }

// GoString implements fmt.GoStringer like String.
func (n *Notifier) GoString() string { return n.String() }

// Name implements notify.Notifier.
func (n *Notifier) Name() string { return receiverName }

// Notify implements notify.Notifier.
//
//   - opened: POST an annotation at the incident's start, unless one is
//     already recorded for the incident (redelivery): then nothing is sent.
//   - severity_changed: PATCH its tags and text.
//   - resolved: PATCH timeEnd (the resolution time), tags and text; whatever
//     the severity, the annotation becomes a region spanning the incident.
//
// Without a recorded id (the opened event was never delivered), or when the
// PATCH finds the annotation deleted (404), the complete annotation is posted
// anew and its id recorded. Status updates are not annotated.
//
// Errors: 400/401/403 and other 4xx are permanent (retry=false); 429 (and 503
// with Retry-After) is a *notify.RetryAfterError; 5xx, network errors and
// timeouts are retryable.
func (n *Notifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	retry, err := n.notify(ctx, ev)
	return retry, notify.Redact(err, string(n.cfg.Token))
}

func (n *Notifier) notify(ctx context.Context, ev *incident.Event) (bool, error) {
	switch ev.Kind {
	case incident.Opened, incident.SeverityChanged, incident.ResolvedEvent, incident.Reopened:
	default:
		return false, nil
	}
	id := ev.Incident.ID
	if id == "" {
		return false, errors.New("grafana: event has no incident id")
	}
	var st State
	found, err := n.state.LoadReceiverState(receiverName, id, &st)
	if err != nil {
		return true, fmt.Errorf("grafana: load state of %s: %w", id, err)
	}
	if !found || st.ID == 0 {
		return n.create(ctx, ev, st.Posting)
	}
	if ev.Kind == incident.Opened {
		return false, nil // already annotated: a redelivery
	}
	err = n.call(ctx, http.MethodPatch, fmt.Sprintf("/api/annotations/%d", st.ID), patchBody(ev), nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		// Deleted in Grafana meanwhile: put it back.
		return n.create(ctx, ev, false)
	}
	if err != nil {
		return classify(err)
	}
	return false, nil
}

// create posts the complete annotation for the event's incident and records
// its id. After an uncertain POST (uncertain) the annotation is first looked
// up by its incident tag and, if found, adopted and patched.
func (n *Notifier) create(ctx context.Context, ev *incident.Event, uncertain bool) (bool, error) {
	id := ev.Incident.ID
	if uncertain {
		found, err := n.find(ctx, id)
		if err != nil {
			if retry, cerr := classify(err); retry {
				return true, cerr
			}
			// Not allowed to read annotations, say: post rather than lose it.
		}
		if found != 0 {
			if err := n.state.SaveReceiverState(receiverName, id, State{ID: found}); err != nil {
				return true, fmt.Errorf("grafana: save annotation id %d of %s: %w", found, id, err)
			}
			if ev.Kind == incident.Opened {
				return false, nil
			}
			if err := n.call(ctx, http.MethodPatch, fmt.Sprintf("/api/annotations/%d", found), patchBody(ev), nil); err != nil {
				return classify(err)
			}
			return false, nil
		}
	}
	if err := n.state.SaveReceiverState(receiverName, id, State{Posting: true}); err != nil {
		return true, fmt.Errorf("grafana: mark %s as posting: %w", id, err)
	}
	var out struct {
		ID      int64  `json:"id"`
		Message string `json:"message"`
	}
	if err := n.call(ctx, http.MethodPost, "/api/annotations", n.postBody(ev), &out); err != nil {
		return classify(err)
	}
	if out.ID <= 0 {
		return true, fmt.Errorf("grafana: POST /api/annotations: answer has no annotation id (message %q)", clip.Runes(out.Message, maxErrorMessage))
	}
	if err := n.state.SaveReceiverState(receiverName, ev.Incident.ID, State{ID: out.ID}); err != nil {
		return true, fmt.Errorf("grafana: save annotation id %d of %s: %w", out.ID, ev.Incident.ID, err)
	}
	return false, nil
}

// find returns the id of the newest annotation tagged with the incident, or 0.
func (n *Notifier) find(ctx context.Context, incidentID string) (int64, error) {
	q := url.Values{"tags": {Tag, IncidentTagPrefix + incidentID}, "limit": {"1"}, "type": {"annotation"}}
	if n.cfg.DashboardUID != "" {
		q.Set("dashboardUID", n.cfg.DashboardUID)
	}
	var found []struct {
		ID int64 `json:"id"`
	}
	if err := n.call(ctx, http.MethodGet, "/api/annotations?"+q.Encode(), nil, &found); err != nil {
		return 0, err
	}
	if len(found) == 0 {
		return 0, nil
	}
	return found[0].ID, nil
}

// annotation is the JSON body of POST and PATCH /api/annotations.
type annotation struct {
	DashboardUID string   `json:"dashboardUID,omitempty"`
	PanelID      int64    `json:"panelId,omitempty"`
	Time         int64    `json:"time,omitempty"`
	TimeEnd      int64    `json:"timeEnd,omitempty"`
	Tags         []string `json:"tags"`
	Text         string   `json:"text"`
	Data         any      `json:"data,omitempty"`
}

func (n *Notifier) postBody(ev *incident.Event) annotation {
	a := patchBody(ev)
	a.DashboardUID, a.PanelID = n.cfg.DashboardUID, n.cfg.PanelID
	a.Data = map[string]any{
		"source":   Tag,
		"incident": ev.Incident.ID,
		"service":  ev.Incident.Service,
		"severity": int(ev.Incident.Severity),
	}
	return a
}

// patchBody is what PATCH changes: time (unchanged, restated), timeEnd on
// resolve, tags and text.
func patchBody(ev *incident.Event) annotation {
	start, end := span(ev)
	a := annotation{Time: start, Tags: Tags(ev), Text: Text(ev)}
	switch ev.Kind {
	case incident.ResolvedEvent:
		a.TimeEnd = end
	case incident.Reopened:
		// Firing again: the region closed on monitoring is open again
		// (time = timeEnd, as a new annotation) until the next resolve.
		a.TimeEnd = start
	}
	return a
}

// span returns the incident's start and end in epoch milliseconds, falling
// back to the event's time for a missing one; end is never before start.
func span(ev *incident.Event) (start, end int64) {
	inc := &ev.Incident
	at := ev.At
	if at.IsZero() {
		at = time.Now()
	}
	s, e := inc.StartedAt, inc.ResolvedAt
	if s.IsZero() {
		s = at
	}
	if e.IsZero() {
		e = at
	}
	start, end = s.UnixMilli(), e.UnixMilli()
	if end < start {
		end = start
	}
	return start, end
}

// Tags are the annotation's tags: amtriage, incident:<id>, sev<N>,
// service:<name>, and resolved once it is. While open, N is the current severity; once resolved,
// the peak one, so a dashboard filtered on sev1 shows every incident that
// reached Sev 1.
func Tags(ev *incident.Event) []string {
	inc := &ev.Incident
	tags := []string{Tag}
	if inc.ID != "" {
		tags = append(tags, IncidentTagPrefix+inc.ID)
	}
	sev := inc.Severity
	if ev.Kind == incident.ResolvedEvent && inc.PeakSeverity >= 1 && inc.PeakSeverity <= 4 {
		sev = inc.PeakSeverity
	}
	if sev >= 1 && sev <= 4 {
		tags = append(tags, fmt.Sprintf("sev%d", sev))
	}
	if inc.Service != "" {
		tags = append(tags, "service:"+inc.Service)
	}
	if ev.Kind == incident.ResolvedEvent {
		tags = append(tags, ResolvedTag)
	}
	return tags
}

// Text is the annotation's text: the incident's title, a status line, then
// the first few reasons, one per line.
func Text(ev *incident.Event) string {
	inc := &ev.Incident
	var b strings.Builder
	title := strings.TrimSpace(inc.Title)
	if title == "" {
		title = "INCIDENT: " + inc.Service
	}
	b.WriteString(title)
	b.WriteString("\n")
	switch ev.Kind {
	case incident.ResolvedEvent:
		start, end := span(ev)
		d := (time.Duration(end-start) * time.Millisecond).Round(time.Second)
		fmt.Fprintf(&b, "%s, resolved after %s", sevName(inc.Severity), d)
		if inc.PeakSeverity != 0 && inc.PeakSeverity != inc.Severity {
			fmt.Fprintf(&b, " (peak %s)", sevName(inc.PeakSeverity))
		}
	case incident.SeverityChanged:
		fmt.Fprintf(&b, "%s (was %s)", sevName(inc.Severity), sevName(ev.PreviousSeverity))
	case incident.Reopened:
		fmt.Fprintf(&b, "%s, firing again (recurrence %d)", sevName(inc.Severity), inc.Recurrences)
	default:
		b.WriteString(sevName(inc.Severity))
	}
	if ev.Kind == incident.ResolvedEvent && inc.Closure != "" {
		// The runbook's closure message says it all: cause, fix, impact.
		b.WriteString("\n")
		b.WriteString(clip.Runes(inc.Closure, 2000))
		return b.String()
	}
	if d := inc.Diagnosis; d != nil && d.Summary != "" {
		b.WriteString("\nDiagnosis: ")
		b.WriteString(clip.Runes(strings.TrimSpace(d.Summary), maxReasonRunes))
		if d.Command != "" {
			b.WriteString("\n")
			b.WriteString(d.Command)
		}
	}
	for i, r := range inc.Reasons {
		if i == maxReasons {
			fmt.Fprintf(&b, "\n… and %d more", len(inc.Reasons)-maxReasons)
			break
		}
		b.WriteString("\n")
		b.WriteString(clip.Runes(strings.TrimSpace(r), maxReasonRunes))
	}
	return b.String()
}

func sevName(l severity.Level) string {
	if l < 1 || l > 4 {
		return "Sev ?"
	}
	return fmt.Sprintf("Sev %d", l)
}

// call sends one JSON request and decodes a 2xx answer into out (if not nil).
func (n *Notifier) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("grafana: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.base+path, body)
	if err != nil {
		return fmt.Errorf("grafana: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(n.cfg.Token))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("grafana: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: message(raw),
			RetryAfter: notify.RetryAfter(resp.Header, 0)}
	}
	if err != nil {
		return fmt.Errorf("grafana: %s %s: read answer: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("grafana: %s %s: HTTP %d with an unreadable answer: %w", method, path, resp.StatusCode, err)
		}
	}
	return nil
}

// message extracts Grafana's {"message": …}, or the start of a non-JSON body.
func message(raw []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &m) == nil && m.Message != "" {
		return clip.Runes(m.Message, maxErrorMessage)
	}
	return clip.Runes(strings.Join(strings.Fields(string(raw)), " "), maxErrorMessage)
}

// classify maps a failed request to the Notifier contract's retry flag.
func classify(err error) (bool, error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		return true, err // network error, timeout, cancelled, unreadable answer
	}
	switch {
	case ae.Status == http.StatusTooManyRequests, ae.Status == http.StatusServiceUnavailable && ae.RetryAfter > 0:
		after := ae.RetryAfter
		if after <= 0 {
			after = defaultRetryAfter
		}
		return true, &notify.RetryAfterError{After: after, Method: "annotations", Err: err}
	case ae.Status >= 500, ae.Status == http.StatusRequestTimeout:
		return true, err
	default: // 400, 401, 403, 404 on POST, …: retrying cannot help
		return false, err
	}
}
