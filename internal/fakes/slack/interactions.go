package slack

// Interactivity: the fake plays Slack posting block_actions payloads to an
// app's interactivity URL (signed as Slack signs them: X-Slack-Signature =
// "v0=" hex HMAC-SHA256 of "v0:<timestamp>:<body>" with the app's signing
// secret, X-Slack-Request-Timestamp in epoch seconds, the body a form with a
// single payload field), and serves the response_url each payload carries,
// recording the replies posted to it.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultSigningSecret is the signing secret a new fake signs with.
const DefaultSigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// Team is the workspace the fake's interactions come from.
const (
	TeamID     = "T0FAKE001"
	TeamDomain = "amtriage-fake"
)

// Slack's documented response_url limits: 5 uses within 30 minutes.
const (
	ResponseURLUses     = 5
	ResponseURLLifetime = 30 * time.Minute
)

// InteractionPayload is one button click, as the block_actions payload Slack
// sends for it. Empty fields get Slack-shaped defaults: the fake's team, a
// fresh action_ts and trigger_id, and a new response_url on the fake.
type InteractionPayload struct {
	UserID, UserName string // default "U0FAKE001", "responder"
	// UserTeamID is the user's own workspace (default TeamID): another
	// organisation's in a Slack Connect channel.
	UserTeamID             string
	ChannelID, ChannelName string // default CALERTS, "alerts"
	MessageTS, ThreadTS    string
	BlockID                string
	ActionID, Value        string
	ButtonText             string
	ActionTS               string
	TriggerID              string
	ResponseURL            string
	// Message is the message object sent along (Slack sends the whole
	// message the button is on); nil sends a minimal one.
	Message map[string]any
}

// Sent is one interaction request the fake made and what it was answered.
type Sent struct {
	Header   http.Header
	Body     []byte // the raw form body
	Status   int
	Response string
}

// Tamper spoils a request the way an attacker or a broken proxy would.
type Tamper int

// The ways SendInteractionTampered spoils a request.
const (
	WrongSecret      Tamper = iota + 1 // signed with another secret
	StaleTimestamp                     // signed correctly, timestamp 6 minutes old
	FutureTimestamp                    // signed correctly, timestamp 6 minutes ahead
	MissingSignature                   // no X-Slack-Signature
	MissingTimestamp                   // no X-Slack-Request-Timestamp
	TamperedBody                       // signed, then the body changed
)

// HookReply is one message posted to a response_url on the fake.
type HookReply struct {
	Hook            string // the response_url's path
	ResponseType    string // "ephemeral" or "in_channel" ("" when not sent)
	ReplaceOriginal *bool
	DeleteOriginal  *bool
	Text            string
	Raw             json.RawMessage
}

type hook struct {
	created time.Time
	uses    int
}

// SetSigningSecret changes the secret interactions are signed with.
func (s *Server) SetSigningSecret(secret []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = append([]byte(nil), secret...)
}

// SigningSecret is the secret interactions are signed with.
func (s *Server) SigningSecret() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.secret...)
}

// SetClock replaces the fake's clock for timestamps and response_url expiry.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// NewResponseURL registers a fresh response_url on the fake, shaped like
// Slack's https://hooks.slack.com/actions/T…/…/… .
func (s *Server) NewResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newHookLocked()
}

func (s *Server) newHookLocked() string {
	s.hookSeq++
	path := fmt.Sprintf("/actions/%s/%d/%024x", TeamID, 7000000000+s.hookSeq, s.hookSeq*0x9e3779b97f4a7c15)
	s.hooks[path] = &hook{created: s.clock()}
	return s.srv.URL + path
}

// HookReplies returns what was posted to the fake's response URLs, in order.
func (s *Server) HookReplies() []HookReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]HookReply(nil), s.hookReplies...)
}

