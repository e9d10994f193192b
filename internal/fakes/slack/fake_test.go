package slack

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const tok = "xoxb-fake-token"

func call(t *testing.T, s *Server, method string, form url.Values, bearer string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+method, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, req)
}

func callJSON(t *testing.T, s *Server, method string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+method, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+tok)
	return do(t, req)
}

func do(t *testing.T, req *http.Request) map[string]any {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantErr(t *testing.T, got map[string]any, code string) {
	t.Helper()
	if got["ok"] != false || got["error"] != code {
		t.Fatalf("got %v, want error %s", got, code)
	}
}

func TestAuth(t *testing.T) {
	s := New(tok)
	defer s.Close()
	f := url.Values{"channel": {"#alerts"}, "text": {"hi"}}
	wantErr(t, call(t, s, "chat.postMessage", f, ""), "not_authed")
	wantErr(t, call(t, s, "chat.postMessage", f, "xoxb-other"), "invalid_auth")
	f.Set("token", tok)
	if r := call(t, s, "chat.postMessage", f, ""); r["ok"] != true || r["channel"] != "CALERTS" {
		t.Fatalf("token form field: %v", r)
	}
}

func TestPostUpdateThread(t *testing.T) {
	s := New(tok)
	defer s.Close()
	wantErr(t, call(t, s, "chat.postMessage", url.Values{"channel": {"#nope"}, "text": {"x"}}, tok), "channel_not_found")
	wantErr(t, call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}}, tok), "no_text")
	r := callJSON(t, s, "chat.postMessage", map[string]any{"channel": "CINCIDENTS", "text": "parent",
		"blocks": []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "hello"}}}})
	ts, _ := r["ts"].(string)
	if r["ok"] != true || ts == "" {
		t.Fatalf("%v", r)
	}
	if r := call(t, s, "chat.postMessage", url.Values{"channel": {"#incidents"}, "text": {"reply"}, "thread_ts": {ts}}, tok); r["ok"] != true {
		t.Fatalf("%v", r)
	}
	wantErr(t, call(t, s, "chat.update", url.Values{"channel": {"CINCIDENTS"}, "ts": {"1.2"}, "text": {"x"}}, tok), "message_not_found")
	wantErr(t, call(t, s, "chat.update", url.Values{"channel": {"CINCIDENTS"}, "ts": {ts}, "text": {strings.Repeat("x", 4001)}}, tok), "msg_too_long")
	if r := call(t, s, "chat.update", url.Values{"channel": {"CINCIDENTS"}, "ts": {ts}, "text": {"edited"}}, tok); r["ok"] != true {
		t.Fatalf("%v", r)
	}
	msgs := s.Messages("#incidents")
	if len(msgs) != 1 || msgs[0].Text != "edited" || msgs[0].Edits != 1 || msgs[0].Blocks != nil {
		t.Fatalf("%+v", msgs)
	}
	if rep := s.Replies("CINCIDENTS", ts); len(rep) != 1 || rep[0].Text != "reply" {
		t.Fatalf("%+v", rep)
	}
	if len(s.Updates()) != 1 {
		t.Fatal("updates")
	}
}

func TestBlockLimits(t *testing.T) {
	s := New(tok)
	defer s.Close()
	sec := func(n int) map[string]any {
		return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": strings.Repeat("a", n)}}
	}
	hdr := func(n int) map[string]any {
		return map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": strings.Repeat("a", n)}}
	}
	many := make([]any, 51)
	for i := range many {
		many[i] = sec(1)
	}
	for name, blocks := range map[string][]any{"51 blocks": many, "section 3001": {sec(3001)}, "header 151": {hdr(151)}, "unknown": {map[string]any{"type": "bogus"}}} {
		b, _ := json.Marshal(blocks)
		r := call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "blocks": {string(b)}}, tok)
		if r["error"] != "invalid_blocks" {
			t.Errorf("%s: %v", name, r)
		}
	}
	b, _ := json.Marshal([]any{hdr(150), sec(3000)})
	if r := call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "blocks": {string(b)}}, tok); r["ok"] != true {
		t.Fatalf("at the limits: %v", r)
	}
}

