package main

import (
	"context"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/store/pgstore"
)

// pgConfig writes a configuration whose store.postgres DSN (in a file)
// needs pgtest.Password.
func pgConfig(t *testing.T, dsn string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dsn"), pgtest.PasswordDSN(dsn)+"\n")
	return writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  postgres:\n    dsn_file: dsn\n")
}

func noPassword(t *testing.T, out ...string) {
	t.Helper()
	for _, o := range out {
		if strings.Contains(o, pgtest.Password) {
			t.Errorf("the DSN's password was printed:\n%s", o)
		}
	}
}

// A store built by a real amtriage moves to PostgreSQL: refused while that
// amtriage runs, copied once it has stopped, and an amtriage on PostgreSQL
// then shows the same incidents.
func TestStoreMigrateEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	boltCfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+data+"\n")
	d := startDaemon(t, boltCfg, freeAddr(t))
	sendAll(d, crashPayloads(3, 2, 2, "firing"), 0, nil)
	waitProcessed(t, d)
	want := comparable(d.incidents())
	if len(want) != 3 {
		t.Fatalf("%d incidents on bbolt, want 3", len(want))
	}

	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	cfg := pgConfig(t, db)

	code, stdout, stderr := runCLI(t, "", "store", "migrate", "--from", data, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "stop amtriage first") {
		t.Fatalf("migrate while amtriage runs: exit %d, want 1 saying stop amtriage first\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if err := d.kill(syscall.SIGTERM); err != nil {
		t.Fatalf("amtriage on bbolt: %v", err)
	}

	code, stdout, stderr = runCLI(t, "", "store", "migrate", "--from", data, "--config", cfg)
	noPassword(t, stdout, stderr)
	if code != 0 {
		t.Fatalf("migrate: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	target := pgstore.DescribeDSN(pgtest.PasswordDSN(db))
	for _, re := range []string{`incidents\s+3\n`, `alerts\s+12\n`, `inbox entries\s+0 \(not yet processed; processed up to 6, the next is 7\)`, regexp.QuoteMeta(target)} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("migrate's report does not match %s:\n%s", re, stdout)
		}
	}

	pg := startDaemon(t, cfg, freeAddr(t))
	var got []incidentJSON
	if !waitUntil(30*time.Second, func() bool { got = comparable(pg.incidents()); return reflect.DeepEqual(got, want) }) {
		t.Fatalf("incidents on PostgreSQL:\n got %+v\nwant %+v", got, want)
	}

	// The database holds state now (and a replica its lease): a second
	// copy is refused.
	code, stdout, stderr = runCLI(t, "", "store", "migrate", "--from", data, "--config", cfg)
	noPassword(t, stdout, stderr)
	if code != 1 || !(strings.Contains(stderr, "holds the leader lease") || strings.Contains(stderr, "already holds amtriage state (3 incidents")) {
		t.Errorf("second migrate: exit %d, want 1 refusing\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if err := pg.kill(syscall.SIGTERM); err != nil {
		t.Fatalf("amtriage on PostgreSQL: %v", err)
	}
	code, _, stderr = runCLI(t, "", "store", "migrate", "--from", data, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "already holds amtriage state (3 incidents") {
		t.Errorf("migrate into a used database: exit %d, want 1 naming its 3 incidents\nstderr: %s", code, stderr)
	}
}

func TestStoreMigrateRefusals(t *testing.T) {
	srv := pgtest.Start(t)
	storeDir := t.TempDir()
	s, err := boltstore.OpenStore(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	held := srv.NewDatabase(t)
	ctx := context.Background()
	pool, err := pgstore.Connect(ctx, pgtest.PasswordDSN(held))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pgstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := pgstore.TryAcquire(ctx, pool, "replica-b", time.Minute); err != nil || !ok {
		t.Fatal(ok, err)
	}
	bboltCfg := writeFile(t, filepath.Join(t.TempDir(), "amtriage.yml"), "store:\n  path: "+storeDir+"\n")
	down := pgtest.WithAddr(srv.NewDatabase(t), freeAddr(t))

	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"help", []string{"--help"}, 0, "Exit status: 0 copied, 1 refused or failed, 2 usage"},
		{"no --from", []string{"--config", pgConfig(t, held)}, 2, "--from DIR is required"},
		{"no store.postgres", []string{"--from", storeDir, "--config", bboltCfg}, 1, "does not set store.postgres"},
		{"not a store", []string{"--from", t.TempDir(), "--config", pgConfig(t, held)}, 1, "holds no amtriage store"},
		{"a lease held", []string{"--from", storeDir, "--config", pgConfig(t, held)}, 1, `amtriage "replica-b" holds the leader lease`},
		{"the database down", []string{"--from", storeDir, "--config", pgConfig(t, down)}, 1, "host=127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", append([]string{"store", "migrate"}, tt.args...)...)
			noPassword(t, stdout, stderr)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tt.code, tt.want, stdout, stderr)
			}
		})
	}
}
