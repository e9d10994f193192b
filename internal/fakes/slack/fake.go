// Package slack is an in-process fake of the Slack Web API methods amtriage
// uses (chat.postMessage, chat.update, conversations.create,
// conversations.invite, conversations.join, conversations.list,
// conversations.history, conversations.replies), served on 127.0.0.1 by
// httptest. Messages carry Slack's message metadata, returned by the history
// methods only with include_all_metadata, as Slack does. It checks
// credentials, channel names and Block Kit limits as Slack documents them,
// answers in Slack's envelope ({"ok":false,"error":"…"} with HTTP 200), can
// inject faults (429 with Retry-After, 5xx, a hung request, a call performed
// whose answer is lost) and records
// everything it accepted. It also plays Slack's interactivity side
// (interactions.go): signed block_actions posts to an app, clicks on posted
// buttons, and the response_url endpoint. All accessors are safe for
// concurrent use and return copies.
package slack

import (
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
	MaxBlocks        = 50
	MaxSectionText   = 3000
	MaxSectionFields = 10
	MaxFieldText     = 2000
	MaxHeaderText    = 150
	MaxPostText      = 40000
	MaxUpdateText    = 4000
	MaxChannelName   = 80
	MaxInviteUsers   = 100
	// Actions block and button element limits.
	MaxActionElements = 25
	MaxButtonText     = 75
	MaxActionID       = 255
	MaxActionValue    = 2000
)

// Message is one message the fake accepted (a thread reply has ThreadTS).
type Message struct {
	Channel  string          // channel ID
	TS       string          // the message's own ts
	ThreadTS string          // parent ts for a thread reply, else ""
	Text     string          // current text (after updates)
	Blocks   json.RawMessage // current blocks (after updates), or nil
	Edits    int             // how many chat.update calls changed it
	Metadata *Metadata       // message metadata posted with it, or nil
}

// Metadata is a message's metadata (chat.postMessage's metadata argument).
type Metadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// Update is one accepted chat.update call.
type Update struct {
	Channel string
	TS      string
	Text    string
	Blocks  json.RawMessage
}

// Channel is a conversation known to the fake.
type Channel struct {
	ID       string
	Name     string
	Created  bool // made through conversations.create
	Archived bool
	Members  []string
}

// Invite is one accepted conversations.invite call.
type Invite struct {
	Channel string
	Users   []string
}

// Call is one request the fake received, whatever its outcome.
type Call struct {
	Method string
	Error  string // the Slack error code returned, "" on success or fault
	Status int    // HTTP status returned
	// Strings holds every string value of the request's parameters, with
	// JSON-valued parameters (blocks, attachments) decoded, so a test can
	// check what would have rendered — not its URL or JSON escaping.
	Strings []string
}

// Fault is an injected failure for the next matching call.
type Fault struct {
	Status     int    // HTTP status to answer with (e.g. 429, 500); 0 with Error means 200
	RetryAfter int    // seconds, sent as Retry-After when > 0
	Error      string // an ok:false error code to answer with HTTP 200 when Status is 0
	Hang       bool   // never answer until the client gives up or the server closes
	// Lost performs the call, then closes the connection without an answer
	// (a response lost on the way back, or a crash before it was read);
	// with Hang, it performs the call and then hangs.
	Lost bool
}

type methodFault struct {
	method string
	skip   int // matching calls to let through first
	Fault
}

// Server is the fake Slack Web API.
type Server struct {
	// URL is the API base to give slack.OptionAPIURL; it ends with "/".
	URL string

	srv   *httptest.Server
	token string
	hang  fault.Gate

	mu       sync.Mutex
	seq      int
	ts       int64
	channels map[string]*Channel // by ID
	byName   map[string]string   // name → ID
	messages []*Message
	updates  []Update
	invites  []Invite
	calls    []Call
	faults   []methodFault

	// interactivity (interactions.go)
	secret      []byte
	now         func() time.Time
	hooks       map[string]*hook // response_url path → state
	hookSeq     uint64
	actionSeq   int64
	sent        []Sent
	hookReplies []HookReply
}