func TestConversations(t *testing.T) {
	s := New(tok)
	defer s.Close()
	for name, code := range map[string]string{"": "invalid_name_required", "Upper": "invalid_name_specials",
		"a b": "invalid_name_specials", "---": "invalid_name_punctuation", strings.Repeat("a", 81): "invalid_name_maxlength", "alerts": "name_taken"} {
		wantErr(t, call(t, s, "conversations.create", url.Values{"name": {name}}, tok), code)
	}
	r := call(t, s, "conversations.create", url.Values{"name": {"incident-20260112-api"}}, tok)
	ch, _ := r["channel"].(map[string]any)
	id, _ := ch["id"].(string)
	if r["ok"] != true || id == "" {
		t.Fatalf("%v", r)
	}
	wantErr(t, call(t, s, "conversations.create", url.Values{"name": {"incident-20260112-api"}}, tok), "name_taken")
	users := make([]string, 101)
	for i := range users {
		users[i] = "U" + strings.Repeat("1", i+1)
	}
	wantErr(t, call(t, s, "conversations.invite", url.Values{"channel": {id}, "users": {strings.Join(users, ",")}}, tok), "too_many_users")
	wantErr(t, call(t, s, "conversations.invite", url.Values{"channel": {"CNOPE"}, "users": {"U1"}}, tok), "channel_not_found")
	if r := call(t, s, "conversations.invite", url.Values{"channel": {id}, "users": {"U1,U2"}}, tok); r["ok"] != true {
		t.Fatalf("%v", r)
	}
	wantErr(t, call(t, s, "conversations.invite", url.Values{"channel": {id}, "users": {"U1"}}, tok), "already_in_channel")
	if c := s.CreatedChannels(); len(c) != 1 || c[0].Name != "incident-20260112-api" || len(c[0].Members) != 3 {
		t.Fatalf("%+v", c)
	}
	if inv := s.Invites(); len(inv) != 1 || len(inv[0].Users) != 2 {
		t.Fatalf("%+v", inv)
	}
}

func TestFaults(t *testing.T) {
	s := New(tok)
	defer s.Close()
	s.Fail("chat.postMessage", Fault{Status: 429, RetryAfter: 3})
	s.Fail("", Fault{Status: 500})
	s.Fail("chat.update", Fault{Hang: true})
	post := func() *http.Response {
		resp, err := http.PostForm(s.URL+"chat.postMessage", url.Values{"token": {tok}, "channel": {"#alerts"}, "text": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(); r.StatusCode != 429 || r.Header.Get("Retry-After") != "3" {
		t.Fatalf("%d %v", r.StatusCode, r.Header)
	}
	if r := post(); r.StatusCode != 500 {
		t.Fatalf("%d", r.StatusCode)
	}
	if r := post(); r.StatusCode != 200 {
		t.Fatalf("%d", r.StatusCode)
	}
	c := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := c.PostForm(s.URL+"chat.update", url.Values{"token": {tok}}); err == nil {
		t.Fatal("hang answered")
	}
	// Concurrent use is safe.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post()
			_ = s.Messages("#alerts")
			_ = s.Calls()
		}()
	}
	wg.Wait()
	if n := len(s.Messages("#alerts")); n != 9 {
		t.Fatalf("%d messages", n)
	}
}

// Metadata posted with a message comes back from the history methods only
// with include_all_metadata, as Slack documents.
func TestMetadataAndHistory(t *testing.T) {
	s := New(tok)
	defer s.Close()
	md := `{"event_type":"amtriage_incident","event_payload":{"incident":"i1","key":"message/1"}}`
	wantErr(t, call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "text": {"x"}, "metadata": {`{"event_type":"x"}`}}, tok), "invalid_metadata_schema")
	wantErr(t, call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "text": {"x"}, "metadata": {`nope`}}, tok), "invalid_metadata_format")
	r := call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "text": {"parent"}, "metadata": {md}}, tok)
	parent, _ := r["ts"].(string)
	call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "text": {"reply"}, "thread_ts": {parent}, "metadata": {md}}, tok)
	call(t, s, "chat.postMessage", url.Values{"channel": {"#alerts"}, "text": {"later"}}, tok)

	wantErr(t, call(t, s, "conversations.history", url.Values{"channel": {"#alerts"}}, tok), "channel_not_found") // an ID is required
	h := call(t, s, "conversations.history", url.Values{"channel": {"CALERTS"}}, tok)
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["text"] != "later" {
		t.Fatalf("history = %v", h)
	}
	if _, ok := msgs[1].(map[string]any)["metadata"]; ok {
		t.Fatal("metadata returned without include_all_metadata")
	}
	h = call(t, s, "conversations.history", url.Values{"channel": {"CALERTS"}, "include_all_metadata": {"1"}, "limit": {"1"}}, tok)
	msgs, _ = h["messages"].([]any)
	next, _ := h["response_metadata"].(map[string]any)["next_cursor"].(string)
	if len(msgs) != 1 || h["has_more"] != true || next == "" {
		t.Fatalf("first page = %v", h)
	}
	h = call(t, s, "conversations.history", url.Values{"channel": {"CALERTS"}, "include_all_metadata": {"1"}, "cursor": {next}}, tok)
	msgs, _ = h["messages"].([]any)
	m, _ := msgs[0].(map[string]any)
	meta, _ := m["metadata"].(map[string]any)
	if len(msgs) != 1 || meta["event_type"] != "amtriage_incident" || m["reply_count"] != float64(1) {
		t.Fatalf("second page = %v", h)
	}
	h = call(t, s, "conversations.history", url.Values{"channel": {"CALERTS"}, "oldest": {parent}}, tok)
	if msgs, _ := h["messages"].([]any); len(msgs) != 1 {
		t.Fatalf("oldest is exclusive without inclusive: %v", h)
	}

	wantErr(t, call(t, s, "conversations.replies", url.Values{"channel": {"CALERTS"}, "ts": {"1.000001"}}, tok), "thread_not_found")
	rep := call(t, s, "conversations.replies", url.Values{"channel": {"CALERTS"}, "ts": {parent}, "include_all_metadata": {"1"}}, tok)
	msgs, _ = rep["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["text"] != "reply" || msgs[1].(map[string]any)["metadata"] == nil {
		t.Fatalf("replies = %v", rep)
	}
	if got := s.Messages("#alerts"); got[0].Metadata == nil || got[0].Metadata.EventPayload["key"] != "message/1" {
		t.Fatalf("recorded metadata = %+v", got[0].Metadata)
	}
}

