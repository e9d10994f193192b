package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrated is pool on a fresh database with the schema applied.
func migrated(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	dsn := freshDB(t)
	p := pool(t, dsn)
	if _, err := Migrate(context.Background(), p); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return p, dsn
}

func TestMigrationsCountFromOneWithoutGaps(t *testing.T) {
	for i, m := range migrations {
		if m.Version != i+1 {
			t.Errorf("migrations[%d] is version %d, want %d", i, m.Version, i+1)
		}
		if len(m.Statements) == 0 || m.Name == "" {
			t.Errorf("migration %d has no name or no statements", m.Version)
		}
	}
	if SchemaVersion != len(migrations) {
		t.Errorf("SchemaVersion %d, %d migrations", SchemaVersion, len(migrations))
	}
}

func TestMigrateCreatesTheSchemaOnceThenDoesNothing(t *testing.T) {
	p := pool(t, freshDB(t))
	ctx := context.Background()
	if v, err := CurrentSchemaVersion(ctx, p); err != nil || v != 0 {
		t.Fatalf("empty database: version %d, %v; want 0", v, err)
	}
	for i, wantFrom := range []int{0, SchemaVersion} {
		from, err := Migrate(ctx, p)
		if err != nil || from != wantFrom {
			t.Fatalf("Migrate #%d = %d, %v; want from %d", i+1, from, err, wantFrom)
		}
	}
	if v, err := CurrentSchemaVersion(ctx, p); err != nil || v != SchemaVersion {
		t.Errorf("version %d, %v; want %d", v, err, SchemaVersion)
	}
	var rows int
	if err := p.QueryRow(ctx, "SELECT count(*) FROM lease").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("lease rows %d, %v; want the one row", rows, err)
	}
}

func TestMigrateAppliesOnlyTheNewMigrations(t *testing.T) {
	p := pool(t, freshDB(t))
	ctx := context.Background()
	v1 := []migration{{Version: 1, Name: "one", Statements: []string{"CREATE TABLE a (x int)"}}}
	v2 := append(v1, migration{Version: 2, Name: "two", Statements: []string{
		"CREATE TABLE b (x int)", "INSERT INTO b VALUES (1)"}})
	if from, err := migrate(ctx, p, v1); err != nil || from != 0 {
		t.Fatalf("to 1: from %d, %v", from, err)
	}
	// Migration 1 again would fail (a exists): only 2 may run.
	if from, err := migrate(ctx, p, v2); err != nil || from != 1 {
		t.Fatalf("to 2: from %d, %v", from, err)
	}
	var names []string
	rows, err := p.Query(ctx, "SELECT name FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if fmt.Sprint(names) != "[one two]" {
		t.Errorf("schema_version names %v, want [one two]", names)
	}
}

func TestMigrateRollsBackAFailedMigration(t *testing.T) {
	p := pool(t, freshDB(t))
	ctx := context.Background()
	bad := []migration{{Version: 1, Name: "bad", Statements: []string{"CREATE TABLE a (x int)", "NOT SQL"}}}
	if _, err := migrate(ctx, p, bad); err == nil {
		t.Fatal("a failing statement migrated")
	}
	if v, err := CurrentSchemaVersion(ctx, p); err != nil || v != 0 {
		t.Errorf("after a failed migration: version %d, %v; want 0 (nothing applied)", v, err)
	}
}

func TestMigrateRefusesANewerSchema(t *testing.T) {
	p, _ := migrated(t)
	ctx := context.Background()
	if _, err := p.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES (7, 'from the future')"); err != nil {
		t.Fatal(err)
	}
	_, err := Migrate(ctx, p)
	var newer *ErrSchemaNewer
	if !errors.As(err, &newer) || newer.Database != 7 || newer.Known != SchemaVersion {
		t.Fatalf("Migrate = %v, want *ErrSchemaNewer{7, %d}", err, SchemaVersion)
	}
	want := fmt.Sprintf("database schema 7 was written by a newer amtriage; this one reads up to %d", SchemaVersion)
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// Replicas start together: every one must migrate or find the schema done,
// none may fail on the others' half-made tables.
func TestConcurrentMigrationsAllSucceedOnce(t *testing.T) {
	dsn := freshDB(t)
	const replicas = 6
	// A slow migration widens the window in which unserialised migrations
	// would collide on CREATE TABLE and on schema_version's key.
	ms := append([]migration(nil), migrations...)
	ms = append(ms, migration{Version: len(ms) + 1, Name: "slow", Statements: []string{
		"SELECT pg_sleep(0.2)", "CREATE TABLE slow (x int)"}})
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		pools[i] = pool(t, dsn)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	froms := make([]int, replicas)
	errs := make([]error, replicas)
	for i := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			froms[i], errs[i] = migrate(context.Background(), pools[i], ms)
		}()
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
		if froms[i] == 0 {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d replicas found an empty database (froms %v), want exactly 1", fresh, froms)
	}
	var n int
	if err := pools[0].QueryRow(context.Background(), "SELECT count(*) FROM schema_version").Scan(&n); err != nil || n != len(ms) {
		t.Errorf("schema_version rows %d, %v; want %d", n, err, len(ms))
	}
}
