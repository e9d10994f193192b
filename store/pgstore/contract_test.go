package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/storetest"
)

// openLeading opens a store on dsn with its own pool and makes it lead as
// holder (taking the lease from a previous term of holder's).
func openLeading(t testing.TB, dsn, holder string) *Store {
	return openLeadingFor(t, dsn, holder, time.Hour)
}

// openLeadingFor is openLeading with a lease of ttl.
func openLeadingFor(t testing.TB, dsn, holder string, ttl time.Duration) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(p.Close)
	if _, err := Migrate(ctx, p); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := Open(ctx, p, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	epoch, ok, err := TryAcquire(ctx, p, holder, ttl)
	if err != nil || !ok {
		t.Fatalf("TryAcquire(%s) = %d, %v, %v", holder, epoch, ok, err)
	}
	// The term lasts the test (ctx is only the setup's deadline).
	if err := s.Lead(context.WithoutCancel(ctx), epoch); err != nil {
		t.Fatalf("lead: %v", err)
	}
	return s
}

// backend opens stores on a fresh database; reopen hands over as a rolling
// update does: the last store releases the lease and closes with its pool,
// and another replica's store, on a new pool, takes the lease and leads.
func backend(t testing.TB) (store.Store, func() store.Store) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	n := 0
	holder := func() string { return fmt.Sprintf("replica-%d", n) }
	cur := openLeading(t, dsn, holder())
	return cur, func() store.Store {
		t.Helper()
		if err := Release(context.Background(), cur.Pool(), holder(), cur.Epoch()); err != nil {
			t.Fatalf("release: %v", err)
		}
		if err := cur.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		cur.Pool().Close()
		n++
		cur = openLeading(t, dsn, holder())
		return cur
	}
}

func TestContract(t *testing.T) { storetest.Run(t, backend) }

func BenchmarkLoadState(b *testing.B) { storetest.BenchmarkLoadState(b, backend) }