// BotUser is the user ID the fake's token belongs to.
const BotUser = "UBOT0001"

// New starts a fake accepting token (which must start with "xoxb-"), with the
// channels "alerts" (ID CALERTS) and "incidents" (ID CINCIDENTS) registered.
func New(token string) *Server {
	s := &Server{
		token:    token,
		channels: map[string]*Channel{},
		byName:   map[string]string{},
		secret:   []byte(DefaultSigningSecret),
		hooks:    map[string]*hook{},
	}
	s.addChannel("CALERTS", "alerts", false)
	s.addChannel("CINCIDENTS", "incidents", false)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/"
	return s
}

// Close releases hung requests and stops the server.
func (s *Server) Close() {
	s.hang.Close()
	s.srv.Close()
}

// AddChannel registers an existing channel by name and returns its ID.
func (s *Server) AddChannel(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.TrimPrefix(name, "#")
	if id, ok := s.byName[name]; ok {
		return id
	}
	s.seq++
	id := fmt.Sprintf("C%08d", s.seq)
	s.addChannel(id, name, false)
	return id
}

func (s *Server) addChannel(id, name string, created bool) *Channel {
	c := &Channel{ID: id, Name: name, Created: created, Members: []string{BotUser}}
	s.channels[id] = c
	s.byName[name] = id
	return c
}

// Fail makes the next call of method ("" for any method) fail with f. Faults
// queue up and each is used once.
func (s *Server) Fail(method string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, methodFault{method: method, Fault: f})
}

// FailAfter lets skip calls of method ("" for any) through, then fails the
// next one with f.
func (s *Server) FailAfter(method string, skip int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, methodFault{method: method, skip: skip, Fault: f})
}

// ChannelID resolves a channel name ("#alerts" or "alerts") or ID.
func (s *Server) ChannelID(ref string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.resolve(ref)
	if c == nil {
		return "", false
	}
	return c.ID, true
}

// Messages returns the top-level messages in a channel (name or ID), oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.resolve(channel)
	var out []Message
	for _, m := range s.messages {
		if c != nil && m.Channel == c.ID && m.ThreadTS == "" {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// Replies returns the thread replies to the message ts in channel, oldest first.
func (s *Server) Replies(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.resolve(channel)
	var out []Message
	for _, m := range s.messages {
		if c != nil && m.Channel == c.ID && m.ThreadTS == ts {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// AllMessages returns every message and reply, in posting order.
func (s *Server) AllMessages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages))
	for _, m := range s.messages {
		out = append(out, copyMessage(m))
	}
	return out
}

// Updates returns the accepted chat.update calls, in order.
func (s *Server) Updates() []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Update(nil), s.updates...)
}

// CreatedChannels returns the channels made by conversations.create, in order.
func (s *Server) CreatedChannels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for i := 1; i <= s.seq; i++ {
		for _, c := range s.channels {
			if c.Created && c.ID == fmt.Sprintf("C%08d", i) {
				cc := *c
				cc.Members = append([]string(nil), c.Members...)
				out = append(out, cc)
			}
		}
	}
	return out
}

// Invites returns the accepted conversations.invite calls, in order.
func (s *Server) Invites() []Invite {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Invite, len(s.invites))
	for i, v := range s.invites {
		out[i] = Invite{Channel: v.Channel, Users: append([]string(nil), v.Users...)}
	}
	return out
}

// Calls returns every request received, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = c
		out[i].Strings = append([]string(nil), c.Strings...)
	}
	return out
}

func copyMessage(m *Message) Message {
	c := *m
	c.Blocks = append(json.RawMessage(nil), m.Blocks...)
	if m.Metadata != nil {
		md := *m.Metadata
		c.Metadata = &md
	}
	return c
}

// resolve finds a channel by ID or name; s.mu must be held.
func (s *Server) resolve(ref string) *Channel {
	if c, ok := s.channels[ref]; ok {
		return c
	}
	if id, ok := s.byName[strings.TrimPrefix(ref, "#")]; ok {
		return s.channels[id]
	}
	return nil
}

