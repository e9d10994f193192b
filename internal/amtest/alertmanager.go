// Package amtest starts a real Prometheus Alertmanager for integration tests.
//
// The Alertmanager listens on 127.0.0.1 only, keeps its state in the test's
// temporary directory and is stopped by t.Cleanup, so it never outlives the
// test. On test failure its log is written with t.Log.
//
// The binary comes from the Debian package prometheus-alertmanager
// (/usr/bin/prometheus-alertmanager); an upstream build named alertmanager
// on PATH works too. Without it the tests are skipped, unless CI=true, in
// which case they fail.
package amtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/testproc"
)

// binaryNames are looked up on PATH in this order. Debian installs the
// binary as prometheus-alertmanager, upstream releases as alertmanager.
var binaryNames = []string{"prometheus-alertmanager", "alertmanager"}

// ReceiverName is the name of the single receiver in the generated config.
const ReceiverName = "amtriage"

// Binary returns the path of the Alertmanager binary. If it is not
// installed the test is skipped, or fails when the environment variable CI
// is true.
func Binary(t testing.TB) string {
	t.Helper()
	for _, name := range binaryNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testproc.Missing(t,
		fmt.Sprintf("neither %s is on PATH (%s): .ci/run must install the Debian package prometheus-alertmanager",
			strings.Join(binaryNames, " nor "), os.Getenv("PATH")),
		"prometheus-alertmanager not installed: apt-get install prometheus-alertmanager (CI installs it via .ci/run)")
	return ""
}

// Amtool returns the path of amtool, which the Debian package
// prometheus-alertmanager installs beside Alertmanager. If it is missing the
// test is skipped, or fails when CI is true.
func Amtool(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("amtool"); err == nil {
		return p
	}
	testproc.Missing(t,
		fmt.Sprintf("amtool is not on PATH (%s): .ci/run must install the Debian package prometheus-alertmanager", os.Getenv("PATH")),
		"amtool not installed: apt-get install prometheus-alertmanager (CI installs it via .ci/run)")
	return ""
}

// CheckConfig runs `amtool check-config` on an alertmanager.yml and returns
// its output; err is set when amtool rejects the file.
func CheckConfig(t testing.TB, path string) (string, error) {
	t.Helper()
	out, err := exec.Command(Amtool(t), "check-config", path).CombinedOutput()
	return string(out), err
}

// Config describes the Alertmanager to start. The zero value of every field
// except WebhookURL is usable.
type Config struct {
	// WebhookURL is where the single receiver ("amtriage") sends its
	// webhooks. Required.
	WebhookURL string
	// MoreWebhookURLs are further webhook_configs of the same receiver,
	// each with the same settings: Alertmanager sends every notification
	// to each of them independently (several replicas behind no load
	// balancer).
	MoreWebhookURLs []string

	// BearerToken, if set, is written to a credentials_file (with a trailing
	// newline, which Alertmanager strips) and sent as
	// "Authorization: Bearer <token>".
	BearerToken string
	// BasicAuthUser and BasicAuthPassword, if set, configure basic_auth.
	// Mutually exclusive with BearerToken.
	BasicAuthUser     string
	BasicAuthPassword string

	// Route timings. Defaults: 1s, 1s, 1h.
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	// GroupBy defaults to ["alertname", "service"].
	GroupBy []string

	// MaxAlerts is the webhook's max_alerts (0: no limit).
	MaxAlerts int
	// SendResolved is the webhook's send_resolved; nil means true.
	SendResolved *bool
}

// Bool returns a pointer to b, for Config.SendResolved.
func Bool(b bool) *bool { return &b }

// Alertmanager is a running Alertmanager process owned by one test.
type Alertmanager struct {
	srv    *testproc.Server
	client *http.Client
}

