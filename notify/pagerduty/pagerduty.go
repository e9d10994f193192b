// Package pagerduty is the PagerDuty Events API v2 receiver: a trigger per
// incident at Sev 1 (critical) or Sev 2 (error), again on each escalation,
// and a resolve when a paged incident resolves, all with the incident id as
// dedup key so redeliveries de-duplicate at PagerDuty.
//
// It sends through go-pagerduty's (*Client).ManageEventWithContext. That
// method hides the HTTP response, so the receiver gives the client an
// HTTPClient wrapper that records the status, headers (Retry-After) and error
// body of each request in a per-call slot carried by the request's context:
// concurrent deliveries cannot see each other's responses, unlike the
// client's own LastAPIResponse debug capture.
//
// The routing key travels only in the request body. Errors are built by this
// package from the status and the API's error message, with every configured
// routing key redacted, so no key reaches an error string or a log.
package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"

	"github.com/amtriage/amtriage/internal/clip"
)

// receiverName is Name().
const receiverName = "pagerduty"

// Limits of the Events API v2.
const (
	// MaxEventBytes is the size an encoded event is kept under. PagerDuty
	// documents 512 KB; like Alertmanager we use 512000 bytes.
	MaxEventBytes = 512000
	// MaxSummary is payload.summary's limit, in characters.
	MaxSummary = 1024
	// DefaultRateLimit events per DefaultRateWindow per routing key: the
	// documented ~120 events per minute per integration key.
	DefaultRateLimit  = 120
	DefaultRateWindow = time.Minute
	// DefaultRetryAfter is the wait after a 429 without Retry-After (the
	// rate-limit page suggests retries about 30 s apart).
	DefaultRetryAfter = 30 * time.Second
)

// Config configures the receiver.
type Config struct {
	URL        string       // Events API base, e.g. https://events.pagerduty.com (the default); the client adds /v2/enqueue
	RoutingKey rules.Secret // the integration key used unless the service has its own
	// ServiceRoutingKeys maps a service to its own integration key.
	ServiceRoutingKeys map[string]rules.Secret
	Client             *http.Client // default notify.NewIdempotentHTTPClient(10s): events carry a dedup key
	ClientName         string       // the event's client; default "amtriage"
	ClientURL          string       // the event's client_url; optional
	// GrafanaURL, when set, adds a link to this dashboard URL with the
	// incident's time range (from 15 min before it started to now).
	GrafanaURL string
	// RateLimit events per RateWindow per routing key are sent at most (a
	// client-side rolling window, so PagerDuty's own limit is not hit);
	// 0 means DefaultRateLimit, < 0 disables. RateWindow 0 means a minute.
	RateLimit  int
	RateWindow time.Duration
	Now        func() time.Time // default time.Now

	// EscalationRoutingKey, when set, is the integration escalations page
	// (see escalation.go); without it they are not sent to PagerDuty.
	EscalationRoutingKey rules.Secret
}

// Notifier delivers incident events to PagerDuty. It is safe for concurrent
// use; the outbox delivers several incidents at once, one incident's events
// one at a time.
type Notifier struct {
	cfg     Config
	api     *pd.Client
	limiter *limiter
	secrets []string // every routing key, for redaction
}

