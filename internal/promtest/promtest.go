// Package promtest starts a real Prometheus for integration tests, scraping
// in-process exporters whose traffic the test controls (see Exporter).
//
// The Prometheus listens on 127.0.0.1 only, keeps its TSDB in the test's
// temporary directory, scrapes every second and is stopped by t.Cleanup, so
// it never outlives the test. On test failure its log is written with t.Log.
//
// The binary comes from the Debian package prometheus (/usr/bin/prometheus).
// Without it the tests are skipped, unless CI=true, in which case they fail.
package promtest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/amtriage/amtriage/internal/testproc"
)

const (
	// ScrapeInterval is the scrape (and rule evaluation) interval.
	ScrapeInterval = time.Second
	// Job is the job label of the exporters' series.
	Job = "promtest"

	pollInterval = 100 * time.Millisecond
)

// Binary returns the path of the Prometheus binary. If it is not installed
// the test is skipped, or fails when the environment variable CI is true.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	testproc.Missing(t,
		fmt.Sprintf("prometheus is not on PATH (%s): .ci/run must install the Debian package prometheus", os.Getenv("PATH")),
		"prometheus not installed: apt-get install prometheus (CI installs it via .ci/run)")
	return ""
}

// Prometheus is a running Prometheus process owned by one test.
type Prometheus struct {
	srv       *testproc.Server
	api       v1.API
	exporters []*Exporter
}

// Start starts a Prometheus on a free 127.0.0.1 port, with a fresh TSDB in
// a temporary directory, scraping the exporters every second (none given:
// one new exporter for service "api"), and waits until it is ready. The
// process is stopped when the test ends.
func Start(t testing.TB, exporters ...*Exporter) *Prometheus {
	t.Helper()
	bin := Binary(t)
	if len(exporters) == 0 {
		exporters = []*Exporter{NewExporter(t, "api")}
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(renderConfig(exporters)), 0o600); err != nil {
		t.Fatalf("promtest: write config: %v", err)
	}
	srv, err := testproc.Start(t, testproc.Spec{
		Name: "prometheus", Bin: bin, Dir: dir, ReadyPath: "/-/ready",
		Args: func(addr, url, storage string) []string {
			return []string{
				"--config.file=" + cfgPath,
				"--storage.tsdb.path=" + storage,
				"--web.listen-address=" + addr,
				"--web.external-url=" + url,
				"--log.level=info",
			}
		},
	})
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	client, err := api.NewClient(api.Config{
		Address:      srv.URL,
		RoundTripper: &http.Transport{Proxy: nil, DisableCompression: true},
	})
	if err != nil {
		t.Fatalf("promtest: %v", err)
	}
	return &Prometheus{srv: srv, api: v1.NewAPI(client), exporters: exporters}
}

func renderConfig(exporters []*Exporter) string {
	var b strings.Builder
	b.WriteString("# Written by internal/promtest.\n")
	b.WriteString("global:\n")
	fmt.Fprintf(&b, "  scrape_interval: %s\n", model.Duration(ScrapeInterval))
	fmt.Fprintf(&b, "  scrape_timeout: %s\n", model.Duration(ScrapeInterval))
	fmt.Fprintf(&b, "  evaluation_interval: %s\n", model.Duration(ScrapeInterval))
	b.WriteString("scrape_configs:\n")
	fmt.Fprintf(&b, "  - job_name: %q\n", Job)
	b.WriteString("    static_configs:\n")
	b.WriteString("      - targets:\n")
	for _, e := range exporters {
		fmt.Fprintf(&b, "          - %q\n", e.Target())
	}
	return b.String()
}

// URL returns the Prometheus's base URL, http://127.0.0.1:PORT.
func (p *Prometheus) URL() string { return p.srv.URL }

// LogPath returns the file that receives the Prometheus's stdout and stderr.
func (p *Prometheus) LogPath() string { return p.srv.LogPath }

// Exporter returns the scraped exporter of service, or fails the test.
func (p *Prometheus) Exporter(t testing.TB, service string) *Exporter {
	t.Helper()
	for _, e := range p.exporters {
		if e.service == service {
			return e
		}
	}
	t.Fatalf("promtest: no exporter for service %q", service)
	return nil
}

// Query evaluates query now and returns its single value: a scalar or a
// one-sample vector (NaN and ±Inf included). Anything else is an error.
func (p *Prometheus) Query(ctx context.Context, query string) (float64, error) {
	v, _, _, err := p.api.Query(ctx, query, time.Now())
	if err != nil {
		return 0, err
	}
	switch v := v.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case model.Vector:
		if len(v) == 1 {
			return float64(v[0].Value), nil
		}
		return 0, fmt.Errorf("%d series, want 1", len(v))
	}
	return 0, fmt.Errorf("a %s, want a scalar or a vector", v.Type())
}

// WaitFor polls query (every 100 ms) until it returns a finite single
// value for which ok holds, and returns that value. It fails the test after
// timeout, with the last value or error seen.
func (p *Prometheus) WaitFor(t testing.TB, query string, timeout time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		v, err := p.Query(ctx, query)
		cancel()
		switch {
		case err != nil:
			last = "error: " + err.Error()
		case math.IsNaN(v) || math.IsInf(v, 0):
			last = "value " + strconv.FormatFloat(v, 'g', -1, 64)
		case ok == nil || ok(v):
			return v
		default:
			last = "value " + strconv.FormatFloat(v, 'g', -1, 64)
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s: no acceptable value within %s; last %s", query, timeout, last)
		}
		select {
		case <-p.srv.Done():
			t.Fatalf("promtest: prometheus exited while waiting for %s: %v", query, p.srv.Err())
		case <-time.After(pollInterval):
		}
	}
}

// WaitForSeries waits until query returns a finite single value: the
// series exist and have enough samples for their rate windows.
func (p *Prometheus) WaitForSeries(t testing.TB, query string, timeout time.Duration) float64 {
	t.Helper()
	return p.WaitFor(t, query, timeout, nil)
}

// Near returns a WaitFor condition: within tol of want.
func Near(want, tol float64) func(float64) bool {
	return func(v float64) bool { return math.Abs(v-want) <= tol }
}
