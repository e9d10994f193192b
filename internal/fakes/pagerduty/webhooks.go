package pagerduty

// Webhooks v3: the fake plays the PagerDuty web app. A responder acts on the
// incident an alert opened (acknowledge, resolve, reassign, ...), the fake's
// state changes as PagerDuty's would, and the fake builds the signed v3
// webhook PagerDuty would deliver for it (docs/webhooks in
// PagerDuty/developer-docs: payload, X-PagerDuty-Signature, behaviour).

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Webhook v3 protocol constants.
const (
	WebhookUserAgent      = "PagerDuty-Webhook/V3.0"
	WebhookTimeout        = 5 * time.Second // PagerDuty expects a 2xx within 5 s
	HeaderSignature       = "X-PagerDuty-Signature"
	HeaderWebhookID       = "X-Webhook-Id" // unique per webhook, repeated on every retry
	HeaderSubscription    = "X-Webhook-Subscription"
	DefaultSubscriptionID = "PSUB0AMT"
	WebBase               = "https://amtriage-test.pagerduty.com" // the account's web app
	APIBase               = "https://api.pagerduty.com"
)

// User is a PagerDuty user, as webhooks reference them.
type User struct {
	ID   string
	Name string
}

// OnCall is who a new incident is assigned to.
var OnCall = User{ID: "PONCALL", Name: "On-call Engineer"}

// Incident is the PagerDuty incident an alert's first trigger opened.
type Incident struct {
	ID          string // e.g. "Q0AMT0000001"
	Number      int
	HTMLURL     string
	IncidentKey string // the dedup key of the trigger that opened it
	Title       string // the trigger's summary
	Status      string // Triggered, Acknowledged or Resolved (the alert's)
	Urgency     string // high for critical/error triggers, low otherwise
	CreatedAt   time.Time
	Assignees   []User
}

// Act is what a responder does in PagerDuty.
type Act struct {
	By *User  // who; nil means PagerDuty itself (a timeout, an escalation rule)
	To []User // new assignees, for incident.reassigned and incident.escalated
}

// Webhook is one signed v3 delivery. Send it as many times as PagerDuty
// would: retries repeat the same X-Webhook-Id and body, so the same event
// id (EventID, the body's event.id; X-Webhook-Id is a separate id).
type Webhook struct {
	EventID   string
	EventType string
	Header    http.Header
	Body      []byte
}

type incidentState struct {
	Incident
	alert *Alert
}

// SetWebhookSecrets sets the subscription's signing secrets: one, or two
// while a secret is rotated (PagerDuty then signs with each).
func (s *Server) SetWebhookSecrets(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.whSecrets = append([]string{}, secrets...)
}

// SetWebhookSubscription sets the X-Webhook-Subscription id.
func (s *Server) SetWebhookSubscription(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.whSubscription = id
}

// openIncident gives a newly opened alert its incident. Call with s.mu held.
func (s *Server) openIncident(a *Alert, ev *Event) {
	s.incidentSeq++
	id := fmt.Sprintf("Q0AMT%07d", s.incidentSeq)
	urgency := "low"
	if ev.Payload.Severity == "critical" || ev.Payload.Severity == "error" {
		urgency = "high"
	}
	s.incidents = append(s.incidents, &incidentState{alert: a, Incident: Incident{
		ID: id, Number: s.incidentSeq, HTMLURL: WebBase + "/incidents/" + id,
		IncidentKey: a.DedupKey, Title: a.Summary, Urgency: urgency,
		CreatedAt: s.now().UTC(), Assignees: []User{OnCall},
	}})
}

// incidentFor returns the incident of the latest alert with dedupKey. Call
// with s.mu held.
func (s *Server) incidentFor(dedupKey string) *incidentState {
	for i := len(s.incidents) - 1; i >= 0; i-- {
		if s.incidents[i].alert.DedupKey == dedupKey {
			return s.incidents[i]
		}
	}
	return nil
}

func (in *incidentState) snapshot() Incident {
	out := in.Incident
	out.Status = in.alert.Status
	out.Assignees = append([]User(nil), in.Assignees...)
	return out
}

// Incident returns the PagerDuty incident of the latest alert with dedupKey.
func (s *Server) Incident(dedupKey string) (Incident, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.incidentFor(dedupKey)
	if in == nil {
		return Incident{}, false
	}
	return in.snapshot(), true
}

