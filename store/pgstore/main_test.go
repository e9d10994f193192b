package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/amtriage/amtriage/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// freshDB returns the DSN of a new, empty database on the shared server.
func freshDB(t *testing.T) string {
	t.Helper()
	return pgtest.Shared(t).NewDatabase(t)
}

// pool connects to dsn; closed when the test ends.
func pool(t *testing.T, dsn string, opts ...ConnectOption) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Connect(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}
