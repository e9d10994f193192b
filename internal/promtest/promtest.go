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
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

const (
	// ScrapeInterval is the scrape (and rule evaluation) interval.
	ScrapeInterval = time.Second
	// Job is the job label of the exporters' series.
	Job = "promtest"

	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	pollInterval = 100 * time.Millisecond
	logTailBytes = 4 << 10
	maxLogDump   = 256 << 10
	startTries   = 3
)

// Binary returns the path of the Prometheus binary. If it is not installed
// the test is skipped, or fails when the environment variable CI is true.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if inCI() {
		t.Fatalf("CI=true but prometheus is not on PATH (%s): .ci/run must install the Debian package prometheus", os.Getenv("PATH"))
	}
	t.Skipf("prometheus not installed: apt-get install prometheus (CI installs it via .ci/run)")
	return ""
}

func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Prometheus is a running Prometheus process owned by one test.
type Prometheus struct {
	url       string
	logPath   string
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
	waitErr   error         // valid after done is closed
	logShown  bool
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
	// The port is picked by binding :0 and releasing it, so another process
	// may grab it before Prometheus does; retry on "address already in use".
	var lastErr error
	for try := 1; try <= startTries; try++ {
		p, err := start(t, bin, dir, cfgPath, try)
		if err == nil {
			p.exporters = exporters
			return p
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("promtest: %v", lastErr)
	return nil
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

var errAddrInUse = errors.New("address already in use")

func start(t testing.TB, bin, dir, cfgPath string, try int) (*Prometheus, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := &Prometheus{
		url:     "http://" + addr,
		logPath: filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", try)),
		done:    make(chan struct{}),
	}
	client, err := api.NewClient(api.Config{
		Address:      p.url,
		RoundTripper: &http.Transport{Proxy: nil, DisableCompression: true},
	})
	if err != nil {
		return nil, err
	}
	p.api = v1.NewAPI(client)
	storage := filepath.Join(dir, fmt.Sprintf("data-%d", try))
	if err := os.Mkdir(storage, 0o700); err != nil {
		return nil, err
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	p.cmd = exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+storage,
		"--web.listen-address="+addr,
		"--web.external-url="+p.url,
		"--log.level=info",
	)
	p.cmd.Dir = dir
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() && !p.logShown {
			p.dumpLog(t)
		}
	})

	if err := p.waitReady(); err != nil {
		p.stop(t)
		tail := p.logTail(logTailBytes)
		if strings.Contains(tail, "address already in use") {
			return nil, fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		p.logShown = true
		return nil, fmt.Errorf("prometheus not ready: %v\n--- log tail (%s) ---\n%s", err, p.logPath, tail)
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (p *Prometheus) waitReady() error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	lastErr := errors.New("no attempt")
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("process exited early: %v", p.waitErr)
		default:
		}
		resp, err := hc.Get(p.url + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /-/ready: %s", resp.Status)
		}
		lastErr = err
		select {
		case <-p.done:
			return fmt.Errorf("process exited early: %v", p.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("timeout after %s: %v", readyTimeout, lastErr)
}

// stop sends SIGTERM, then SIGKILL after stopTimeout, and waits for the
// process. It is safe to call more than once.
func (p *Prometheus) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	t.Logf("promtest: prometheus (pid %d) ignored SIGTERM for %s; killing it", p.cmd.Process.Pid, stopTimeout)
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *Prometheus) dumpLog(t testing.TB) {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Logf("promtest: read prometheus log: %v", err)
		return
	}
	if len(b) > maxLogDump {
		b = append([]byte("[...]\n"), b[len(b)-maxLogDump:]...)
	}
	t.Logf("promtest: prometheus log (%s):\n%s", p.logPath, b)
}

func (p *Prometheus) logTail(n int64) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// URL returns the Prometheus's base URL, http://127.0.0.1:PORT.
func (p *Prometheus) URL() string { return p.url }

// LogPath returns the file that receives the Prometheus's stdout and stderr.
func (p *Prometheus) LogPath() string { return p.logPath }

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
		case <-p.done:
			t.Fatalf("promtest: prometheus exited while waiting for %s: %v", query, p.waitErr)
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
