// Package silence creates, finds and expires silences through Alertmanager's
// API v2, for the Silence and Unsilence actions on an incident.
//
// Idempotency. A silence's id is known only from Alertmanager's answer, so
// a crash (or a lost answer, or a timeout) between Alertmanager's 200 and our
// record of the id would make a retry create a second silence. Instead every
// silence amtriage writes carries Marker(incident) in its comment, and the
// action first asks FindActive for a live silence by "amtriage" with that
// marker: if there is one, its id is the action's result and nothing is
// posted. A second click is the same case. The guard relies on Alertmanager
// listing a silence as soon as its POST has answered, which holds for one
// Alertmanager; behind a load balancer over a cluster a retry may reach a
// peer the silence has not gossiped to yet.
package silence

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

	"github.com/amtriage/amtriage/internal/clip"
)

// DefaultMaxBody bounds the answers read from Alertmanager. The listing of
// every silence is the largest (expired ones stay listed for the retention,
// 120 h by default): 16 MiB is some 30,000 silences.
const DefaultMaxBody = 16 << 20

// errBodyLimit bounds the error text kept from a failed answer.
const errBodyLimit = 1 << 10

// CreatedBy is the createdBy of the silences amtriage writes.
const CreatedBy = "amtriage"

// Marker is the text the comment of an incident's silence carries, so that
// FindActive finds it again. The brackets keep incident "api-1" from
// matching the silence of "api-12".
func Marker(incidentID string) string { return "[amtriage incident " + incidentID + "]" }

// States of a silence.
const (
	StateActive  = "active"
	StatePending = "pending"
	StateExpired = "expired"
)

