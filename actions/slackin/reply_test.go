package slackin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	fake "github.com/amtriage/amtriage/internal/fakes/slack"
)

func TestEphemeralReply(t *testing.T) {
	ctx := context.Background()
	f := fake.New("xoxb-t")
	defer f.Close()
	hook := f.NewResponseURL()
	allow := AllowOrigin(f.URL)

	if err := EphemeralReply(ctx, nil, hook, "Rollback refused: you are not in actions.rollback.allowed_users.", allow); err != nil {
		t.Fatalf("EphemeralReply: %v", err)
	}
	rs := f.HookReplies()
	if len(rs) != 1 {
		t.Fatalf("%d replies recorded, want 1", len(rs))
	}
	r := rs[0]
	if r.ResponseType != "ephemeral" || r.ReplaceOriginal == nil || *r.ReplaceOriginal ||
		r.Text != "Rollback refused: you are not in actions.rollback.allowed_users." {
		t.Errorf("reply %+v", r)
	}

	if err := EphemeralReply(ctx, nil, hook, strings.Repeat("é", MaxReplyText+10), allow); err != nil {
		t.Fatal(err)
	}
	if got := f.HookReplies()[1].Text; utf8.RuneCountInString(got) != MaxReplyText || !strings.HasSuffix(got, "…") {
		t.Errorf("long reply not cut to %d characters: %d", MaxReplyText, utf8.RuneCountInString(got))
	}
	// Slack's 5 uses: the sixth is refused, and EphemeralReply says so.
	for i := 0; i < 3; i++ {
		if err := EphemeralReply(ctx, nil, hook, "x", allow); err != nil {
			t.Fatal(err)
		}
	}
	if err := EphemeralReply(ctx, nil, hook, "x", allow); err == nil || !strings.Contains(err.Error(), "used_url") {
		t.Errorf("sixth use: %v, want used_url", err)
	}
	if err := EphemeralReply(ctx, nil, strings.TrimSuffix(f.URL, "/")+"/actions/T0/1/unknown", "x", allow); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown hook: %v, want HTTP 404", err)
	}
}

func TestEphemeralReplyURLCheck(t *testing.T) {
	hit := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit++ }))
	defer srv.Close()
	tests := []struct {
		url   string
		allow []ReplyOption
		ok    bool
	}{
		{srv.URL + "/actions/T/1/x", nil, false}, // the fake's address without the override
		{srv.URL + "/actions/T/1/x", []ReplyOption{AllowOrigin(srv.URL)}, true},
		{srv.URL + "/actions/T/1/x", []ReplyOption{AllowOrigin("http://127.0.0.1:1")}, false},
		{"http://hooks.slack.com/actions/T/1/x", nil, false},
		{"https://hooks.slack.com.evil.example/actions/T/1/x", nil, false},
		{"https://evil.example/?u=https://hooks.slack.com/", nil, false},
		{"https://user@hooks.slack.com/actions/T/1/x", nil, false},
		{"https://hooks.slack.com:8443/actions/T/1/x", nil, false},
		{"ftp://hooks.slack.com/actions/T/1/x", nil, false},
		{"", nil, false},
		{"::", nil, false},
	}
	for _, tt := range tests {
		before := hit
		err := EphemeralReply(context.Background(), srv.Client(), tt.url, "x", tt.allow...)
		if (err == nil) != tt.ok {
			t.Errorf("%q: %v, want ok %v", tt.url, err, tt.ok)
		}
		if !tt.ok && hit != before {
			t.Errorf("%q: refused but requested", tt.url)
		}
	}
	if !allowedResponseURL(mustParse(t, "https://hooks.slack.com/actions/T0123/6163219785/oVMQ"), nil) {
		t.Error("Slack's own response_url refused")
	}
}

func TestEphemeralReplyRedirectNotFollowed(t *testing.T) {
	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed = true }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	err := EphemeralReply(context.Background(), srv.Client(), srv.URL+"/actions/x", "x", AllowOrigin(srv.URL))
	if err == nil || followed {
		t.Errorf("redirect: err %v, followed %v; want an error and no request to the target", err, followed)
	}
}

func TestEphemeralReplyOKFalse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":false,"error":"no_text"}`))
	}))
	defer srv.Close()
	if err := EphemeralReply(context.Background(), srv.Client(), srv.URL+"/a", "x", AllowOrigin(srv.URL)); err == nil || !strings.Contains(err.Error(), "no_text") {
		t.Errorf("ok:false with 200: %v, want the error", err)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A failed reply does not carry the response_url into its error (it is
// logged, and the URL lets anyone post to the channel for 30 minutes).
func TestEphemeralReplyErrorHidesTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // connection refused from here on
	secretPath := "/actions/T0001/1234567890/s3cr3tT0k3n"
	err := EphemeralReply(context.Background(), nil, base+secretPath, "hi", AllowOrigin(base))
	if err == nil || strings.Contains(err.Error(), "s3cr3tT0k3n") {
		t.Errorf("error %v: want one without the URL's path", err)
	}
}
