package pgtest

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	mainRunning atomic.Bool
	shared      struct {
		sync.Mutex
		srv *Server
		err error
	}
)

// Main runs the tests of a package that calls Shared and then stops the
// shared server, so it never outlives them:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	shared.Lock()
	if shared.srv != nil {
		if err := shared.srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: shared server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.srv = nil
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared returns the test binary's one PostgreSQL (default options),
// started on first use: a test that only needs a database takes
// Shared(t).NewDatabase(t) and pays initdb once per binary. Do not Stop it;
// a test that stops or partitions the server itself uses Start. The
// package's TestMain must call Main.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !mainRunning.Load() {
		t.Fatal("pgtest: Shared needs the package's TestMain to call pgtest.Main(m), which stops the server after the tests")
	}
	bindir := BinDir(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = newServer(bindir, nil)
	}
	if shared.err != nil {
		t.Fatalf("pgtest: shared server: %v", shared.err)
	}
	return shared.srv
}
