package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestClassifySPECExamples feeds the SPEC's example table, one alert per row
// (signals as annotations, `severity: warning` label), through the CLI.
func TestClassifySPECExamples(t *testing.T) {
	want := []struct{ severity, rule int }{
		{1, 1}, {1, 2}, {2, 3}, {2, 3}, {2, 4}, {3, 5}, {3, 6}, {2, 8}, {2, 9}, {3, 10}, {4, 7}, {4, 12}, {3, 13},
	}
	code, stdout, stderr := runCLI(t, "", "classify", "testdata/spec-examples.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []classification
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var c classification
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, c)
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), stdout)
	}
	for i, w := range want {
		c := got[i]
		if int(c.Severity) != w.severity || c.Rule != w.rule {
			t.Errorf("row %d (%s): Sev %d rule %d, want Sev %d rule %d; reasons %q", i+1, c.Alertname, c.Severity, c.Rule, w.severity, w.rule, c.Reasons)
		}
		if c.Fingerprint == "" || c.Service == "" || c.Status != "firing" || len(c.Reasons) == 0 {
			t.Errorf("row %d: missing fields: %+v", i+1, c)
		}
	}
}

func TestClassifyReadsStdinAndUsesProfiles(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "c.yml"), `
services:
  - name: storefront
    match: ['service="checkout"']
    latency_baseline: 500ms
`)
	payload, err := os.ReadFile("../../webhook/testdata/payloads/02-firing-single-warning.json")
	if err != nil {
		t.Fatal(err)
	}
	// The profile renames the service; the alert has no signal annotations,
	// so the baseline alone does not measure anything: rule 13 from "warning".
	code, stdout, stderr := runCLI(t, string(payload), "classify", "--config", cfg, "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var c classification
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatal(err)
	}
	if c.Service != "storefront" || c.Severity != 3 || c.Rule != 13 || c.Fingerprint != "fb66a0468a84294f" {
		t.Errorf("got %+v", c)
	}
}

func TestClassifyRejectsBadPayload(t *testing.T) {
	code, stdout, stderr := runCLI(t, `{"version":"3","alerts":[]}`, "classify", "-")
	if code != 1 || stdout != "" || !strings.Contains(stderr, `unsupported version "3"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.yml"), "listen: 127.0.0.1:9999\n")
	bad := writeFile(t, filepath.Join(dir, "bad.yml"), `listen: nowhere
stor:
  path: ./x
services:
  - name: api
    match: ['service=~"unclosed']
  - name: api
    match: ['service="b"']
`)
	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    []string
		wantErrOut []string
	}{
		{"valid", []string{"check-config", good}, 0, []string{"ok (0 service profiles)"}, nil},
		{"the shipped example", []string{"check-config", "../../deploy/amtriage.yml"}, 0, []string{"ok (4 service profiles)"}, nil},
		{"every error listed", []string{"check-config", bad}, 1, nil, []string{
			"4 error(s)", `line 1: listen`, `line 2: unknown key "stor"`, "line 6: services[0].match[0]", `duplicate service name "api"`}},
		{"missing file", []string{"check-config", filepath.Join(dir, "nope.yml")}, 1, nil, []string{"nope.yml"}},
		{"usage", []string{"check-config"}, 2, nil, []string{"usage: amtriage check-config FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout %q lacks %q", stdout, w)
				}
			}
			for _, w := range tt.wantErrOut {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// Every configured source is used now: check-config has nothing to warn about.
func TestCheckConfigAcceptsAllSources(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pd"), "R0123456789abcdef0123456789abcde\n")
	cfg := writeFile(t, filepath.Join(dir, "c.yml"), "pagerduty:\n  routing_key_file: pd\nprometheus:\n  url: http://127.0.0.1:9090\nkubernetes:\n  enabled: true\n")
	code, stdout, stderr := runCLI(t, "", "check-config", cfg)
	if code != 0 || strings.Contains(stdout, "warning") || !strings.Contains(stdout, ": ok") {
		t.Errorf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "R0123456789abcdef") {
		t.Error("the routing key leaked into the output")
	}
}

func TestVersionAndUsage(t *testing.T) {
	if code, stdout, _ := runCLI(t, "", "version"); code != 0 || !strings.HasPrefix(stdout, "amtriage ") {
		t.Errorf("version: exit %d %q", code, stdout)
	}
	if code, _, stderr := runCLI(t, "", "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d %q", code, stderr)
	}
	if code, _, _ := runCLI(t, ""); code != 2 {
		t.Errorf("no args: exit %d, want 2", code)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9095": true, "[::1]:9095": true, "localhost:9095": true,
		"0.0.0.0:9095": false, ":9095": false, "10.0.0.5:9095": false, "nonsense": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