// SentInteractions returns the interaction requests made, in order.
func (s *Server) SentInteractions() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// payloadJSON fills p's defaults and renders Slack's block_actions payload.
func (s *Server) payloadJSON(p InteractionPayload) ([]byte, error) {
	s.mu.Lock()
	now := s.clock()
	s.actionSeq++
	seq := s.actionSeq
	if p.ResponseURL == "" {
		p.ResponseURL = s.newHookLocked()
	}
	s.mu.Unlock()
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&p.UserID, "U0FAKE001")
	def(&p.UserName, "responder")
	def(&p.UserTeamID, TeamID)
	def(&p.ChannelID, "CALERTS")
	def(&p.ChannelName, "alerts")
	def(&p.ButtonText, p.ActionID)
	// action_ts is the click time with microseconds, unique per click here.
	def(&p.ActionTS, fmt.Sprintf("%d.%06d", now.Unix(), (now.Nanosecond()/1000+int(seq))%1000000))
	def(&p.TriggerID, fmt.Sprintf("%d.%s.%032x", 10000000000+seq, "3901254001572", seq))
	msg := p.Message
	if msg == nil {
		msg = map[string]any{"type": "message", "user": BotUser, "ts": p.MessageTS, "text": ""}
		if p.ThreadTS != "" {
			msg["thread_ts"] = p.ThreadTS
		}
	}
	container := map[string]any{"type": "message", "message_ts": p.MessageTS, "channel_id": p.ChannelID, "is_ephemeral": false}
	if p.ThreadTS != "" {
		container["thread_ts"] = p.ThreadTS
	}
	action := map[string]any{
		"type": "button", "action_id": p.ActionID, "block_id": p.BlockID,
		"text":      map[string]any{"type": "plain_text", "text": p.ButtonText, "emoji": true},
		"action_ts": p.ActionTS,
	}
	if p.Value != "" {
		action["value"] = p.Value
	}
	return json.Marshal(map[string]any{
		"type":                  "block_actions",
		"user":                  map[string]any{"id": p.UserID, "username": p.UserName, "name": p.UserName, "team_id": p.UserTeamID},
		"api_app_id":            "A0FAKEAPP1",
		"token":                 "legacyVerificationToken0", // deprecated in favour of signing; sent anyway
		"container":             container,
		"trigger_id":            p.TriggerID,
		"team":                  map[string]any{"id": TeamID, "domain": TeamDomain},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": p.ChannelID, "name": p.ChannelName},
		"message":               msg,
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          p.ResponseURL,
		"actions":               []any{action},
	})
}

// SendInteraction posts p, signed, to an app's interactivity URL as Slack
// does, and returns the request and its answer.
func (s *Server) SendInteraction(ctx context.Context, url string, p InteractionPayload) (Sent, error) {
	return s.SendInteractionTampered(ctx, url, p, 0)
}

// SendInteractionTampered posts p spoiled by t (0 for none).
func (s *Server) SendInteractionTampered(ctx context.Context, url string, p InteractionPayload, t Tamper) (Sent, error) {
	js, err := s.payloadJSON(p)
	if err != nil {
		return Sent{}, fmt.Errorf("encoding payload: %w", err)
	}
	body := []byte("payload=" + queryEscape(string(js)))
	now := s.clock()
	secret := s.SigningSecret()
	ts := now.Unix()
	switch t {
	case StaleTimestamp:
		ts -= 6 * 60
	case FutureTimestamp:
		ts += 6 * 60
	case WrongSecret:
		secret = append([]byte("not-"), secret...)
	}
	tsStr := strconv.FormatInt(ts, 10)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	h.Set("X-Slack-Request-Timestamp", tsStr)
	h.Set("X-Slack-Signature", sign(secret, tsStr, body))
	switch t {
	case MissingSignature:
		h.Del("X-Slack-Signature")
	case MissingTimestamp:
		h.Del("X-Slack-Request-Timestamp")
	case TamperedBody:
		body = bytes.Replace(body, []byte("U0"), []byte("U9"), 1)
		if !bytes.Contains(body, []byte("U9")) {
			body = append(body, '&', 'x', '=', '1')
		}
	}
	return s.post(ctx, url, h, body)
}

// Resend delivers a previous request again, re-signed with a fresh
// timestamp as a genuine redelivery is: the same payload and action_ts.
func (s *Server) Resend(ctx context.Context, url string, prev Sent) (Sent, error) {
	ts := strconv.FormatInt(s.clock().Unix(), 10)
	h := prev.Header.Clone()
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", sign(s.SigningSecret(), ts, prev.Body))
	return s.post(ctx, url, h, prev.Body)
}

// Replay sends a captured request's body and signature again with a new
// timestamp, as an attacker without the secret would: it must not verify.
func (s *Server) Replay(ctx context.Context, url string, prev Sent) (Sent, error) {
	h := prev.Header.Clone()
	h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(s.clock().Unix()+1, 10))
	return s.post(ctx, url, h, prev.Body)
}

// ReplayExact sends a captured request again unchanged (same timestamp and
// signature): within 5 minutes it verifies, so only idempotency stops it.
func (s *Server) ReplayExact(ctx context.Context, url string, prev Sent) (Sent, error) {
	return s.post(ctx, url, prev.Header.Clone(), prev.Body)
}

func (s *Server) post(ctx context.Context, url string, h http.Header, body []byte) (Sent, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Sent{}, err
	}
	req.Header = h.Clone()
	sent := Sent{Header: h.Clone(), Body: append([]byte(nil), body...)}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sent, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	sent.Status, sent.Response = resp.StatusCode, string(raw)
	s.mu.Lock()
	s.sent = append(s.sent, sent)
	s.mu.Unlock()
	return sent, nil
}