// Respond applies a responder's act to the incident of the latest alert with
// dedupKey, as PagerDuty would, and returns the webhook it sends for it.
// eventType is one of incident.acknowledged, .unacknowledged, .resolved,
// .reassigned, .escalated (which change the incident), or incident.triggered,
// .priority_updated (which only build the event: amtriage ignores them).
// Acts PagerDuty refuses (acknowledging a resolved incident, ...) are errors.
func (s *Server) Respond(eventType, dedupKey string, act Act) (Webhook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.incidentFor(dedupKey)
	if in == nil {
		return Webhook{}, fmt.Errorf("pagerduty fake: no incident for dedup key %q", dedupKey)
	}
	a := in.alert
	agent := act.By
	if agent == nil && len(in.Assignees) > 0 && (eventType == "incident.acknowledged" || eventType == "incident.reassigned") {
		agent = &in.Assignees[0] // only a user acknowledges or reassigns
	}
	switch eventType {
	case "incident.acknowledged":
		if a.Status == Resolved {
			return Webhook{}, errors.New("pagerduty fake: incident is resolved")
		}
		a.Status = Acknowledged
	case "incident.unacknowledged":
		if a.Status != Acknowledged {
			return Webhook{}, errors.New("pagerduty fake: incident is not acknowledged")
		}
		a.Status = Triggered
	case "incident.resolved":
		if a.Status == Resolved {
			return Webhook{}, errors.New("pagerduty fake: incident is already resolved")
		}
		a.Status = Resolved
	case "incident.reassigned", "incident.escalated":
		if a.Status == Resolved {
			return Webhook{}, errors.New("pagerduty fake: incident is resolved")
		}
		if len(act.To) == 0 {
			return Webhook{}, fmt.Errorf("pagerduty fake: %s needs Act.To", eventType)
		}
		in.Assignees = append([]User(nil), act.To...)
	case "incident.triggered", "incident.priority_updated":
	default:
		return Webhook{}, fmt.Errorf("pagerduty fake: cannot build %q (its data is not an incident)", eventType)
	}
	body, id, err := s.eventBody(eventType, in, agent)
	if err != nil {
		return Webhook{}, err
	}
	return s.signed(eventType, id, body), nil
}

func userRef(u User) wireRef {
	return wireRef{HTMLURL: WebBase + "/users/" + u.ID, ID: u.ID, Self: APIBase + "/users/" + u.ID, Summary: u.Name, Type: "user_reference"}
}

func serviceRef(routingKey string) wireRef {
	id := "PSVC" + strings.ToUpper(routingKey[:min(4, len(routingKey))])
	return wireRef{HTMLURL: WebBase + "/services/" + id, ID: id, Self: APIBase + "/services/" + id, Summary: "amtriage", Type: "service_reference"}
}

// The JSON shapes below follow the field order of PagerDuty's documented
// example payload.
type wireRef struct {
	HTMLURL string `json:"html_url"`
	ID      string `json:"id"`
	Self    string `json:"self"`
	Summary string `json:"summary"`
	Type    string `json:"type"`
}

type wireIncident struct {
	ID               string    `json:"id"`
	Type             string    `json:"type"`
	Self             string    `json:"self"`
	HTMLURL          string    `json:"html_url"`
	Number           int       `json:"number"`
	Status           string    `json:"status"`
	IncidentKey      string    `json:"incident_key"`
	CreatedAt        string    `json:"created_at"`
	Title            string    `json:"title"`
	Service          wireRef   `json:"service"`
	Assignees        []wireRef `json:"assignees"`
	EscalationPolicy wireRef   `json:"escalation_policy"`
	Teams            []wireRef `json:"teams"`
	Priority         any       `json:"priority"`
	Urgency          string    `json:"urgency"`
	ConferenceBridge any       `json:"conference_bridge"`
	ResolveReason    any       `json:"resolve_reason"`
}

type wireEvent struct {
	ID           string       `json:"id"`
	EventType    string       `json:"event_type"`
	ResourceType string       `json:"resource_type"`
	OccurredAt   string       `json:"occurred_at"`
	Agent        *wireRef     `json:"agent"`
	Client       any          `json:"client"`
	Data         wireIncident `json:"data"`
}

// eventBody renders the v3 payload. Call with s.mu held.
func (s *Server) eventBody(eventType string, in *incidentState, agent *User) ([]byte, string, error) {
	svc := serviceRef(in.alert.RoutingKey)
	var ag *wireRef
	if agent != nil {
		r := userRef(*agent)
		ag = &r
	} else {
		ag = &svc // PagerDuty's own changes name the service
	}
	assignees := make([]wireRef, 0, len(in.Assignees))
	for _, u := range in.Assignees {
		assignees = append(assignees, userRef(u))
	}
	id := newUUID()
	ev := wireEvent{
		ID: id, EventType: eventType, ResourceType: "incident",
		OccurredAt: s.now().UTC().Format("2006-01-02T15:04:05.000Z"), Agent: ag,
		Data: wireIncident{
			ID: in.ID, Type: "incident", Self: APIBase + "/incidents/" + in.ID, HTMLURL: in.HTMLURL,
			Number: in.Number, Status: in.alert.Status, IncidentKey: in.IncidentKey,
			CreatedAt: in.CreatedAt.Format(time.RFC3339), Title: in.Title, Service: svc,
			Assignees: assignees,
			EscalationPolicy: wireRef{HTMLURL: WebBase + "/escalation_policies/PEPAMT1", ID: "PEPAMT1",
				Self: APIBase + "/escalation_policies/PEPAMT1", Summary: "Default", Type: "escalation_policy_reference"},
			Teams: []wireRef{}, Urgency: in.Urgency,
		},
	}
	body, err := json.Marshal(map[string]any{"event": ev})
	if err != nil {
		return nil, "", fmt.Errorf("pagerduty fake: encode webhook: %w", err)
	}
	return body, id, nil
}

