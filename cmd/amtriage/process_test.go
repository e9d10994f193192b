package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/testutil"
)

// amtriageBin is the daemon built once for the tests that run it as a real
// process (signals, crashes, a real Alertmanager delivering to it).
var amtriageBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amtriage-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	amtriageBin = filepath.Join(dir, "amtriage")
	out, err := exec.Command("go", "build", "-o", amtriageBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building amtriage: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is an amtriage process under test.
type daemon struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	stdout *testutil.SyncBuffer // incident events (log notifier)
	stderr *testutil.SyncBuffer // daemon logs
	done   chan error
	token  string // bearer token for the API, when the config asks for one
}

// get fetches an API path with the daemon's credentials.
func (d *daemon) get(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, d.url(path), nil)
	if err != nil {
		return nil, err
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	return httpClient.Do(req)
}

func freeAddr(t testing.TB) string { return testutil.FreeAddr(t) }

// startDaemon runs `amtriage serve --config cfgPath --listen addr` and waits
// until /readyz answers.
func startDaemon(t testing.TB, cfgPath, addr string) *daemon {
	t.Helper()
	d := &daemon{t: t, addr: addr, stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(amtriageBin, "serve", "--config", cfgPath, "--listen", addr)
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start amtriage: %v", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("amtriage stderr:\n%s", tail(d.stderr.String(), 8000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := httpClient.Get(d.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("amtriage exited before ready: %v\n%s", err, d.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("amtriage not ready after 15s\n%s", d.stderr.String())
	return nil
}

func (d *daemon) url(path string) string { return "http://" + d.addr + path }

// kill sends sig and waits for the process to exit.
func (d *daemon) kill(sig syscall.Signal) error {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case err := <-d.done:
		return err
	case <-time.After(30 * time.Second):
		d.t.Fatalf("amtriage did not exit within 30s of %v", sig)
		return nil
	}
}

// incidentJSON is the part of /api/incidents the tests compare.
type incidentJSON struct {
	ID           string   `json:"id"`
	Service      string   `json:"service"`
	Title        string   `json:"title"`
	Severity     int      `json:"severity"`
	Rule         int      `json:"rule"`
	Reasons      []string `json:"reasons"`
	Started      string   `json:"started"`
	AlertsFiring int      `json:"alerts_firing"`
	Alerts       []struct {
		Fingerprint string `json:"fingerprint"`
		Alertname   string `json:"alertname"`
		Status      string `json:"status"`
		StartsAt    string `json:"startsAt"`
		Severity    int    `json:"severity"`
		Rule        int    `json:"rule"`
	} `json:"alerts"`
}

func (d *daemon) incidents() []incidentJSON {
	d.t.Helper()
	resp, err := d.get("/api/incidents")
	if err != nil {
		d.t.Fatalf("GET /api/incidents: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Incidents []incidentJSON `json:"incidents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		d.t.Fatalf("decode /api/incidents: %v", err)
	}
	return body.Incidents
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitUntil(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// waitUntil polls cond until it holds or the deadline passes, and says
// which, for a caller that reports more than waitFor does.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(25 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func post(ctx context.Context, url, token string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// eventLines returns the log notifier's lines with the given msg.
func eventLines(t *testing.T, stdout, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(stdout, "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log notifier line is not JSON: %q", line)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// httpClient keeps enough idle connections for the tests' 16 workers.
var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