// Start writes an alertmanager.yml for cfg into a fresh temporary directory,
// starts the Alertmanager on a free 127.0.0.1 port and waits until it is
// ready. The process is stopped when the test ends.
func Start(t testing.TB, cfg Config) *Alertmanager {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()

	yml, err := renderConfig(dir, cfg)
	if err != nil {
		t.Fatalf("amtest: %v", err)
	}
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatalf("amtest: write config: %v", err)
	}

	srv, err := testproc.Start(t, testproc.Spec{
		Name: "alertmanager", Bin: bin, Dir: dir, ReadyPath: "/-/ready",
		Args: func(addr, url, storage string) []string {
			return []string{
				"--config.file=" + cfgPath,
				"--storage.path=" + storage,
				"--web.listen-address=" + addr,
				"--web.external-url=" + url,
				"--cluster.listen-address=",
				"--log.level=debug",
			}
		},
	})
	if err != nil {
		t.Fatalf("amtest: %v", err)
	}
	return &Alertmanager{srv: srv, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableCompression: true},
	}}
}

// URL returns the Alertmanager's base URL, http://127.0.0.1:PORT.
func (am *Alertmanager) URL() string { return am.srv.URL }

// Stop stops the Alertmanager now (SIGTERM), before the test ends: it sends
// nothing more. Safe to call more than once.
func (am *Alertmanager) Stop(t testing.TB) { am.srv.Stop(t) }

// LogPath returns the file that receives the Alertmanager's stdout and stderr.
func (am *Alertmanager) LogPath() string { return am.srv.LogPath }

// Alert is an alert as posted to POST /api/v2/alerts.
type Alert struct {
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time // zero: Alertmanager uses the time of receipt
	EndsAt       time.Time // zero: firing until resolve_timeout; past: resolved
	GeneratorURL string
}

// MarshalJSON encodes the alert in the API v2 format, leaving out zero
// times and writing the others as RFC 3339 with nanoseconds.
func (a Alert) MarshalJSON() ([]byte, error) {
	type wire struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations,omitempty"`
		StartsAt     string            `json:"startsAt,omitempty"`
		EndsAt       string            `json:"endsAt,omitempty"`
		GeneratorURL string            `json:"generatorURL,omitempty"`
	}
	w := wire{Labels: a.Labels, Annotations: a.Annotations, GeneratorURL: a.GeneratorURL}
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	if !a.StartsAt.IsZero() {
		w.StartsAt = a.StartsAt.Format(time.RFC3339Nano)
	}
	if !a.EndsAt.IsZero() {
		w.EndsAt = a.EndsAt.Format(time.RFC3339Nano)
	}
	return json.Marshal(w)
}

// Resolve returns copies of alerts with EndsAt set to one second ago, so
// that posting them makes Alertmanager mark them resolved. The input is not
// modified.
func Resolve(alerts []Alert) []Alert {
	end := time.Now().Add(-time.Second)
	out := make([]Alert, len(alerts))
	for i, a := range alerts {
		a.EndsAt = end
		if !a.StartsAt.IsZero() && a.StartsAt.After(end) {
			a.StartsAt = end // Alertmanager rejects startsAt after endsAt
		}
		out[i] = a
	}
	return out
}