// nextTS is a message ts as Slack makes them: the posting time in epoch
// seconds with microseconds, unique per workspace here.
func (s *Server) nextTS() string {
	s.ts = max(s.ts+1, time.Now().UnixMicro())
	return fmt.Sprintf("%d.%06d", s.ts/1e6, s.ts%1e6)
}

// params is a request's arguments, from a form or a JSON body.
type params map[string]any

func (p params) str(k string) string {
	switch v := p[k].(type) {
	case string:
		return v
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func readParams(r *http.Request) (params, error) {
	p := params{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, err
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range r.Form {
			if len(v) > 0 {
				p[k] = v[0]
			}
		}
	}
	// JSON-valued arguments sent in a form arrive as strings.
	for _, k := range []string{"blocks", "attachments", "metadata"} {
		if str, ok := p[k].(string); ok && str != "" {
			var v any
			if err := json.Unmarshal([]byte(str), &v); err == nil {
				p[k] = v
			} else {
				p[k] = json.RawMessage("invalid") // flagged by block validation
			}
		}
	}
	return p, nil
}

func collectStrings(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
	case []any:
		for _, e := range v {
			collectStrings(e, out)
		}
	case map[string]any:
		for _, e := range v {
			collectStrings(e, out)
		}
	case params:
		for k, e := range v {
			if k != "token" {
				collectStrings(e, out)
			}
		}
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/actions/") { // a response_url, not a Web API method
		s.serveHook(w, r)
		return
	}
	method := strings.TrimPrefix(r.URL.Path, "/")
	call := Call{Method: method, Status: http.StatusOK}
	p, perr := readParams(r)
	if perr == nil {
		collectStrings(p, &call.Strings)
	}

	s.mu.Lock()
	f, hasFault := s.takeFault(method)
	s.mu.Unlock()
	if hasFault {
		if f.Lost {
			call.Error = s.handle(method, r, p, perr)
			s.record(call)
			if f.Hang { // performed, then never answered: a kill mid-call
				s.hang.Hang(r)
				return
			}
			fault.Drop(w)
			return
		}
		if f.Hang {
			s.record(call)
			s.hang.Hang(r)
			return
		}
		if f.Status != 0 {
			call.Status = f.Status
			s.record(call)
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			}
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, "<html><body>fault</body></html>")
			return
		}
		call.Error = f.Error
		s.record(call)
		writeJSON(w, map[string]any{"ok": false, "error": f.Error})
		return
	}

	resp, code := s.call(method, r, p, perr)
	call.Error = code
	s.record(call)
	if code != "" {
		writeJSON(w, map[string]any{"ok": false, "error": code})
		return
	}
	resp["ok"] = true
	writeJSON(w, resp)
}

// handle performs a call whose answer is then lost, returning its error code.
func (s *Server) handle(method string, r *http.Request, p params, perr error) string {
	_, code := s.call(method, r, p, perr)
	return code
}

func (s *Server) call(method string, r *http.Request, p params, perr error) (map[string]any, string) {
	if perr != nil {
		return nil, "invalid_form_data"
	}
	if code := s.auth(r, p); code != "" {
		return nil, code
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "chat.postMessage":
		return s.postMessage(p)
	case "chat.update":
		return s.update(p)
	case "conversations.create":
		return s.create(p)
	case "conversations.invite":
		return s.invite(p)
	case "conversations.join":
		return s.join(p)
	case "conversations.list":
		return s.list(p)
	case "conversations.history":
		return s.history(p)
	case "conversations.replies":
		return s.replies(p)
	}
	return nil, "unknown_method"
}

func (s *Server) takeFault(method string) (Fault, bool) {
	for i, f := range s.faults {
		if f.method == "" || f.method == method {
			if f.skip > 0 {
				s.faults[i].skip--
				return Fault{}, false
			}
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			return f.Fault, true
		}
	}
	return Fault{}, false
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) auth(r *http.Request, p params) string {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		var ok bool
		if tok, ok = strings.CutPrefix(h, "Bearer "); !ok {
			return "invalid_auth"
		}
	} else {
		tok = p.str("token")
	}
	switch {
	case tok == "":
		return "not_authed"
	case !strings.HasPrefix(tok, "xoxb-") || tok != s.token:
		return "invalid_auth"
	}
	return ""
}

