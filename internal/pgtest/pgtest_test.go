package pgtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestSharedDatabaseAnswersQueries(t *testing.T) {
	srv := Shared(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name, dsn, wantUser string
	}{
		{"superuser", srv.NewDatabase(t), SuperUser},
		{"password role", PasswordDSN(srv.NewDatabase(t)), PasswordUser},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := connect(t, tt.dsn)
			var user string
			var fsync string
			if err := conn.QueryRow(ctx, "SELECT current_user, current_setting('fsync')").Scan(&user, &fsync); err != nil {
				t.Fatal(err)
			}
			if user != tt.wantUser || fsync != "on" {
				t.Errorf("current_user %q fsync %q, want %q and on (durable by default)", user, fsync, tt.wantUser)
			}
			// The role owns the database: it can create its tables.
			if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
				t.Errorf("create table: %v", err)
			}
		})
	}
}

func TestEachNewDatabaseIsEmpty(t *testing.T) {
	srv := Shared(t)
	ctx := context.Background()
	a := connect(t, srv.NewDatabase(t))
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	b := connect(t, srv.NewDatabase(t))
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the second database sees the first one's table")
	}
}

func TestWrongPasswordIsRefused(t *testing.T) {
	dsn := PasswordDSN(Shared(t).NewDatabase(t))
	dsn = strings.Replace(dsn, Password, "not-"+Password, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		conn.Close(ctx)
		t.Fatal("connected with a wrong password: the role must authenticate, or password tests prove nothing")
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("err = %v, want a password authentication failure", err)
	}
}

func TestStopStartKeepsDataAndAddress(t *testing.T) {
	srv := Start(t, WithoutFsync())
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	srv.Stop(t)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a query on a stopped server succeeded")
	}
	srv.Start(t)
	if srv.Addr() != addr {
		t.Errorf("address moved from %s to %s", addr, srv.Addr())
	}
	var x int
	if err := connect(t, dsn).QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Errorf("after restart: x=%d err=%v, want 42", x, err)
	}
}

func TestStartCleanupRemovesItsDirectory(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		srv := Start(t, WithoutFsync())
		dir = srv.dir
		if _, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after cleanup: %v, want it gone", dir, err)
	}
}

func TestProxyCutBreaksALiveConnectionUntilRestore(t *testing.T) {
	srv := Shared(t)
	dsn := srv.NewDatabase(t)
	p := NewProxy(t, srv.Addr())
	ctx := context.Background()
	conn := connect(t, WithAddr(dsn, p.Addr()))
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	direct := connect(t, dsn)

	p.Cut()
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a query on a cut connection succeeded")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(cctx, WithAddr(dsn, p.Addr())); err == nil {
		c.Close(ctx)
		t.Fatal("a new connection through a cut proxy succeeded")
	}
	if _, err := direct.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("a direct connection broke with the proxy's: %v", err)
	}

	p.Restore()
	if _, err := connect(t, WithAddr(dsn, p.Addr())).Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}

func TestTerminateBackendsEndsOnlyThatApplication(t *testing.T) {
	srv := Shared(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	victim := connect(t, dsn+"&application_name=pgtest-victim")
	bystander := connect(t, dsn+"&application_name=pgtest-bystander")
	if n := TerminateBackends(ctx, t, srv.DSN(), "pgtest-victim"); n != 1 {
		t.Errorf("terminated %d backends, want 1", n)
	}
	if _, err := victim.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("the terminated backend still answers")
	}
	if _, err := bystander.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("the other application's backend: %v", err)
	}
}

func TestProxyStallHangsALiveConnectionUntilRestore(t *testing.T) {
	srv := Shared(t)
	p := NewProxy(t, srv.Addr())
	conn := connect(t, WithAddr(srv.NewDatabase(t), p.Addr()))
	ctx := context.Background()

	p.Stall()
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := conn.Exec(sctx, "SELECT 1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a query on a stalled link: %v, want it to hang until its deadline", err)
	}
	p.Restore()
	// pgx closes a connection whose query it abandoned; a new one works.
	conn2 := connect(t, WithAddr(srv.NewDatabase(t), p.Addr()))
	if _, err := conn2.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}