// PostAlerts sends alerts to POST /api/v2/alerts.
func (am *Alertmanager) PostAlerts(ctx context.Context, alerts []Alert) error {
	if alerts == nil {
		alerts = []Alert{}
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, am.srv.URL+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := am.client.Do(req)
	if err != nil {
		return fmt.Errorf("post alerts: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post alerts: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Alerts returns the alerts Alertmanager currently holds (GET
// /api/v2/alerts), decoded loosely.
func (am *Alertmanager) Alerts(ctx context.Context) ([]map[string]any, error) {
	var out []map[string]any
	if err := am.getJSON(ctx, "/api/v2/alerts", &out); err != nil {
		return nil, fmt.Errorf("get alerts: %w", err)
	}
	return out, nil
}

// Silence is a silence as GET /api/v2/silences lists it.
type Silence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Status    struct {
		State string `json:"state"` // active, pending or expired
	} `json:"status"`
}

// Silences returns every silence Alertmanager holds (GET
// /api/v2/silences), expired ones included.
func (am *Alertmanager) Silences(ctx context.Context) ([]Silence, error) {
	var out []Silence
	if err := am.getJSON(ctx, "/api/v2/silences", &out); err != nil {
		return nil, fmt.Errorf("get silences: %w", err)
	}
	return out, nil
}

// getJSON decodes the JSON answer to GET path into out.
func (am *Alertmanager) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.srv.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := am.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// renderConfig returns the alertmanager.yml for cfg. Secrets files are
// written into dir.
func renderConfig(dir string, cfg Config) (string, error) {
	if cfg.WebhookURL == "" {
		return "", errors.New("config: WebhookURL is required")
	}
	urls := append([]string{cfg.WebhookURL}, cfg.MoreWebhookURLs...)
	for _, s := range urls {
		if u, err := url.Parse(s); err != nil || u.Scheme == "" || u.Host == "" {
			return "", fmt.Errorf("config: webhook URL %q is not an absolute URL", s)
		}
	}
	basic := cfg.BasicAuthUser != "" || cfg.BasicAuthPassword != ""
	if basic && cfg.BearerToken != "" {
		return "", errors.New("config: BearerToken and BasicAuth* are mutually exclusive")
	}
	if cfg.MaxAlerts < 0 {
		return "", fmt.Errorf("config: MaxAlerts %d is negative", cfg.MaxAlerts)
	}
	groupWait, err := amDuration("GroupWait", cfg.GroupWait, time.Second)
	if err != nil {
		return "", err
	}
	groupInterval, err := amDuration("GroupInterval", cfg.GroupInterval, time.Second)
	if err != nil {
		return "", err
	}
	repeatInterval, err := amDuration("RepeatInterval", cfg.RepeatInterval, time.Hour)
	if err != nil {
		return "", err
	}
	groupBy := cfg.GroupBy
	if len(groupBy) == 0 {
		groupBy = []string{"alertname", "service"}
	}
	sendResolved := cfg.SendResolved == nil || *cfg.SendResolved

	var b strings.Builder
	b.WriteString("# Written by internal/amtest.\n")
	b.WriteString("route:\n")
	fmt.Fprintf(&b, "  receiver: %s\n", q(ReceiverName))
	b.WriteString("  group_by: [")
	for i, l := range groupBy {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q(l))
	}
	b.WriteString("]\n")
	fmt.Fprintf(&b, "  group_wait: %s\n", groupWait)
	fmt.Fprintf(&b, "  group_interval: %s\n", groupInterval)
	fmt.Fprintf(&b, "  repeat_interval: %s\n", repeatInterval)
	b.WriteString("receivers:\n")
	fmt.Fprintf(&b, "  - name: %s\n", q(ReceiverName))
	b.WriteString("    webhook_configs:\n")
	var auth string
	switch {
	case cfg.BearerToken != "":
		tokenFile := filepath.Join(dir, "bearer_token")
		if err := os.WriteFile(tokenFile, []byte(cfg.BearerToken+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write bearer token: %w", err)
		}
		auth = "        http_config:\n" +
			"          authorization:\n" +
			"            type: Bearer\n" +
			"            credentials_file: " + q(tokenFile) + "\n"
	case basic:
		auth = "        http_config:\n" +
			"          basic_auth:\n" +
			"            username: " + q(cfg.BasicAuthUser) + "\n" +
			"            password: " + q(cfg.BasicAuthPassword) + "\n"
	}
	for _, u := range urls {
		fmt.Fprintf(&b, "      - url: %s\n", q(u))
		fmt.Fprintf(&b, "        send_resolved: %t\n", sendResolved)
		fmt.Fprintf(&b, "        max_alerts: %d\n", cfg.MaxAlerts)
		b.WriteString(auth)
	}
	return b.String(), nil
}

// q quotes s as a YAML double-quoted scalar (JSON strings are valid ones).
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// amDuration formats d in Prometheus' duration syntax (e.g. "1h30m",
// "1500ms"), using def when d is zero.
func amDuration(field string, d, def time.Duration) (string, error) {
	if d == 0 {
		d = def
	}
	if d < 0 || d%time.Millisecond != 0 {
		return "", fmt.Errorf("config: %s %s: must be positive and a whole number of milliseconds", field, d)
	}
	var b strings.Builder
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return b.String(), nil
}
