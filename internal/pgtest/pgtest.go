// Package pgtest starts a real PostgreSQL for tests.
//
// A Server is a postgres process of Debian's postgresql package run as a
// direct child of the test binary: initdb into a fresh temporary directory,
// listening on 127.0.0.1 only (unix sockets off), stopped by t.Cleanup and
// killed by the kernel if the test binary dies first, so it never outlives
// the tests. initdb and postgres refuse to run as root, so under root they
// run as the user nobody.
//
// The superuser "postgres" connects without a password (trust on
// 127.0.0.1). The role PasswordUser must give Password (scram-sha-256), so a
// test can check that a password never shows in an error or a log.
//
// Without the binaries the tests are skipped, unless CI=true, in which case
// they fail (the rule of internal/testproc).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/internal/testproc"
)

const (
	// SuperUser connects by trust on 127.0.0.1.
	SuperUser = "postgres"
	// PasswordUser owns every database NewDatabase creates and must
	// authenticate with Password.
	PasswordUser = "amtriage_pw"
	// Password is PasswordUser's password: distinctive, so a test can grep
	// for it in errors and logs.
	Password = "pgtest-S3cret-7f3a9c1e"

	readyTimeout = 60 * time.Second // initdb and recovery on a loaded 2-core machine
	stopTimeout  = 30 * time.Second
	startTries   = 3
)

// Option changes how a Server runs.
type Option func(*config)

type config struct {
	settings map[string]string
}

// WithoutFsync turns fsync off: faster, but a commit is no longer durable
// (crash tests and benchmarks of durable commits must keep the default).
func WithoutFsync() Option {
	return func(c *config) {
		c.settings["fsync"] = "off"
		c.settings["synchronous_commit"] = "off"
		c.settings["full_page_writes"] = "off"
	}
}

// WithSetting sets one server parameter (postgres -c name=value).
func WithSetting(name, value string) Option {
	return func(c *config) { c.settings[name] = value }
}

// Server is a PostgreSQL owned by one test (Start) or by the test binary
// (Shared).
type Server struct {
	bindir  string
	dir     string // temporary root, removed at cleanup
	dataDir string
	logPath string
	port    int
	cfg     config
	cred    *syscall.Credential

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	waitErr error
	dbSeq   atomic.Int64
}

// Start initialises a cluster in a fresh temporary directory and starts
// PostgreSQL on a free 127.0.0.1 port. It is stopped and its directory
// removed when the test ends; on failure its log is shown.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bindir := BinDir(t)
	s, err := newServer(bindir, opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: postgres log (%s):\n%s", s.logPath, testproc.LogTail(s.logPath, 64<<10))
		}
		if err := s.close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// BinDir returns the directory holding initdb and postgres: pg_config
// --bindir, else the newest /usr/lib/postgresql/*/bin. If neither has them
// the test is skipped, or fails when CI is true.
func BinDir(t testing.TB) string {
	t.Helper()
	dir, err := findBinDir()
	if err != nil {
		testproc.Missing(t,
			fmt.Sprintf("PostgreSQL is not installed (%v): .ci/run must install the Debian package postgresql", err),
			"PostgreSQL not installed: apt-get install postgresql postgresql-client (CI installs it via .ci/run)")
	}
	return dir
}

func findBinDir() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	// Debian's pg_config (libpq-dev) may name /usr/bin, where only the
	// client wrappers live; the server is under /usr/lib/postgresql.
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versions, func(i, j int) bool { return pgVersion(versions[i]) > pgVersion(versions[j]) })
	candidates = append(candidates, versions...)
	for _, d := range candidates {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb and postgres in %v", candidates)
}

func pgVersion(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func newServer(bindir string, opts []Option) (*Server, error) {
	cfg := config{settings: map[string]string{}}
	for _, o := range opts {
		o(&cfg)
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(reachableTempDir(cred), "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s := &Server{
		bindir:  bindir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "postgres.log"),
		cfg:     cfg,
		cred:    cred,
	}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// The port is picked by binding :0 and releasing it, so another process
	// may take it first: retry on another port.
	for try := 1; ; try++ {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.run(); err == nil || !errors.Is(err, errAddrInUse) || try == startTries {
			break
		}
	}
	if err == nil {
		err = s.bootstrap()
	}
	if err != nil {
		_ = s.close()
		return nil, err
	}
	return s, nil
}

// reachableTempDir is os.TempDir when the server's user can reach it, else
// /tmp (a root test run may have TMPDIR under /root).
func reachableTempDir(cred *syscall.Credential) string {
	d := os.TempDir()
	if cred == nil {
		return d
	}
	for p := d; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if p == filepath.Dir(p) {
			return d
		}
	}
}

