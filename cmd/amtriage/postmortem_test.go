package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `amtriage postmortem` prints the post-mortem a running daemon serves,
// with the API's token; an unknown id, a missing token and bad usage are
// errors.
func TestPostmortemCommand(t *testing.T) {
	dir := t.TempDir()
	const token = "pm-cli-token-42"
	tokenFile := writeFile(t, filepath.Join(dir, "token"), token+"\n")
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+filepath.Join(dir, "data")+"\nauth:\n  bearer_token_file: token\n")
	d := startDaemon(t, cfg, freeAddr(t))
	d.token = token
	body := []byte(`{"version":"4","status":"firing","groupKey":"{}:{service=\"api\"}","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"Errors","service":"api"},"annotations":{"error_ratio":"62%","summary":"api is failing"},
"startsAt":"2026-11-23T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"api01"}]}`)
	if code, err := post(context.Background(), d.url("/webhook"), token, body); err != nil || code != 200 {
		t.Fatalf("post: %d %v", code, err)
	}
	var id string
	waitFor(t, 10*time.Second, "the incident", func() bool {
		incs := d.incidents()
		if len(incs) == 1 {
			id = incs[0].ID
		}
		return id != ""
	})

	code, stdout, stderr := runCLI(t, "", "postmortem", "--url", d.url(""), "--token-file", tokenFile, id)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"# Post-mortem: INCIDENT: api - api is failing since 03:00 UTC\n",
		"- **Incident:** `" + id + "`", "- **Severity:** peak Sev 1", "- **Start:** 2026-11-23 03:00:00 UTC",
		"## Timeline (UTC)\n\n- 2026-11-23 03:00:00 — detected: ",
		"## Root cause\n\nnot identified by the quick diagnosis: no Kubernetes diagnosis", "## Post-incident checklist", "- [ ] Create post-mortem ticket",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("missing %q in:\n%s", want, stdout)
		}
	}

	t.Setenv("AMTRIAGE_BEARER_TOKEN", "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--url", d.url(""), "--token-file", tokenFile, "nope-000000000000"}, 1, `HTTP 404: no incident "nope-000000000000"`},
		{[]string{"--url", d.url(""), id}, 1, "HTTP 401: missing or invalid credentials"},
		{[]string{"--url", d.url("")}, 2, "usage: amtriage postmortem --url URL"},
		{[]string{id}, 2, "usage: amtriage postmortem --url URL"},
		{[]string{"--url", "ftp://x", id}, 2, "usage: amtriage postmortem --url URL"},
		{[]string{"--url", d.url(""), "--token-file", filepath.Join(dir, "missing"), id}, 1, "reading the token file"},
	} {
		code, _, stderr := runCLI(t, "", append([]string{"postmortem"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("postmortem %q: exit %d %q, want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	t.Setenv("AMTRIAGE_BEARER_TOKEN", token)
	if code, stdout, stderr := runCLI(t, "", "postmortem", "--url", d.url("/"), id); code != 0 || !strings.HasPrefix(stdout, "# Post-mortem:") {
		t.Errorf("token from $AMTRIAGE_BEARER_TOKEN: exit %d %s", code, stderr)
	}
}
