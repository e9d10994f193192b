// Package testproc runs the real servers integration tests need
// (Alertmanager, Prometheus) as child processes: on a free 127.0.0.1 port,
// logging to a file, stopped by t.Cleanup, with their log shown when the
// test fails. It also holds the rule every such test follows for a missing
// binary: skip locally, fail under CI=true.
package testproc

import (
	"errors"
	"fmt"
	"io"
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
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	// LogTailBytes is how much of a log a start failure quotes.
	LogTailBytes = 4 << 10
	maxLogDump   = 256 << 10
	startTries   = 3
)

// InCI reports whether the environment variable CI is true: a missing
// component must then fail the test, not skip it.
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Missing ends a test that lacks a component: it fails with ciMsg under
// CI=true and is skipped with localMsg otherwise.
func Missing(tb testing.TB, ciMsg, localMsg string) {
	tb.Helper()
	if InCI() {
		tb.Fatal("CI=true but " + ciMsg)
		return
	}
	tb.Skip(localMsg)
}

// LogTail returns the last n bytes of the file at path.
func LogTail(path string, n int64) string {
	f, err := os.Open(path)
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

// Server is a running child process owned by one test.
type Server struct {
	name     string
	URL      string // http://127.0.0.1:PORT
	LogPath  string // its stdout and stderr
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid after done is closed
	logShown bool          // the log tail is already in a failure message
}

// Spec says how to run one server.
type Spec struct {
	Name string // for messages and log file names, e.g. "prometheus"
	Bin  string
	Dir  string // working directory, and where logs go
	// Args returns the command line for one attempt listening on addr
	// (host:port) with base URL url and a fresh, empty data directory.
	Args func(addr, url, dataDir string) []string
	// ReadyPath is polled until it answers 200, e.g. "/-/ready".
	ReadyPath string
}

var errAddrInUse = errors.New("address already in use")

// Start runs the server on a free port and waits until it is ready. The
// port is picked by binding :0 and releasing it, so another process may
// take it first: a start that fails with "address already in use" is
// retried on another port.
func Start(tb testing.TB, s Spec) (*Server, error) {
	tb.Helper()
	var lastErr error
	for try := 1; try <= startTries; try++ {
		srv, err := start(tb, s, try)
		if err == nil {
			return srv, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, lastErr
}

func start(tb testing.TB, s Spec, try int) (*Server, error) {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv := &Server{
		name:    s.Name,
		URL:     "http://" + addr,
		LogPath: filepath.Join(s.Dir, fmt.Sprintf("%s-%d.log", s.Name, try)),
		done:    make(chan struct{}),
	}
	dataDir := filepath.Join(s.Dir, fmt.Sprintf("data-%d", try))
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		return nil, err
	}
	args := s.Args(addr, srv.URL, dataDir)
	logFile, err := os.Create(srv.LogPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	srv.cmd = exec.Command(s.Bin, args...)
	srv.cmd.Dir = s.Dir
	srv.cmd.Stdout = logFile
	srv.cmd.Stderr = logFile
	srv.cmd.SysProcAttr = sysProcAttr()
	if err := srv.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Bin, err)
	}
	go func() {
		srv.waitErr = srv.cmd.Wait()
		close(srv.done)
	}()
	tb.Cleanup(func() {
		srv.Stop(tb)
		if tb.Failed() && !srv.logShown {
			srv.dumpLog(tb)
		}
	})

	if err := srv.waitReady(srv.URL + s.ReadyPath); err != nil {
		srv.Stop(tb)
		tail := LogTail(srv.LogPath, LogTailBytes)
		if strings.Contains(tail, "address already in use") {
			return nil, fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		srv.logShown = true
		return nil, fmt.Errorf("%s not ready: %v\n--- log tail (%s) ---\n%s", s.Name, err, srv.LogPath, tail)
	}
	return srv, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady(url string) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	lastErr := errors.New("no attempt")
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("process exited early: %v", s.waitErr)
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		lastErr = err
		select {
		case <-s.done:
			return fmt.Errorf("process exited early: %v", s.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("timeout after %s: %v", readyTimeout, lastErr)
}

// Stop sends SIGTERM, then SIGKILL after a grace period, and waits for the
// process. It is safe to call more than once.
func (s *Server) Stop(tb testing.TB) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return
	case <-time.After(stopTimeout):
	}
	tb.Logf("testproc: %s (pid %d) ignored SIGTERM for %s; killing it", s.name, s.cmd.Process.Pid, stopTimeout)
	_ = s.cmd.Process.Kill()
	<-s.done
}

func (s *Server) dumpLog(tb testing.TB) {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		tb.Logf("testproc: read %s log: %v", s.name, err)
		return
	}
	if len(b) > maxLogDump {
		b = append([]byte("[...]\n"), b[len(b)-maxLogDump:]...)
	}
	tb.Logf("testproc: %s log (%s):\n%s", s.name, s.LogPath, b)
}

// Done is closed when the process has exited; Err then says how.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is the process's exit error, valid once Done is closed.
func (s *Server) Err() error { return s.waitErr }
