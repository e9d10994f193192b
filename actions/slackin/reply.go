package slackin

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
)

// MaxReplyText bounds an ephemeral reply; a longer text is cut (an error
// message from a failed action can be long, and the user needs its start).
const MaxReplyText = 3000

// ReplyOption adjusts EphemeralReply.
type ReplyOption func(*replyConfig)

type replyConfig struct {
	origins []*url.URL
}

// AllowOrigin also accepts response URLs on origin (scheme://host:port), for
// tests against the Slack fake. Production leaves it out.
func AllowOrigin(origin string) ReplyOption {
	return func(c *replyConfig) {
		if u, err := url.Parse(origin); err == nil && u.Host != "" {
			c.origins = append(c.origins, u)
		}
	}
}

// EphemeralReply posts text to an interaction's response_url as a message
// only the clicking user sees, leaving the original message as it is. The
// URL must be https://hooks.slack.com/… (unless AllowOrigin says otherwise):
// response_url came in a signed payload, but checking it keeps a bug or a
// compromised secret from turning amtriage into a request forwarder.
// Redirects are not followed, for the same reason.
func EphemeralReply(ctx context.Context, client *http.Client, responseURL, text string, opts ...ReplyOption) error {
	var cfg replyConfig
	for _, o := range opts {
		o(&cfg)
	}
	u, err := url.Parse(responseURL)
	if err != nil {
		return fmt.Errorf("slack response_url: %w", err)
	}
	if !allowedResponseURL(u, cfg.origins) {
		return fmt.Errorf("slack response_url %s://%s is not https://hooks.slack.com", u.Scheme, u.Host)
	}
	body, err := json.Marshal(map[string]any{
		"response_type":    "ephemeral",
		"replace_original": false,
		"text":             clip(text, MaxReplyText),
	})
	if err != nil {
		return fmt.Errorf("encoding ephemeral reply: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("ephemeral reply: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		// Not the URL: it lets anyone post to the channel for 30 minutes,
		// and this error is logged.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("ephemeral reply to %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("ephemeral reply: HTTP %d: %.200s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	// Slack answers {"ok":true} (older hooks: "ok"); an ok:false with 200 is a refusal.
	var env struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil && env.OK != nil && !*env.OK {
		return fmt.Errorf("ephemeral reply: slack error %q", env.Error)
	}
	return nil
}

func allowedResponseURL(u *url.URL, origins []*url.URL) bool {
	if u.User != nil || u.Opaque != "" {
		return false
	}
	for _, o := range origins {
		if u.Scheme == o.Scheme && u.Host == o.Host {
			return true
		}
	}
	// Host, not Hostname: an explicit port (even :443) is not Slack's URL.
	return u.Scheme == "https" && u.Host == "hooks.slack.com" && strings.HasPrefix(u.Path, "/")
}