// validateBlocks checks the documented Block Kit limits.
func validateBlocks(v any) (json.RawMessage, string) {
	if v == nil {
		return nil, ""
	}
	blocks, ok := v.([]any)
	if !ok {
		return nil, "invalid_blocks_format"
	}
	if len(blocks) > MaxBlocks {
		return nil, "invalid_blocks"
	}
	for _, b := range blocks {
		m, ok := b.(map[string]any)
		if !ok {
			return nil, "invalid_blocks"
		}
		if id, _ := m["block_id"].(string); len(id) > 255 {
			return nil, "invalid_blocks"
		}
		switch m["type"] {
		case "header":
			t, _ := m["text"].(map[string]any)
			txt, _ := t["text"].(string)
			if t == nil || t["type"] != "plain_text" || txt == "" || utf8.RuneCountInString(txt) > MaxHeaderText {
				return nil, "invalid_blocks"
			}
		case "section":
			t, _ := m["text"].(map[string]any)
			fields, _ := m["fields"].([]any)
			if t == nil && len(fields) == 0 {
				return nil, "invalid_blocks"
			}
			if t != nil {
				txt, _ := t["text"].(string)
				if txt == "" || utf8.RuneCountInString(txt) > MaxSectionText {
					return nil, "invalid_blocks"
				}
			}
			if len(fields) > MaxSectionFields {
				return nil, "invalid_blocks"
			}
			for _, f := range fields {
				fm, _ := f.(map[string]any)
				txt, _ := fm["text"].(string)
				if txt == "" || utf8.RuneCountInString(txt) > MaxFieldText {
					return nil, "invalid_blocks"
				}
			}
		case "context":
			els, _ := m["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				return nil, "invalid_blocks"
			}
		case "actions":
			if !validActions(m) {
				return nil, "invalid_blocks"
			}
		case "divider", "image", "rich_text", "markdown", "table":
		default:
			return nil, "invalid_blocks"
		}
	}
	raw, _ := json.Marshal(blocks)
	return raw, ""
}

// validActions checks an actions block's documented limits: 1–25 elements,
// buttons with plain_text text of 1–75 characters, an action_id of at most
// 255 unique in the block, a value of at most 2000, a style of primary or
// danger, and a well-formed confirm object.
func validActions(m map[string]any) bool {
	els, _ := m["elements"].([]any)
	if len(els) == 0 || len(els) > MaxActionElements {
		return false
	}
	seen := map[string]bool{}
	for _, e := range els {
		el, _ := e.(map[string]any)
		if el == nil {
			return false
		}
		if el["type"] != "button" {
			continue // other interactive elements: not checked here
		}
		if !plainText(el["text"], MaxButtonText) {
			return false
		}
		id, _ := el["action_id"].(string)
		val, _ := el["value"].(string)
		if len(id) > MaxActionID || (id != "" && seen[id]) || utf8.RuneCountInString(val) > MaxActionValue {
			return false
		}
		seen[id] = true
		if st, ok := el["style"]; ok && st != "primary" && st != "danger" {
			return false
		}
		if c, ok := el["confirm"]; ok {
			cm, _ := c.(map[string]any)
			if cm == nil || !plainText(cm["title"], 100) || !anyText(cm["text"], 300) ||
				!plainText(cm["confirm"], 30) || (cm["deny"] != nil && !plainText(cm["deny"], 30)) {
				return false
			}
			if st, ok := cm["style"]; ok && st != "primary" && st != "danger" {
				return false
			}
		}
	}
	return true
}

func plainText(v any, max int) bool {
	t, _ := v.(map[string]any)
	return t != nil && t["type"] == "plain_text" && anyText(v, max)
}

