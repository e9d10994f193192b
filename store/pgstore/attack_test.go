package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/amtriage/amtriage/internal/pgtest"
)

// Found reading Fence and TryAcquire: every state transaction share-locks
// the lease row (FOR KEY SHARE) and a takeover locks it FOR UPDATE, which
// waits for it. A leader whose network goes silent (packets dropped, no
// RST) between its Fence and its COMMIT leaves its backend idle in
// transaction, holding the lock, until the server's TCP keepalive gives up
// (two hours by the kernel's default); nothing sets
// idle_in_transaction_session_timeout or a lock timeout. The lease expires
// but no standby can take it: nobody processes or pages.
func TestAttackASilentLeaderMidTransactionBlocksTheTakeover(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := srv.NewDatabase(t)
	admin := pool(t, dsn)
	if _, err := Migrate(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, srv.Addr())
	aPool := pool(t, pgtest.WithAddr(dsn, proxy.Addr()), WithApplicationSuffix("A"))

	ctx := context.Background()
	opts := fast(t, "A")
	epoch, ok, err := TryAcquire(ctx, aPool, "A", opts.TTL)
	if err != nil || !ok {
		t.Fatalf("A acquires: %v, %v", ok, err)
	}
	tx, err := aPool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before aPool closes, which waits for tx's connection
		proxy.Cut() // frees the stalled backend
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	})
	if err := Fence(ctx, tx, epoch); err != nil { // what every Apply, Ack, Retry does first
		t.Fatal(err)
	}
	proxy.Stall() // A's network goes silent before its COMMIT; A never renews

	j := newJournal()
	startReplica(t, admin, fast(t, "B"), j.lead("B"))
	deadline := time.Now().Add(10 * opts.TTL) // A's lease ran out long before
	for !j.has("B leads") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !j.has("B leads") {
		s, _ := ReadLease(ctx, admin)
		t.Errorf("B never took over a lease that expired %s ago (%+v): A's silent transaction holds the lease row",
			time.Until(s.ExpiresAt).Abs().Round(time.Second), s)
	}
}