// New builds the receiver.
func New(cfg Config) (*Notifier, error) {
	if cfg.URL == "" {
		cfg.URL = "https://events.pagerduty.com"
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pagerduty: url %q must be an http(s) base URL", cfg.URL)
	}
	if cfg.RoutingKey == "" && len(cfg.ServiceRoutingKeys) == 0 {
		return nil, errors.New("pagerduty: routing key is required")
	}
	n := &Notifier{secrets: []string{string(cfg.RoutingKey)}}
	for svc, k := range cfg.ServiceRoutingKeys {
		if k == "" {
			return nil, fmt.Errorf("pagerduty: routing key of service %q is empty", svc)
		}
		n.secrets = append(n.secrets, string(k))
	}
	if cfg.EscalationRoutingKey != "" {
		n.secrets = append(n.secrets, string(cfg.EscalationRoutingKey))
	}
	if cfg.Client == nil {
		cfg.Client = notify.NewIdempotentHTTPClient(10 * time.Second)
	}
	if cfg.ClientName == "" {
		cfg.ClientName = "amtriage"
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = DefaultRateWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n.cfg = cfg
	n.limiter = &limiter{n: cfg.RateLimit, window: cfg.RateWindow, now: cfg.Now, sent: map[string][]time.Time{}}
	n.api = pd.NewClient("", pd.WithV2EventsAPIEndpoint(cfg.URL))
	n.api.HTTPClient = &capturingClient{c: cfg.Client}
	return n, nil
}

// Name implements notify.Notifier.
func (n *Notifier) Name() string { return receiverName }

// IsPage implements notify.PageReporter: a trigger pages someone.
func (n *Notifier) IsPage(ev *incident.Event) bool { return action(ev) == "trigger" }

// action is what the SPEC's routing table asks of PagerDuty for ev: "trigger",
// "resolve", "acknowledge" or "" (nothing).
func action(ev *incident.Event) string {
	inc := &ev.Incident
	switch ev.Kind {
	case incident.Opened:
		if _, ok := notify.PagerDutySeverity(inc.Severity); ok {
			return "trigger"
		}
	case incident.SeverityChanged:
		// A drop does not re-page (the page stands until the incident
		// resolves); a rise into Sev 1 or 2 triggers at the new level.
		if ev.PreviousSeverity != 0 && inc.Severity > ev.PreviousSeverity {
			return ""
		}
		if _, ok := notify.PagerDutySeverity(inc.Severity); ok {
			return "trigger"
		}
	case incident.ResolvedEvent:
		if _, ok := notify.PagerDutySeverity(inc.PeakSeverity); ok {
			return "resolve"
		}
	case incident.Acknowledged:
		// A responder took the page from Slack: PagerDuty stops escalating
		// it (same dedup key). One that was never paged has nothing to ack.
		if _, ok := notify.PagerDutySeverity(inc.PeakSeverity); ok && inc.Status == incident.Firing {
			return "acknowledge"
		}
	case incident.Reopened:
		// Resolved on entering monitoring: paged again, same dedup key. A
		// reopening while verifying finds the page standing, unless the
		// severity rose (to a paged level, or from Sev 2 to Sev 1): then it
		// is triggered at the new level, as a severity change would be.
		if _, ok := notify.PagerDutySeverity(inc.Severity); ok {
			_, wasPaged := notify.PagerDutySeverity(ev.PreviousSeverity)
			rose := ev.PreviousSeverity > 0 && inc.Severity < ev.PreviousSeverity
			if ev.PreviousState == incident.StateMonitoring || rose || (ev.PreviousSeverity > 0 && !wasPaged) {
				return "trigger"
			}
		}
	}
	return ""
}

// Methods implements notify.MethodReporter. PagerDuty rate-limits per
// integration key, so each routing key is its own method: "enqueue" for the
// default key, "enqueue:<service>" for a service with its own (named by the
// service, never by the key). A 429 holds back only that key's events.
func (n *Notifier) Methods(ev *incident.Event) ([]string, bool) {
	esc := n.escalationMethods(ev)
	if ev.Kind == incident.Escalated || action(ev) == "" {
		return esc, true
	}
	return append([]string{n.method(ev.Incident.Service)}, esc...), true
}

func (n *Notifier) method(service string) string {
	if _, ok := n.cfg.ServiceRoutingKeys[service]; ok {
		return "enqueue:" + service
	}
	return "enqueue"
}

// routingKey is the service's own key, else the default. It depends on the
// configuration only, so a resolve uses the key its trigger used.
func (n *Notifier) routingKey(service string) string {
	if k, ok := n.cfg.ServiceRoutingKeys[service]; ok {
		return string(k)
	}
	return string(n.cfg.RoutingKey)
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	if done, retry, err := n.escalation(ctx, ev); done || err != nil {
		return retry, err
	}
	act := action(ev)
	if act == "" {
		return false, nil
	}
	key := n.routingKey(ev.Incident.Service)
	if key == "" {
		// Only per-service keys are configured and this service has none.
		return false, n.fail(act, ev.Incident.ID, 0, "no routing key for service "+ev.Incident.Service, nil)
	}
	var e *pd.V2Event
	if act == "trigger" {
		var err error
		if e, err = n.trigger(ev, key); err != nil {
			return false, n.fail(act, ev.Incident.ID, 0, err.Error(), nil)
		}
	} else {
		e = &pd.V2Event{RoutingKey: key, Action: act, DedupKey: ev.Incident.ID}
	}
	return n.send(ctx, e, n.method(ev.Incident.Service))
}

// send enqueues one event; method names its routing key's rate limit.
func (n *Notifier) send(ctx context.Context, e *pd.V2Event, method string) (bool, error) {
	act, key, dedup := e.Action, e.RoutingKey, e.DedupKey
	if wait, ok := n.limiter.take(key); !ok {
		return true, &notify.RetryAfterError{After: wait, Method: method, Err: n.fail(act, dedup, 0,
			fmt.Sprintf("client-side rate limit of %d events per %v per routing key reached", n.cfg.RateLimit, n.cfg.RateWindow), nil)}
	}

	got := &capture{}
	_, err := n.api.ManageEventWithContext(context.WithValue(ctx, captureKey{}, got), e)
	status, header, body := got.get()
	var apiErr pd.APIError
	if errors.As(err, &apiErr) {
		status = apiErr.StatusCode
	}
	switch {
	case status >= 200 && status < 300:
		// Accepted. A body go-pagerduty cannot decode does not undo that.
		return false, nil
	case status == http.StatusTooManyRequests:
		return true, &notify.RetryAfterError{
			After:  notify.RetryAfter(header, DefaultRetryAfter),
			Method: method, // the key's other events would draw 429s too
			Err:    n.fail(act, dedup, status, apiMessage(body), nil),
		}
	case status >= 500, status == http.StatusRequestTimeout:
		return true, n.fail(act, dedup, status, apiMessage(body), nil)
	case status != 0:
		// 400: an invalid event stays invalid; never retry it.
		return false, n.fail(act, dedup, status, apiMessage(body), nil)
	}
	// No response: network error, timeout, cancellation.
	msg := "no response"
	if err != nil {
		msg = err.Error()
	}
	return true, n.fail(act, dedup, 0, msg, ctx.Err())
}

// Error is a failed delivery. Its text never contains a routing key.
type Error struct {
	Action     string // trigger or resolve
	DedupKey   string
	StatusCode int    // 0 when there was no response
	Message    string // the API's message and errors, or the transport error, redacted
	cause      error
}

func (e *Error) Error() string {
	s := "pagerduty: " + e.Action + " " + e.DedupKey + ": "
	if e.StatusCode != 0 {
		s += "HTTP " + strconv.Itoa(e.StatusCode)
		if e.Message != "" {
			s += ": "
		}
	}
	return s + e.Message
}

// Unwrap gives the context's error when the context ended the request.
func (e *Error) Unwrap() error { return e.cause }

func (n *Notifier) fail(act, dedup string, status int, msg string, cause error) *Error {
	return &Error{Action: act, DedupKey: n.redact(dedup), StatusCode: status, Message: n.redact(msg), cause: cause}
}

func (n *Notifier) redact(s string) string {
	for _, k := range n.secrets {
		if k != "" {
			s = strings.ReplaceAll(s, k, "<redacted>")
		}
	}
	return s
}

// apiMessage is the Events API's error body, {"status","message","errors"},
// as one line; or a short excerpt of a body in another shape.
func apiMessage(body []byte) string {
	var r struct {
		Status  string   `json:"status"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	if err := json.Unmarshal(body, &r); err == nil && (r.Message != "" || r.Status != "") {
		msg := r.Message
		if msg == "" {
			msg = r.Status
		}
		if len(r.Errors) > 0 {
			msg += ": " + strings.Join(r.Errors, "; ")
		}
		return msg
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "")
}

// captureKey carries a *capture in a request's context.
type captureKey struct{}

// capture is what one call's HTTP response said.
type capture struct {
	mu     sync.Mutex
	status int
	header http.Header
	body   []byte // of a non-2xx response, at most 64 KiB
}

func (c *capture) get() (int, http.Header, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.header, c.body
}

// capturingClient is go-pagerduty's HTTPClient: it sends with the configured
// *http.Client and records the response in the request's capture.
type capturingClient struct{ c *http.Client }

func (cc *capturingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := cc.c.Do(req)
	if err != nil || resp == nil {
		return resp, err
	}
	got, _ := req.Context().Value(captureKey{}).(*capture)
	if got == nil {
		return resp, nil
	}
	var body []byte
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	got.mu.Lock()
	got.status, got.header, got.body = resp.StatusCode, resp.Header.Clone(), body
	got.mu.Unlock()
	return resp, nil
}

// limiter allows n events per rolling window per routing key, the way
// PagerDuty counts them. A token bucket of the same rate would let up to 2n
// through in one window after an idle spell; this log of send times cannot.
type limiter struct {
	n      int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	sent map[string][]time.Time
}

// take counts one event for key, or says how long until one may be sent.
func (l *limiter) take(key string) (time.Duration, bool) {
	if l.n < 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	times := l.sent[key]
	i := 0
	for i < len(times) && !times[i].After(now.Add(-l.window)) {
		i++
	}
	times = times[i:]
	if len(times) >= l.n {
		l.sent[key] = times
		wait := times[0].Add(l.window).Sub(now)
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		return wait, false
	}
	l.sent[key] = append(times, now)
	return 0, true
}

// alertDetail is one alert in custom_details, compact.
type alertDetail struct {
	Name     string            `json:"alertname"`
	Status   string            `json:"status"`
	Labels   map[string]string `json:"labels"`
	Summary  string            `json:"summary,omitempty"`
	StartsAt string            `json:"startsAt"`
}

// details is the trigger's custom_details.
type details struct {
	IncidentID       string            `json:"incident_id"`
	Service          string            `json:"service"`
	Severity         int               `json:"severity"`
	PreviousSeverity int               `json:"previous_severity,omitempty"`
	Event            string            `json:"event"`
	Rule             int               `json:"rule"`
	Reasons          []string          `json:"reasons"`
	Signals          *severity.Signals `json:"signals,omitempty"`
	Started          string            `json:"started"`
	Alerts           []alertDetail     `json:"alerts"`
	AlertsTotal      int               `json:"alerts_total"`
	// AlertsDropped counts alerts left out of Alerts to keep the event
	// under PagerDuty's size limit.
	AlertsDropped int `json:"alerts_dropped,omitempty"`
	// LinksDropped counts URLs from the alerts left out of links for not
	// being http(s) URLs.
	LinksDropped int    `json:"links_dropped,omitempty"`
	Note         string `json:"note,omitempty"`
	// Diagnosis is the quick diagnosis with a compact Kubernetes snapshot
	// and, after a bad rollout, the rollback command.
	Diagnosis map[string]any `json:"diagnosis,omitempty"`
}

// decisive is the alert whose decision is the incident's (or the first).
func decisive(ev *incident.Event) *incident.Alert {
	for i := range ev.Alerts {
		if ev.Alerts[i].Key == ev.Incident.Decisive {
			return &ev.Alerts[i]
		}
	}
	if len(ev.Alerts) > 0 {
		return &ev.Alerts[0]
	}
	return nil
}

func firstLabel(labels map[string]string, names ...string) string {
	for _, n := range names {
		if v := labels[n]; v != "" {
			return v
		}
	}
	return ""
}

// trigger builds the trigger event for ev, under MaxEventBytes.
func (n *Notifier) trigger(ev *incident.Event, key string) (*pd.V2Event, error) {
	inc := &ev.Incident
	sev, _ := notify.PagerDutySeverity(inc.Severity)
	a := decisive(ev)
	var labels map[string]string
	if a != nil {
		labels = a.Labels
	}

	// source: the service is the affected system in amtriage's model (one
	// incident per service); a service-less incident falls back to the
	// decisive alert's instance or cluster.
	source := inc.Service
	if source == "" {
		source = firstLabel(labels, "instance", "cluster")
	}
	if source == "" {
		source = "amtriage"
	}
	summary := inc.Title
	if strings.TrimSpace(summary) == "" {
		summary = "INCIDENT: " + source
	}

	d := details{
		IncidentID:  inc.ID,
		Service:     inc.Service,
		Severity:    int(inc.Severity),
		Event:       string(ev.Kind),
		Rule:        inc.Rule,
		Reasons:     inc.Reasons,
		Started:     inc.StartedAt.UTC().Format(time.RFC3339),
		AlertsTotal: ev.AlertsTotal,
	}
	if inc.Diagnosis != nil {
		d.Diagnosis = inc.Diagnosis.Details()
	}
	if ev.Kind == incident.SeverityChanged {
		d.PreviousSeverity = int(ev.PreviousSeverity)
	}
	if a != nil {
		d.Signals = &a.Decision.Signals
	}
	if d.AlertsTotal < len(ev.Alerts) {
		d.AlertsTotal = len(ev.Alerts)
	}
	all := make([]alertDetail, len(ev.Alerts))
	for i := range ev.Alerts {
		x := &ev.Alerts[i]
		name := x.Name
		if name == "" {
			name = x.Labels["alertname"]
		}
		all[i] = alertDetail{
			Name: name, Status: x.Status, Labels: x.Labels,
			Summary:  clip.Runes(x.Annotations["summary"], 1024),
			StartsAt: x.StartsAt.UTC().Format(time.RFC3339),
		}
	}
	d.Alerts = all
	links, dropped := n.links(ev, a)
	d.LinksDropped = dropped

	e := &pd.V2Event{
		RoutingKey: key,
		Action:     "trigger",
		DedupKey:   inc.ID,
		Client:     n.cfg.ClientName,
		ClientURL:  n.cfg.ClientURL,
		Links:      links,
		Payload: &pd.V2Payload{
			Summary:   clip.Runes(summary, MaxSummary),
			Source:    source,
			Severity:  sev,
			Timestamp: inc.StartedAt.UTC().Format(time.RFC3339),
			Component: firstLabel(labels, "service", "job"),
			Group:     firstLabel(labels, "namespace", "cluster"),
			Class:     firstLabel(labels, "alertname"),
			Details:   &d,
		},
	}
	if e.Payload.Class == "" && a != nil {
		e.Payload.Class = a.Name
	}

	size := func() (int, error) {
		b, err := json.Marshal(e)
		return len(b), err
	}
	sz, err := size()
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	if sz <= MaxEventBytes {
		return e, nil
	}
	// Too large: keep the longest prefix of the alerts that fits (binary
	// search, a dozen encodings even for thousands of alerts).
	lo, hi := 0, len(all) // lo: fits (assumed, checked below); hi: too large
	for lo < hi-1 {
		mid := (lo + hi) / 2
		d.Alerts, d.AlertsDropped = all[:mid], len(all)-mid
		if sz, _ = size(); sz <= MaxEventBytes {
			lo = mid
		} else {
			hi = mid
		}
	}
	d.Alerts, d.AlertsDropped = all[:lo], len(all)-lo
	if sz, _ = size(); sz <= MaxEventBytes {
		return e, nil
	}
	// Even without alerts it is too large (huge reasons, signals or labels):
	// keep what identifies the incident.
	d.Signals, d.Reasons = nil, truncateList(d.Reasons, 10, 1024)
	if inc.Diagnosis != nil { // keep the verdict and the command, drop the snapshot
		short := *inc.Diagnosis
		short.Snapshot, short.Evidence = nil, truncateList(short.Evidence, 3, 256)
		d.Diagnosis = short.Details()
	}
	d.Note = "details trimmed to stay under PagerDuty's 512 KB event limit"
	if sz, _ = size(); sz <= MaxEventBytes {
		return e, nil
	}
	e.Links = nil
	e.Payload.Component = clip.Runes(e.Payload.Component, 256)
	e.Payload.Group = clip.Runes(e.Payload.Group, 256)
	e.Payload.Class = clip.Runes(e.Payload.Class, 256)
	e.Payload.Source = clip.Runes(e.Payload.Source, 256)
	d.Reasons = nil
	return e, nil
}

func truncateList(l []string, n, each int) []string {
	if len(l) > n {
		l = l[:n]
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = clip.Runes(s, each)
	}
	return out
}

// links: the decisive alert's runbook and generator URL, an Alertmanager
// silence prefilled with its labels, and the Grafana dashboard. Most come
// from alerts, which anyone who can post to Alertmanager writes: only
// absolute http(s) URLs with a host become links (a javascript: runbook
// would run in the responder's browser); dropped counts the others.
func (n *Notifier) links(ev *incident.Event, a *incident.Alert) (out []interface{}, dropped int) {
	add := func(href, text string) {
		if href = strings.TrimSpace(href); href == "" {
			return
		}
		if !webURL(href) {
			dropped++
			return
		}
		out = append(out, link{Href: href, Text: text})
	}
	if a != nil {
		add(firstLabel(a.Annotations, "runbook_url", "runbook"), "Runbook")
		add(a.GeneratorURL, "Alert source")
		if ev.Incident.ExternalURL != "" && len(a.Labels) > 0 {
			add(SilenceURL(ev.Incident.ExternalURL, a.Labels), "Silence in Alertmanager")
		}
	}
	if n.cfg.GrafanaURL != "" {
		if u, err := url.Parse(n.cfg.GrafanaURL); err == nil {
			q := u.Query()
			q.Set("from", strconv.FormatInt(ev.Incident.StartedAt.Add(-15*time.Minute).UnixMilli(), 10))
			q.Set("to", "now")
			u.RawQuery = q.Encode()
			add(u.String(), "Grafana")
		}
	}
	return out, dropped
}

// webURL reports whether s is an absolute http or https URL with a host
// (url.Parse lowercases the scheme, so JavaScript: is caught too).
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" && u.Opaque == ""
}

// link is a links[] entry.
type link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// SilenceURL is Alertmanager's "new silence" page prefilled with one
// equality matcher per label: <externalURL>/#/silences/new?filter={a="b",…},
// the filter URL-escaped.
func SilenceURL(externalURL string, labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + `="` + esc.Replace(labels[k]) + `"`)
	}
	b.WriteByte('}')
	filter := strings.ReplaceAll(url.QueryEscape(b.String()), "+", "%20")
	return strings.TrimRight(externalURL, "/") + "/#/silences/new?filter=" + filter
}