// signed wraps body in the headers PagerDuty sends. Call with s.mu held.
func (s *Server) signed(eventType, eventID string, body []byte) Webhook {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", WebhookUserAgent)
	h.Set(HeaderWebhookID, newUUID())
	sub := s.whSubscription
	if sub == "" {
		sub = DefaultSubscriptionID
	}
	h.Set(HeaderSubscription, sub)
	if sig := Signature(body, s.whSecrets...); sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return Webhook{EventID: eventID, EventType: eventType, Header: h, Body: body}
}

// Signature is the X-PagerDuty-Signature value for body: "v1=<hex>" per
// secret, comma-separated; "" without secrets.
func Signature(body []byte, secrets ...string) string {
	var parts []string
	for _, sec := range secrets {
		m := hmac.New(sha256.New, []byte(sec))
		m.Write(body)
		parts = append(parts, "v1="+hex.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(parts, ",")
}

// Sign returns a signed webhook for any body (a hand-written payload, or
// one PagerDuty would send for an event the fake does not model).
func (s *Server) Sign(eventType, eventID string, body []byte) Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signed(eventType, eventID, bytes.Clone(body))
}

func (w Webhook) clone() Webhook {
	w.Header = w.Header.Clone()
	w.Body = bytes.Clone(w.Body)
	return w
}

// TamperBody returns w with its body changed after signing (the agent
// renamed; still valid JSON of the same shape), keeping the signature.
func (w Webhook) TamperBody() Webhook {
	c := w.clone()
	var m map[string]any
	if json.Unmarshal(c.Body, &m) == nil {
		if ev, ok := m["event"].(map[string]any); ok {
			ev["agent"] = map[string]any{"id": "PMALLORY", "type": "user_reference", "summary": "Mallory"}
			if b, err := json.Marshal(m); err == nil {
				c.Body = b
				return c
			}
		}
	}
	c.Body = append(c.Body, ' ')
	return c
}

// WithSignature returns w with the X-PagerDuty-Signature value replaced.
func (w Webhook) WithSignature(v string) Webhook {
	c := w.clone()
	c.Header.Set(HeaderSignature, v)
	return c
}

// WithoutSignature returns w without X-PagerDuty-Signature.
func (w Webhook) WithoutSignature() Webhook {
	c := w.clone()
	c.Header.Del(HeaderSignature)
	return c
}

// SignedWith returns w signed with other secrets than the subscription's
// (a forger's).
func (w Webhook) SignedWith(secrets ...string) Webhook {
	return w.WithSignature(Signature(w.Body, secrets...))
}

// SendWebhook POSTs w to url as PagerDuty does, waiting at most
// WebhookTimeout, and returns the status answered. PagerDuty retries 5xx,
// 429 and timeouts, drops other 4xx; a test retries by sending w again.
func SendWebhook(ctx context.Context, url string, w Webhook) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(w.Body))
	if err != nil {
		return 0, fmt.Errorf("pagerduty fake: webhook request: %w", err)
	}
	req.Header = w.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("pagerduty fake: deliver webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// echo records the webhook PagerDuty sends when the Events API changed an
// incident (opened, acknowledged or resolved it): amtriage hears its own acts
// back, with the service as the agent. Only once SetWebhookSecrets was
// called: the fake's other users pay nothing. Call with s.mu held.
func (s *Server) echo(eventType string, a *Alert) {
	if s.whSecrets == nil {
		return
	}
	for _, in := range s.incidents {
		if in.alert != a {
			continue
		}
		body, id, err := s.eventBody(eventType, in, nil)
		if err == nil {
			s.echoes = append(s.echoes, s.signed(eventType, id, body))
		}
		return
	}
}

// EventWebhooks returns, in order, the webhooks PagerDuty would have sent
// for the changes events made (incident.triggered, .acknowledged,
// .resolved) since SetWebhookSecrets, for a test to deliver.
func (s *Server) EventWebhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Webhook, len(s.echoes))
	for i, w := range s.echoes {
		out[i] = w.clone()
	}
	return out
}
