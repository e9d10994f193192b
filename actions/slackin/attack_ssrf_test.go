package slackin

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

type recordingTransport struct{ hosts []string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Host)
	return nil, errors.New("blocked by test")
}

// ATTACK (held): response_urls that are not Slack's never get a request.
func TestAttackResponseURLNotSlacksNeverCalled(t *testing.T) {
	for _, u := range []string{
		"http://hooks.slack.com/actions/x", "https://hooks.slack.com:8443/actions/x", "https://hooks.slack.com.evil.example/x",
		"https://hooks.slack.com@evil.example/x", "https://evil.example/?hooks.slack.com", "https://HOOKS.SLACK.COM/x",
		"https://hooks.slack.com%2eevil.example/x", "https://169.254.169.254/latest/meta-data", "file:///etc/passwd",
		"https://hooks.slack.com\\@evil.example/", "//hooks.slack.com/x", "https:hooks.slack.com/x", "https://[::1]/x",
		"https://hooks.slack.com./x", "https://hooks%2Eslack.com/x",
	} {
		rt := &recordingTransport{}
		err := EphemeralReply(context.Background(), &http.Client{Transport: rt}, u, "x")
		if len(rt.hosts) != 0 {
			t.Errorf("%q: a request went to %v (err %v)", u, rt.hosts, err)
		}
	}
}