func anyText(v any, max int) bool {
	t, _ := v.(map[string]any)
	txt, _ := t["text"].(string)
	return t != nil && (t["type"] == "plain_text" || t["type"] == "mrkdwn") && txt != "" && utf8.RuneCountInString(txt) <= max
}

func (s *Server) postMessage(p params) (map[string]any, string) {
	c := s.resolve(p.str("channel"))
	if c == nil {
		return nil, "channel_not_found"
	}
	if c.Archived {
		return nil, "is_archived"
	}
	md, code := readMetadata(p["metadata"])
	if code != "" {
		return nil, code
	}
	text := p.str("text")
	if text == "" && p["blocks"] == nil && p["attachments"] == nil {
		return nil, "no_text"
	}
	if utf8.RuneCountInString(text) > MaxPostText {
		return nil, "msg_too_long"
	}
	blocks, code := validateBlocks(p["blocks"])
	if code != "" {
		return nil, code
	}
	thread := p.str("thread_ts")
	if thread != "" {
		parent := s.find(c.ID, thread)
		if parent == nil {
			return nil, "thread_not_found"
		}
		if parent.ThreadTS != "" {
			thread = parent.ThreadTS // Slack threads replies-to-replies under the parent
		}
	}
	m := &Message{Channel: c.ID, TS: s.nextTS(), ThreadTS: thread, Text: text, Blocks: blocks, Metadata: md}
	s.messages = append(s.messages, m)
	return map[string]any{"channel": c.ID, "ts": m.TS,
		"message": map[string]any{"type": "message", "text": text, "ts": m.TS, "thread_ts": thread}}, ""
}

func (s *Server) find(channelID, ts string) *Message {
	for _, m := range s.messages {
		if m.Channel == channelID && m.TS == ts {
			return m
		}
	}
	return nil
}

func (s *Server) update(p params) (map[string]any, string) {
	c := s.resolve(p.str("channel"))
	if c == nil {
		return nil, "channel_not_found"
	}
	if c.Archived {
		return nil, "is_archived"
	}
	ts := p.str("ts")
	m := s.find(c.ID, ts)
	if ts == "" || m == nil {
		return nil, "message_not_found"
	}
	text := p.str("text")
	if text == "" && p["blocks"] == nil && p["attachments"] == nil {
		return nil, "no_text"
	}
	if utf8.RuneCountInString(text) > MaxUpdateText {
		return nil, "msg_too_long"
	}
	blocks, code := validateBlocks(p["blocks"])
	if code != "" {
		return nil, code
	}
	if text != "" {
		m.Text = text
		if blocks == nil {
			m.Blocks = nil // text without blocks removes the old blocks
		}
	}
	if blocks != nil {
		m.Blocks = blocks
	}
	m.Edits++
	s.updates = append(s.updates, Update{Channel: c.ID, TS: ts, Text: text, Blocks: blocks})
	return map[string]any{"channel": c.ID, "ts": ts, "text": m.Text}, ""
}

func channelJSON(c *Channel) map[string]any {
	return map[string]any{"id": c.ID, "name": c.Name, "is_channel": true, "created": 1700000000,
		"creator": BotUser, "is_member": contains(c.Members, BotUser), "is_archived": c.Archived,
		"num_members": len(c.Members)}
}

func (s *Server) create(p params) (map[string]any, string) {
	name := p.str("name")
	switch {
	case name == "":
		return nil, "invalid_name_required"
	case utf8.RuneCountInString(name) > MaxChannelName:
		return nil, "invalid_name_maxlength"
	}
	punct := true
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			punct = false
		case r == '-' || r == '_':
		default:
			return nil, "invalid_name_specials"
		}
	}
	if punct {
		return nil, "invalid_name_punctuation"
	}
	if _, taken := s.byName[name]; taken {
		return nil, "name_taken"
	}
	s.seq++
	c := s.addChannel(fmt.Sprintf("C%08d", s.seq), name, true)
	return map[string]any{"channel": channelJSON(c)}, ""
}