// Silence is a silence as Alertmanager's API v2 posts and returns it. ID,
// State and UpdatedAt are Alertmanager's: left empty when creating.
type Silence struct {
	ID        string    `json:"id,omitempty"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Status    *Status   `json:"status,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// Status is the silence's state.
type Status struct {
	State string `json:"state"`
}

// State returns the silence's state, "" when Alertmanager gave none.
func (s Silence) State() string {
	if s.Status == nil {
		return ""
	}
	return s.Status.State
}

// BasicAuth is an http_config basic_auth.
type BasicAuth struct {
	Username string
	Password string
}

// Config is the Alertmanager to talk to.
type Config struct {
	// URL is Alertmanager's base URL (alertmanager.url), e.g.
	// http://alertmanager:9093 or https://host/alertmanager behind a
	// path prefix. Required.
	URL string
	// HTTPClient is the caller's (TLS, proxy, its own timeout).
	// Default: a client with a 10 s timeout. Deadlines come from ctx.
	HTTPClient *http.Client
	// BearerToken, if set, is sent as "Authorization: Bearer <token>";
	// BasicAuth, if set, as basic auth. At most one of them.
	BearerToken string
	BasicAuth   *BasicAuth
	// MaxBody bounds every answer read (default DefaultMaxBody).
	MaxBody int64
}

// Client talks to one Alertmanager's silences API. Safe for concurrent use.
type Client struct {
	base *url.URL
	cfg  Config
	hc   *http.Client
}

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("alertmanager url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alertmanager url %q: want an absolute http(s) URL", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("alertmanager url %q: want no query or fragment", cfg.URL)
	}
	if cfg.BearerToken != "" && cfg.BasicAuth != nil {
		return nil, errors.New("alertmanager: bearer token and basic auth are mutually exclusive")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	return &Client{base: u, cfg: cfg, hc: hc}, nil
}

// SilenceURL is the silence's page in Alertmanager's UI, for the Slack
// message and the timeline. It assumes the UI is served at the API's URL.
func (c *Client) SilenceURL(id string) string {
	return c.base.String() + "/#/silences/" + url.PathEscape(id)
}

// Create posts s and returns the id Alertmanager gave it. With s.ID set it
// updates that silence instead; Alertmanager then answers with a new id
// when the silence had expired or its matchers changed. Create does not
// look for an existing silence: guard it with FindActive (see the package
// comment).
func (c *Client) Create(ctx context.Context, s Silence) (string, error) {
	if err := validate(s); err != nil {
		return "", &Error{Op: "create silence", Err: err}
	}
	post := s
	post.Status, post.UpdatedAt = nil, time.Time{}
	body, err := json.Marshal(post)
	if err != nil {
		return "", &Error{Op: "create silence", Err: fmt.Errorf("encode: %w", err)}
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := c.do(ctx, "create silence", http.MethodPost, "/api/v2/silences", body, &out); err != nil {
		return "", err
	}
	if out.SilenceID == "" {
		return "", &Error{Op: "create silence", StatusCode: http.StatusOK, Err: errors.New("answer has no silenceID")}
	}
	return out.SilenceID, nil
}

// Get returns the silence with id; an error wrapping ErrNotFound when
// Alertmanager has none (never created, or expired and garbage-collected).
func (c *Client) Get(ctx context.Context, id string) (Silence, error) {
	var s Silence
	if id == "" {
		return s, &Error{Op: "get silence", Err: errors.New("empty silence id")}
	}
	err := c.do(ctx, "get silence "+id, http.MethodGet, "/api/v2/silence/"+url.PathEscape(id), nil, &s)
	return s, err
}

// List returns every silence Alertmanager holds, expired ones included
// (Alertmanager 0.25 ignores the API's active/pending/expired filters).
func (c *Client) List(ctx context.Context) ([]Silence, error) {
	var out []Silence
	err := c.do(ctx, "list silences", http.MethodGet, "/api/v2/silences", nil, &out)
	return out, err
}

// Expire ends the silence now (DELETE /api/v2/silence/{id}). Expiring an
// expired silence succeeds, so Unsilence may be retried; a silence
// Alertmanager does not know is an error wrapping ErrNotFound, which an
// Unsilence may treat as done.
func (c *Client) Expire(ctx context.Context, id string) error {
	if id == "" {
		return &Error{Op: "expire silence", Err: errors.New("empty silence id")}
	}
	return c.do(ctx, "expire silence "+id, http.MethodDelete, "/api/v2/silence/"+url.PathEscape(id), nil, nil)
}

// FindActive returns the silences that are active or pending, were created
// by createdBy and whose comment contains marker (see Marker), newest end
// first. Normally there is at most one.
func (c *Client) FindActive(ctx context.Context, createdBy, marker string) ([]Silence, error) {
	if createdBy == "" || marker == "" {
		return nil, &Error{Op: "find silence", Err: errors.New("createdBy and marker are required: an empty one would match others' silences")}
	}
	all, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Silence
	for _, s := range all {
		if st := s.State(); st != StateActive && st != StatePending {
			continue
		}
		if s.CreatedBy == createdBy && strings.Contains(s.Comment, marker) {
			out = append(out, s)
		}
	}
	// Insertion sort: the list is tiny, and the order must not depend on
	// Alertmanager's.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].EndsAt.After(out[j-1].EndsAt); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// Ensure returns the id of the incident's live silence, creating s only
// when FindActive finds none by s.CreatedBy with marker: a second click, a
// Slack retry and an outbox retry after a crash all end with one silence.
// created says whether this call posted it. s.Comment must contain marker,
// or the silence could never be found again.
func (c *Client) Ensure(ctx context.Context, s Silence, marker string) (id string, created bool, err error) {
	if marker == "" || !strings.Contains(s.Comment, marker) {
		return "", false, &Error{Op: "ensure silence", Err: fmt.Errorf("comment %q lacks the marker %q", s.Comment, marker)}
	}
	found, err := c.FindActive(ctx, s.CreatedBy, marker)
	if err != nil {
		return "", false, err
	}
	if len(found) > 0 {
		return found[0].ID, false, nil
	}
	id, err = c.Create(ctx, s)
	return id, err == nil, err
}

// validate refuses what Alertmanager would refuse with a 400 or 422, with
// the reason, before anything is sent.
func validate(s Silence) error {
	switch {
	case len(s.Matchers) == 0:
		return errors.New("a silence needs at least one matcher")
	case s.StartsAt.IsZero() || s.EndsAt.IsZero():
		return errors.New("startsAt and endsAt are required")
	case !s.EndsAt.After(s.StartsAt):
		return fmt.Errorf("endsAt %s is not after startsAt %s", s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	case s.CreatedBy == "":
		return errors.New("createdBy is required")
	case s.Comment == "":
		return errors.New("comment is required")
	}
	for _, m := range s.Matchers {
		if m.Name == "" {
			return errors.New("a matcher has no label name")
		}
	}
	return nil
}

// do sends one request and decodes a 200's JSON into out (when not nil).
func (c *Client) do(ctx context.Context, op, method, path string, body []byte, out any) error {
	u := *c.base
	u.Path += path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.cfg.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	case c.cfg.BasicAuth != nil:
		req.SetBasicAuth(c.cfg.BasicAuth.Username, c.cfg.BasicAuth.Password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// Refused, reset, timed out: Alertmanager may be restarting.
		return &Error{Op: op, Retryable: true, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(op, method, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody+1))
	if err != nil {
		return &Error{Op: op, StatusCode: resp.StatusCode, Retryable: true, Err: fmt.Errorf("read answer: %w", err)}
	}
	if int64(len(data)) > c.cfg.MaxBody {
		return &Error{Op: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("answer larger than %d bytes: %w", c.cfg.MaxBody, ErrBodyTooLarge)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		// Not Alertmanager's API (a login page, a wrong path prefix):
		// retrying will not help.
		return &Error{Op: op, StatusCode: resp.StatusCode, Err: fmt.Errorf("decode answer %q: %w", clip.Bytes(string(data), 200), err)}
	}
	return nil
}

func statusError(op, method string, resp *http.Response) error {
	text, _ := io.ReadAll(io.LimitReader(resp.Body, errBodyLimit))
	msg := clip.Bytes(string(bytes.TrimSpace(text)), errBodyLimit)
	// Alertmanager writes its reason as a JSON string ("start time must
	// be before end time") or an object with "message".
	var s string
	var obj struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(text, &s) == nil {
		msg = s
	} else if json.Unmarshal(text, &obj) == nil && obj.Message != "" {
		msg = obj.Message
	}
	e := &Error{Op: op, StatusCode: resp.StatusCode, Message: msg}
	switch {
	case resp.StatusCode == http.StatusNotFound,
		// Alertmanager 0.25 answers DELETE of an unknown id with 500
		// "silence not found" (0.27+ with 404).
		method == http.MethodDelete && resp.StatusCode == http.StatusInternalServerError && strings.Contains(msg, "not found"):
		e.Err = ErrNotFound
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		e.Retryable = true
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	}
	return e
}

// ErrNotFound: Alertmanager has no silence with that id.
var ErrNotFound = errors.New("silence not found")

// ErrBodyTooLarge: an answer exceeded Config.MaxBody.
var ErrBodyTooLarge = errors.New("answer too large")

// Error is every failure of a Client call. The outbox worker retries it
// when Retryable (connection errors, timeouts, 408, 429, 5xx) and dead-letters
// it otherwise (4xx: Alertmanager refused the silence and says why in
// Message; a 200 it cannot read).
type Error struct {
	Op         string
	StatusCode int    // 0 when no answer came
	Message    string // Alertmanager's reason, clipped to 1 KiB
	Retryable  bool
	// RetryAfter is the answer's Retry-After (429, 503), zero if none.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("alertmanager: ")
	b.WriteString(e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil && (e.Message == "" || !strings.Contains(e.Message, e.Err.Error())) {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether err is worth trying again: a Client error
// marked so; any other error is not.
func Retryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var secs int
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