func TestListJoinArchive(t *testing.T) {
	s := New(tok)
	defer s.Close()
	s.AddChannel("team-api")
	s.Archive("#team-api")
	l := call(t, s, "conversations.list", url.Values{"limit": {"2"}}, tok)
	chans, _ := l["channels"].([]any)
	next, _ := l["response_metadata"].(map[string]any)["next_cursor"].(string)
	if len(chans) != 2 || next == "" {
		t.Fatalf("first page = %v", l)
	}
	l = call(t, s, "conversations.list", url.Values{"cursor": {next}}, tok)
	second, _ := l["channels"].([]any)
	if len(second) != 1 {
		t.Fatalf("second page = %v", l)
	}
	archived := 0
	for _, c := range append(chans, second...) {
		if c := c.(map[string]any); c["is_archived"] == true && c["name"] == "team-api" {
			archived++
		}
	}
	if archived != 1 {
		t.Fatalf("team-api not listed as archived: %v %v", chans, second)
	}
	l = call(t, s, "conversations.list", url.Values{"exclude_archived": {"true"}}, tok)
	if chans, _ := l["channels"].([]any); len(chans) != 2 {
		t.Fatalf("exclude_archived = %v", l)
	}
	id, _ := s.ChannelID("team-api")
	wantErr(t, call(t, s, "conversations.join", url.Values{"channel": {id}}, tok), "is_archived")
	wantErr(t, call(t, s, "chat.postMessage", url.Values{"channel": {id}, "text": {"x"}}, tok), "is_archived")
	if r := call(t, s, "conversations.join", url.Values{"channel": {"CALERTS"}}, tok); r["ok"] != true || r["warning"] != "already_in_channel" {
		t.Fatalf("join = %v", r)
	}
}

// A lost answer: the call is performed, the connection closed unanswered.
func TestLostFault(t *testing.T) {
	s := New(tok)
	defer s.Close()
	s.FailAfter("chat.postMessage", 1, Fault{Lost: true})
	post := func() error {
		resp, err := http.PostForm(s.URL+"chat.postMessage", url.Values{"token": {tok}, "channel": {"#alerts"}, "text": {"x"}})
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := post(); err != nil {
		t.Fatal(err)
	}
	if err := post(); err == nil {
		t.Fatal("lost answer arrived")
	}
	if n := len(s.Messages("#alerts")); n != 2 {
		t.Fatalf("%d messages, want both posts performed", n)
	}
}