func (s *Server) invite(p params) (map[string]any, string) {
	c := s.channels[p.str("channel")] // an ID is required here
	if c == nil {
		return nil, "channel_not_found"
	}
	if c.Archived {
		return nil, "is_archived"
	}
	raw := p.str("users")
	if raw == "" {
		return nil, "no_user"
	}
	users := strings.Split(raw, ",")
	if len(users) > MaxInviteUsers {
		return nil, "too_many_users"
	}
	var add []string
	for _, u := range users {
		u = strings.TrimSpace(u)
		if u == "" || !(u[0] == 'U' || u[0] == 'W') {
			return nil, "user_not_found"
		}
		if u == BotUser {
			return nil, "cant_invite_self"
		}
		if !contains(c.Members, u) && !contains(add, u) {
			add = append(add, u)
		}
	}
	if len(add) == 0 {
		return nil, "already_in_channel"
	}
	c.Members = append(c.Members, add...)
	s.invites = append(s.invites, Invite{Channel: c.ID, Users: add})
	return map[string]any{"channel": channelJSON(c)}, ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Archive archives a channel (name or ID), as a user archiving it would.
func (s *Server) Archive(channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.resolve(channel)
	if c == nil {
		return false
	}
	c.Archived = true
	return true
}

// DeleteMessage removes a message, as a user deleting it would.
func (s *Server) DeleteMessage(channel, ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.resolve(channel)
	if c == nil {
		return false
	}
	for i, m := range s.messages {
		if m.Channel == c.ID && m.TS == ts {
			s.messages = append(s.messages[:i:i], s.messages[i+1:]...)
			return true
		}
	}
	return false
}

// readMetadata checks chat.postMessage's metadata: an object with an
// event_type and an event_payload object.
func readMetadata(v any) (*Metadata, string) {
	if v == nil {
		return nil, ""
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "invalid_metadata_format"
	}
	typ, _ := m["event_type"].(string)
	payload, ok := m["event_payload"].(map[string]any)
	if typ == "" || !ok {
		return nil, "invalid_metadata_schema"
	}
	if b, _ := json.Marshal(m); len(b) > 8000 {
		return nil, "metadata_too_large"
	}
	return &Metadata{EventType: typ, EventPayload: payload}, ""
}

func (s *Server) join(p params) (map[string]any, string) {
	c := s.channels[p.str("channel")] // an ID is required here
	if c == nil {
		return nil, "channel_not_found"
	}
	if c.Archived {
		return nil, "is_archived"
	}
	resp := map[string]any{}
	if contains(c.Members, BotUser) {
		resp["warning"] = "already_in_channel"
	} else {
		c.Members = append(c.Members, BotUser)
	}
	resp["channel"] = channelJSON(c)
	return resp, ""
}

// page reads limit (default 100, at most max) and an opaque cursor (here
// the offset) the way Slack's paginated methods take them.
func page(p params, max int) (offset, limit int, code string) {
	limit = 100
	if v := p.str("limit"); v != "" && v != "0" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, "invalid_limit"
		}
		limit = min(n, max)
	}
	if c := p.str("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "off:"))
		if err != nil || !strings.HasPrefix(c, "off:") || n < 0 {
			return 0, 0, "invalid_cursor"
		}
		offset = n
	}
	return offset, limit, ""
}

// list answers conversations.list in creation order: public channels by
// default, archived ones unless exclude_archived.
func (s *Server) list(p params) (map[string]any, string) {
	offset, limit, code := page(p, 1000)
	if code != "" {
		return nil, code
	}
	types := p.str("types")
	if types != "" && !strings.Contains(types, "public_channel") {
		return map[string]any{"channels": []any{}, "response_metadata": map[string]any{"next_cursor": ""}}, ""
	}
	exclude := p.str("exclude_archived") == "true" || p.str("exclude_archived") == "1"
	var all []*Channel
	for _, c := range s.channels {
		if !(exclude && c.Archived) {
			all = append(all, c)
		}
	}
	sortChannels(all)
	out := []any{}
	next := ""
	for i := offset; i < len(all); i++ {
		if len(out) == limit {
			next = "off:" + strconv.Itoa(i)
			break
		}
		out = append(out, channelJSON(all[i]))
	}
	return map[string]any{"channels": out, "response_metadata": map[string]any{"next_cursor": next}}, ""
}

