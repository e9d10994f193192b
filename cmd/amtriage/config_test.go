package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// serveOnce runs `serve` in-process with an ended context: a config serve
// accepts starts and stops at once (exit 0); one it refuses exits 1.
func serveOnce(t *testing.T, cfgPath string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, []string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0"}, strings.NewReader(""), &out, &errOut)
	return code, errOut.String()
}

// A receiver that is configured but cannot work is an error, and
// check-config and serve agree on it: one validation, every error at once.
func TestReceiverConfiguredButUnusable(t *testing.T) {
	for _, k := range []string{"AMTRIAGE_PAGERDUTY_ROUTING_KEY", "AMTRIAGE_SLACK_TOKEN", "AMTRIAGE_GRAFANA_TOKEN", "AMTRIAGE_BEARER_TOKEN"} {
		t.Setenv(k, "")
	}
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // every one must be in the errors
	}{
		{"pagerduty url without any routing key", "pagerduty:\n  url: https://events.pagerduty.com\n", nil,
			[]string{"pagerduty.routing_key_file", "no routing key"}},
		{"grafana url without a token", "grafana:\n  url: http://grafana:3000\n", nil,
			[]string{"grafana.token_file", "no token"}},
		{"slack token from the environment without a channel", "slack:\n  api_url: https://slack.com/api/\n",
			map[string]string{"AMTRIAGE_SLACK_TOKEN": "xoxb-1"}, []string{"slack.channel"}},
		{"slack channel without a token", "slack:\n  channel: '#alerts'\n", nil,
			[]string{"slack.token_file", "no token"}},
		{"all at once, with a missing secret file", "pagerduty:\n  url: https://events.pagerduty.com\ngrafana:\n  url: http://grafana:3000\n  token_file: missing-token\nslack:\n  channel: '#alerts'\n", nil,
			[]string{"3 error(s)", "pagerduty.routing_key_file", "line 7: grafana.token_file: reading secret file", "slack.token_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			cfg := writeFile(t, filepath.Join(dir, "c.yml"), "store:\n  path: "+filepath.Join(dir, "data")+"\n"+tt.yaml)
			code, stdout, stderr := runCLI(t, "", "check-config", cfg)
			if code != 1 {
				t.Fatalf("check-config exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("check-config stderr %q lacks %q", stderr, w)
				}
			}
			scode, serr := serveOnce(t, cfg)
			if scode != 1 {
				t.Fatalf("serve exit %d, want 1 (check-config refused it)\nstderr: %s", scode, serr)
			}
			for _, w := range tt.want {
				if !strings.Contains(serr, w) {
					t.Errorf("serve stderr %q lacks %q", serr, w)
				}
			}
		})
	}
}

// What serve accepts, check-config accepts, and the other way round.
func TestCheckConfigAndServeAgreeOnUsableReceivers(t *testing.T) {
	for _, k := range []string{"AMTRIAGE_PAGERDUTY_ROUTING_KEY", "AMTRIAGE_SLACK_TOKEN", "AMTRIAGE_GRAFANA_TOKEN", "AMTRIAGE_BEARER_TOKEN"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"pd": "R0123456789abcdef0123456789abcde\n", "svc-pd": "Rsvc456789abcdef0123456789abcde\n", "slack": "xoxb-1\n", "grafana": "glsa_1\n"} {
		writeFile(t, filepath.Join(dir, name), content)
	}
	for name, yaml := range map[string]string{
		"global key":        "pagerduty:\n  url: https://events.pagerduty.com\n  routing_key_file: pd\n",
		"per-service key":   "pagerduty:\n  url: https://events.pagerduty.com\nservices:\n  - name: api\n    match: ['service=\"api\"']\n    routing:\n      pagerduty_routing_key_file: svc-pd\n",
		"slack and grafana": "slack:\n  token_file: slack\n  incidents_channel: '#inc'\ngrafana:\n  url: http://grafana:3000\n  token_file: grafana\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeFile(t, filepath.Join(dir, "c.yml"), "store:\n  path: "+filepath.Join(t.TempDir(), "data")+"\n"+yaml)
			if code, stdout, stderr := runCLI(t, "", "check-config", cfg); code != 0 {
				t.Fatalf("check-config exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if code, stderr := serveOnce(t, cfg); code != 0 {
				t.Fatalf("serve exit %d\nstderr: %s", code, stderr)
			}
		})
	}
}

// What serve could not use at start is refused by check-config too: a store
// path that is a file (or under one), a kubeconfig that does not exist
// (serve would start with the diagnosis silently off).
func TestCheckConfigRefusesWhatServeCannotOpen(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "a-file"), "x")
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"store path is a file", "store:\n  path: " + file + "\n", "store.path: " + file + " is not a directory"},
		{"store path under a file", "store:\n  path: " + filepath.Join(file, "data") + "\n", "store.path: " + file + " is not a directory"},
		{"kubeconfig missing", "store:\n  path: " + filepath.Join(dir, "data") + "\nkubernetes:\n  enabled: true\n  kubeconfig: " + filepath.Join(dir, "nope") + "\n", "kubernetes.kubeconfig"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, filepath.Join(t.TempDir(), "c.yml"), tt.yaml)
			code, _, stderr := runCLI(t, "", "check-config", cfg)
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("check-config exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
		})
	}
}