// Click is a user clicking a button on a message the fake holds.
type Click struct {
	Channel  string // name or ID
	TS       string // the message's ts
	ActionID string
	UserID   string
	UserName string
	// Deny answers a button's confirmation dialog with its deny button:
	// Slack then sends nothing.
	Deny bool
}

// ErrNoButton is a Click on a message or button that does not exist.
var ErrNoButton = errors.New("no such button")

// ErrDenied is a Click whose confirmation dialog was denied: nothing is sent.
var ErrDenied = errors.New("confirmation denied: slack sends nothing")

// ClickButton finds the button on the message and sends the block_actions
// payload Slack would for it: its block_id, action_id and value as posted,
// and the message itself. A button with a confirm object is sent only if
// the dialog is confirmed (Click.Deny false).
func (s *Server) ClickButton(ctx context.Context, url string, c Click) (Sent, error) {
	s.mu.Lock()
	ch := s.resolve(c.Channel)
	var m *Message
	if ch != nil {
		m = s.find(ch.ID, c.TS)
	}
	var p InteractionPayload
	var found, confirm bool
	if m != nil {
		var blocks []map[string]any
		_ = json.Unmarshal(m.Blocks, &blocks)
		for _, b := range blocks {
			if b["type"] != "actions" {
				continue
			}
			els, _ := b["elements"].([]any)
			for _, e := range els {
				el, _ := e.(map[string]any)
				if el["type"] == "button" && el["action_id"] == c.ActionID {
					found = true
					_, confirm = el["confirm"].(map[string]any)
					p.BlockID, _ = b["block_id"].(string)
					p.Value, _ = el["value"].(string)
					if t, ok := el["text"].(map[string]any); ok {
						p.ButtonText, _ = t["text"].(string)
					}
				}
			}
		}
		p.ChannelID, p.ChannelName, p.MessageTS, p.ThreadTS = ch.ID, ch.Name, m.TS, m.ThreadTS
		p.Message = map[string]any{"type": "message", "user": BotUser, "ts": m.TS, "text": m.Text,
			"blocks": json.RawMessage(m.Blocks)}
		if m.Blocks == nil {
			delete(p.Message, "blocks")
		}
	}
	s.mu.Unlock()
	if !found {
		return Sent{}, fmt.Errorf("%w: %s on %s/%s", ErrNoButton, c.ActionID, c.Channel, c.TS)
	}
	if confirm && c.Deny {
		return Sent{}, ErrDenied
	}
	p.ActionID, p.UserID, p.UserName = c.ActionID, c.UserID, c.UserName
	return s.SendInteraction(ctx, url, p)
}

func sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// queryEscape encodes as an HTML form does (spaces as '+'), as Slack's body is.
func queryEscape(s string) string { return url.QueryEscape(s) }

// serveHook answers a POST to a response_url: JSON with text or blocks,
// 5 uses within 30 minutes; errors as HTTP statuses with a JSON envelope.
func (s *Server) serveHook(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code})
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "invalid_method")
		return
	}
	s.mu.Lock()
	h := s.hooks[r.URL.Path]
	now := s.clock()
	switch {
	case h == nil || now.Sub(h.created) > ResponseURLLifetime:
		s.mu.Unlock()
		fail(http.StatusNotFound, "expired_url")
		return
	case h.uses >= ResponseURLUses:
		s.mu.Unlock()
		fail(http.StatusNotFound, "used_url")
		return
	}
	s.mu.Unlock()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		fail(http.StatusBadRequest, "invalid_payload")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fail(http.StatusBadRequest, "invalid_payload")
		return
	}
	var msg struct {
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal *bool           `json:"replace_original"`
		DeleteOriginal  *bool           `json:"delete_original"`
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(raw, &msg); err != nil {
		fail(http.StatusBadRequest, "invalid_payload")
		return
	}
	if msg.Text == "" && len(msg.Blocks) == 0 && (msg.DeleteOriginal == nil || !*msg.DeleteOriginal) {
		fail(http.StatusBadRequest, "no_text")
		return
	}
	if strings.TrimSpace(msg.ResponseType) != "" && msg.ResponseType != "ephemeral" && msg.ResponseType != "in_channel" {
		fail(http.StatusBadRequest, "invalid_payload")
		return
	}
	s.mu.Lock()
	h.uses++
	s.hookReplies = append(s.hookReplies, HookReply{Hook: r.URL.Path, ResponseType: msg.ResponseType,
		ReplaceOriginal: msg.ReplaceOriginal, DeleteOriginal: msg.DeleteOriginal, Text: msg.Text, Raw: raw})
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true})
}