func sortChannels(cs []*Channel) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].ID < cs[j-1].ID; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// messageJSON is a message as the history methods return it; metadata only
// when asked for with include_all_metadata.
func messageJSON(m *Message, withMetadata bool, replies int) map[string]any {
	out := map[string]any{"type": "message", "user": BotUser, "ts": m.TS, "text": m.Text}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	} else if replies > 0 {
		out["thread_ts"], out["reply_count"] = m.TS, replies
	}
	if m.Blocks != nil {
		out["blocks"] = m.Blocks
	}
	if withMetadata && m.Metadata != nil {
		out["metadata"] = m.Metadata
	}
	return out
}

// window reads oldest, latest and inclusive (ts strings compare as numbers).
func window(p params) func(ts string) bool {
	oldest, latest := p.str("oldest"), p.str("latest")
	inclusive := p.str("inclusive") == "1" || p.str("inclusive") == "true"
	num := func(ts string) float64 { f, _ := strconv.ParseFloat(ts, 64); return f }
	return func(ts string) bool {
		t := num(ts)
		if oldest != "" && (t < num(oldest) || (!inclusive && t == num(oldest))) {
			return false
		}
		if latest != "" && (t > num(latest) || (!inclusive && t == num(latest))) {
			return false
		}
		return true
	}
}

func flag(p params, k string) bool { return p.str(k) == "1" || p.str(k) == "true" }

// readable is the channel a history method reads; Slack requires an ID and
// membership.
func (s *Server) readable(p params) (*Channel, string) {
	c := s.channels[p.str("channel")]
	if c == nil {
		return nil, "channel_not_found"
	}
	if !contains(c.Members, BotUser) {
		return nil, "not_in_channel"
	}
	return c, ""
}

// history answers conversations.history: top-level messages newest first.
func (s *Server) history(p params) (map[string]any, string) {
	c, code := s.readable(p)
	if code != "" {
		return nil, code
	}
	offset, limit, code := page(p, 999)
	if code != "" {
		return nil, code
	}
	in := window(p)
	var all []*Message
	for i := len(s.messages) - 1; i >= 0; i-- {
		if m := s.messages[i]; m.Channel == c.ID && m.ThreadTS == "" && in(m.TS) {
			all = append(all, m)
		}
	}
	out := []any{}
	next := ""
	for i := offset; i < len(all); i++ {
		if len(out) == limit {
			next = "off:" + strconv.Itoa(i)
			break
		}
		out = append(out, messageJSON(all[i], flag(p, "include_all_metadata"), len(s.thread(c.ID, all[i].TS))))
	}
	return map[string]any{"messages": out, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next}}, ""
}

func (s *Server) thread(channelID, ts string) []*Message {
	var out []*Message
	for _, m := range s.messages {
		if m.Channel == channelID && m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// replies answers conversations.replies: the parent, then its replies
// oldest first (the parent is included whatever the window, as Slack does).
func (s *Server) replies(p params) (map[string]any, string) {
	c, code := s.readable(p)
	if code != "" {
		return nil, code
	}
	parent := s.find(c.ID, p.str("ts"))
	if p.str("ts") == "" || parent == nil {
		return nil, "thread_not_found"
	}
	offset, limit, code := page(p, 1000)
	if code != "" {
		return nil, code
	}
	meta := flag(p, "include_all_metadata")
	all := []*Message{parent}
	in := window(p)
	for _, m := range s.thread(c.ID, parent.TS) {
		if in(m.TS) {
			all = append(all, m)
		}
	}
	out := []any{}
	next := ""
	for i := offset; i < len(all); i++ {
		if len(out) == limit {
			next = "off:" + strconv.Itoa(i)
			break
		}
		out = append(out, messageJSON(all[i], meta, len(all)-1))
	}
	return map[string]any{"messages": out, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next}}, ""
}
