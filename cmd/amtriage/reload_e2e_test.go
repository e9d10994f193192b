package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postAuthed posts one firing alert for service with an error ratio.
func postAuthed(t *testing.T, d *daemon, service, ratio string) {
	t.Helper()
	body := []byte(`{"version":"4","status":"firing","groupKey":"{}:{service=\"` + service + `\"}","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"Errors","service":"` + service + `"},"annotations":{"error_ratio":"` + ratio + `"},
"startsAt":"2026-11-23T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"` + service + `01"}]}`)
	if code, err := post(context.Background(), d.url("/webhook"), d.token, body); err != nil || code != 200 {
		t.Fatalf("post: %d %v", code, err)
	}
}

// metricValue scrapes one unlabelled series from /metrics; -1 if absent.
func metricValue(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	resp, err := d.get("/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	return -1
}

func (d *daemon) severityOf(service string) int {
	for _, inc := range d.incidents() {
		if inc.Service == service {
			return inc.Severity
		}
	}
	return 0
}

// SIGHUP reloads the file like Prometheus: a changed profile applies to the
// next alerts, the open incidents stay and the process lives on; an invalid
// file is refused and the old configuration stays. POST /-/reload does the
// same behind the auth.
func TestSIGHUPReloadsTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "reload-token\n")
	head := "store:\n  path: " + filepath.Join(dir, "data") + "\nauth:\n  bearer_token_file: token\nservices:\n  - name: web\n    match: ['service=\"web\"']\n  - name: api\n    match: ['service=\"api\"']\n"
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), head)
	d := startDaemon(t, cfg, freeAddr(t))
	d.token = "reload-token"

	// 7% errors is Sev 3 with the default thresholds (rule 5).
	postAuthed(t, d, "web", "7%")
	waitFor(t, 10*time.Second, "the web incident at Sev 3", func() bool { return d.severityOf("web") == 3 })

	// The api profile now pages at 5% errors: 7% is Sev 2 (rule 3).
	writeFile(t, cfg, head+"    thresholds: {major_error_ratio: 0.05}\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reload logged", func() bool { return strings.Contains(d.stderr.String(), "configuration reloaded") })
	postAuthed(t, d, "api", "7%")
	waitFor(t, 10*time.Second, "the api incident at Sev 2 (the reloaded profile)", func() bool { return d.severityOf("api") == 2 })
	if sev := d.severityOf("web"); sev != 3 {
		t.Errorf("web incident Sev %d after the reload, want it kept at 3", sev)
	}
	if v := metricValue(t, d, "amtriage_config_last_reload_successful"); v != 1 {
		t.Errorf("amtriage_config_last_reload_successful = %v, want 1", v)
	}

	// An invalid file: refused, logged, the gauge says 0, the daemon lives.
	writeFile(t, cfg, head+"    thresholds: {major_error_ratio: 0.05}\nintake:\n  max_pending: 100000000000\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refusal logged", func() bool {
		return strings.Contains(d.stderr.String(), "configuration reload refused")
	})
	if v := metricValue(t, d, "amtriage_config_last_reload_successful"); v != 0 {
		t.Errorf("amtriage_config_last_reload_successful = %v after an invalid file, want 0", v)
	}
	if !strings.Contains(d.stderr.String(), "intake.max_pending: must be between 1 and 1000000") {
		t.Errorf("the refusal does not name the key and its range:\n%s", tail(d.stderr.String(), 2000))
	}

	// POST /-/reload: auth first, then the same answer with the errors.
	req, _ := http.NewRequest(http.MethodPost, d.url("/-/reload"), nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /-/reload without the token = %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, d.url("/-/reload"), nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err = httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "intake.max_pending") {
		t.Errorf("POST /-/reload of an invalid file = %d %s, want 500 naming intake.max_pending", resp.StatusCode, body)
	}

	// The old configuration is still in force: the daemon serves, with its token.
	postAuthed(t, d, "web", "7%")
	writeFile(t, cfg, head)
	req, _ = http.NewRequest(http.MethodPost, d.url("/-/reload"), nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	if resp, err = httpClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /-/reload of a valid file = %d, want 200", resp.StatusCode)
	}
	if v := metricValue(t, d, "amtriage_config_last_reload_successful"); v != 1 {
		t.Errorf("amtriage_config_last_reload_successful = %v after a valid reload, want 1", v)
	}
	if err := d.kill(syscall.SIGTERM); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}