func (s *Server) initdb() error {
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", s.dir, err)
	}
	if err := os.Mkdir(s.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dataDir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", s.dataDir, err)
		}
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()
	// --no-sync: initdb's own files need no fsync (a crash here is a failed
	// test, not lost data); the server's fsync setting is separate.
	cmd := exec.Command(filepath.Join(s.bindir, "initdb"),
		"-D", s.dataDir, "-U", SuperUser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(s.cred)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %v\n--- log (%s) ---\n%s", err, s.logPath, testproc.LogTail(s.logPath, testproc.LogTailBytes))
	}
	// Trust for the superuser; every other role must give its password.
	hba := "host all " + SuperUser + " 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(s.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pg_hba.conf: %w", err)
	}
	return nil
}

func childEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
}

var errAddrInUse = errors.New("address already in use")

// run starts postgres on s.port and waits until it accepts queries.
func (s *Server) run() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		select {
		case <-s.done:
		default:
			return errors.New("postgres is already running")
		}
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	off, _ := logf.Seek(0, 2)

	args := []string{"-D", s.dataDir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning",
	}
	keys := make([]string, 0, len(s.cfg.settings))
	for k := range s.cfg.settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+s.cfg.settings[k])
	}
	cmd := exec.Command(filepath.Join(s.bindir, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(s.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	go func() {
		s.waitErr = cmd.Wait()
		close(done)
	}()
	if err := s.waitReady(done); err != nil {
		s.stopLocked()
		tail := logSince(s.logPath, off)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return fmt.Errorf("postgres not ready: %v\n--- log (%s) ---\n%s", err, s.logPath, tail)
	}
	return nil
}

func logSince(path string, off int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	if off < int64(len(b)) {
		b = b[off:]
	}
	if len(b) > testproc.LogTailBytes {
		b = b[len(b)-testproc.LogTailBytes:]
	}
	return string(b)
}

func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	lastErr := errors.New("no attempt")
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("postgres exited early: %v", s.waitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			_, err = conn.Exec(ctx, "SELECT 1")
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-done:
			return fmt.Errorf("postgres exited early: %v", s.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("timeout after %s: %v", readyTimeout, lastErr)
}

// bootstrap creates PasswordUser once, after the first start.
func (s *Server) bootstrap() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return fmt.Errorf("connect as %s: %w", SuperUser, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", PasswordUser, Password)); err != nil {
		return fmt.Errorf("create role %s: %w", PasswordUser, err)
	}
	return nil
}

// Stop shuts PostgreSQL down now (SIGINT: fast shutdown, which disconnects
// every client and checkpoints). The data directory and the port stay, for
// Start. Safe to call more than once.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped Server again, on the same data directory and
// port, and waits until it accepts queries.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.run(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("postgres (pid %d) ignored SIGINT for %s; killed it", s.cmd.Process.Pid, stopTimeout)
}

// close stops the server and removes its directory.
func (s *Server) close() error {
	s.mu.Lock()
	err := s.stopLocked()
	s.mu.Unlock()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove %s: %w", s.dir, rmErr)
	}
	return err
}

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// DSN connects as the superuser to the database "postgres": for
// administration (CREATE DATABASE, TerminateBackends).
func (s *Server) DSN() string { return dsn(SuperUser, "", s.Addr(), "postgres") }

// LogPath is the file that receives PostgreSQL's log.
func (s *Server) LogPath() string { return s.logPath }

// NewDatabase creates a fresh, empty database owned by PasswordUser and
// returns a DSN for it as the superuser (no password); PasswordDSN turns it
// into one that needs Password. The database is dropped when the test ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", s.dbSeq.Add(1), sanitize(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.adminExec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{name}.Sanitize(), PasswordUser)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if !s.running() {
			return // a test that stopped its own server; the directory goes anyway
		}
		if err := s.adminExec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dsn(SuperUser, "", s.Addr(), name)
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// PasswordDSN returns dsn (one of NewDatabase's) for PasswordUser with
// Password.
func PasswordDSN(dsnStr string) string {
	u, err := url.Parse(dsnStr)
	if err != nil {
		panic(fmt.Sprintf("pgtest: not a URL DSN: %v", err))
	}
	u.User = url.UserPassword(PasswordUser, Password)
	return u.String()
}

// WithAddr returns dsn with its host:port replaced by addr, e.g. a Proxy's.
func WithAddr(dsnStr, addr string) string {
	u, err := url.Parse(dsnStr)
	if err != nil {
		panic(fmt.Sprintf("pgtest: not a URL DSN: %v", err))
	}
	u.Host = addr
	return u.String()
}

func dsn(user, password, addr, db string) string {
	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + db, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TerminateBackends ends every backend whose application_name is
// applicationName (pg_terminate_backend), as an administrator would, and
// returns how many it ended.
func TerminateBackends(ctx context.Context, t testing.TB, adminDSN, applicationName string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatalf("pgtest: terminate backends: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx,
		`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		  WHERE application_name = $1 AND pid <> pg_backend_pid()) t`, applicationName).Scan(&n)
	if err != nil {
		t.Fatalf("pgtest: terminate backends of %q: %v", applicationName, err)
	}
	return n
}
