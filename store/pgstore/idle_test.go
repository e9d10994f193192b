package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
)

// A leader cut off mid-transaction by a link that drops packets leaves its
// backend idle in a transaction that holds the lease row (Fence's FOR KEY
// SHARE): the database would keep it until TCP gives up, hours later, and
// no standby could take the lease. With WithIdleInTransactionTimeout the
// database ends it, and the standby takes over once the lease expires.
func TestAStalledLeadersOpenTransactionDoesNotHoldTheLease(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := srv.NewDatabase(t)
	admin := pool(t, dsn)
	if _, err := Migrate(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, srv.Addr())
	a := pool(t, pgtest.WithAddr(dsn, proxy.Addr()), WithIdleInTransactionTimeout(time.Second))
	ctx := context.Background()
	epoch, ok, err := TryAcquire(ctx, a, "A", 2*time.Second)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := Fence(ctx, tx, epoch); err != nil {
		t.Fatal(err)
	}
	proxy.Stall() // mid-transaction: the commit never arrives
	defer proxy.Restore()
	waitFor(t, "B takes the expired lease", func() bool {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, ok, _ := TryAcquire(actx, admin, "B", 2*time.Second)
		return ok
	})
}
