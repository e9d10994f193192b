package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

const longTTL = time.Hour // a lease that cannot expire during a test

func mustAcquire(t *testing.T, db DB, holder string, ttl time.Duration) int64 {
	t.Helper()
	epoch, ok, err := TryAcquire(context.Background(), db, holder, ttl)
	if err != nil || !ok {
		t.Fatalf("TryAcquire(%s) = %d, %v, %v; want it taken", holder, epoch, ok, err)
	}
	return epoch
}

// fenced runs one state write fenced at epoch and returns Fence's verdict.
func fenced(ctx context.Context, p *pgxpool.Pool, epoch int64) error {
	tx, err := p.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := Fence(ctx, tx, epoch); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS w (epoch bigint)"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO w VALUES ($1)", epoch); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func TestLeaseLifecycle(t *testing.T) {
	p, _ := migrated(t)
	ctx := context.Background()

	a := mustAcquire(t, p, "a", longTTL)
	if a != 1 {
		t.Errorf("first epoch %d, want 1", a)
	}
	if _, ok, err := TryAcquire(ctx, p, "b", longTTL); ok || err != nil {
		t.Fatalf("b took a held lease (ok=%v err=%v)", ok, err)
	}
	if err := Renew(ctx, p, "a", a, longTTL); err != nil {
		t.Fatalf("a renews: %v", err)
	}
	if err := fenced(ctx, p, a); err != nil {
		t.Fatalf("a's fenced write: %v", err)
	}
	if err := Release(ctx, p, "a", a); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadLease(ctx, p); err != nil || !s.Expired || s.Holder != "a" {
		t.Fatalf("after release: %+v, %v; want a's lease expired", s, err)
	}
	b := mustAcquire(t, p, "b", longTTL)
	if b != a+1 {
		t.Errorf("b's epoch %d, want %d", b, a+1)
	}

	// a is deposed: it can neither renew nor write, nor release b's lease.
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"renew", Renew(ctx, p, "a", a, longTTL)},
		{"fenced write", fenced(ctx, p, a)},
	} {
		if !errors.Is(tt.err, ErrDeposed) {
			t.Errorf("deposed a's %s: %v, want ErrDeposed", tt.name, tt.err)
		}
	}
	if err := Release(ctx, p, "a", a); err != nil {
		t.Fatal(err)
	}
	if s, _ := ReadLease(ctx, p); s.Expired || s.Holder != "b" || s.Epoch != b {
		t.Errorf("a's late release touched b's lease: %+v", s)
	}
	if err := fenced(ctx, p, b); err != nil {
		t.Errorf("b's fenced write: %v", err)
	}
}

func TestAnExpiredLeaseIsTakenAndItsHolderDeposed(t *testing.T) {
	p, _ := migrated(t)
	ctx := context.Background()
	a := mustAcquire(t, p, "a", time.Millisecond)
	for {
		s, err := ReadLease(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if s.Expired {
			break
		}
	}
	// Expired but not taken: a has no rival yet.
	if err := fenced(ctx, p, a); err != nil {
		t.Errorf("write at an expired, untaken epoch: %v", err)
	}
	if err := Renew(ctx, p, "a", a, longTTL); !errors.Is(err, ErrDeposed) {
		t.Errorf("renewing an expired lease: %v, want ErrDeposed (the leader has stopped by then)", err)
	}
	if b := mustAcquire(t, p, "b", longTTL); b != a+1 {
		t.Errorf("b's epoch %d, want %d", b, a+1)
	}
}

func TestTheHolderReacquiresWithANewEpoch(t *testing.T) {
	// A replica that stopped leading (its renewals timed out, though one may
	// have committed) takes its own lease back; the new epoch fences whatever
	// the old term left in flight.
	p, _ := migrated(t)
	a1 := mustAcquire(t, p, "a", longTTL)
	a2 := mustAcquire(t, p, "a", longTTL)
	if a2 != a1+1 {
		t.Errorf("epochs %d then %d, want consecutive", a1, a2)
	}
	if err := fenced(context.Background(), p, a1); !errors.Is(err, ErrDeposed) {
		t.Errorf("write at the old term's epoch: %v, want ErrDeposed", err)
	}
}

// A takeover waits for the fenced transactions of the old leader to end, so
// none commits after the new leader has started; the leader's own renewals
// do not wait for them.
func TestTakeoverWaitsForAFencedTransactionRenewalDoesNot(t *testing.T) {
	_, dsn := migrated(t)
	ctx := context.Background()
	leaderDB := pool(t, dsn, WithApplicationSuffix("leader"))
	rivalDB := pool(t, dsn, WithApplicationSuffix("rival"))
	a := mustAcquire(t, leaderDB, "a", longTTL)

	tx, err := leaderDB.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := Fence(ctx, tx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE w (x int); INSERT INTO w VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := Renew(rctx, leaderDB, "a", a, time.Millisecond); err != nil {
		t.Fatalf("renewal beside an open fenced transaction: %v (it must not wait for it)", err)
	}
	// The lease has now expired (1ms), and the rival tries.
	type result struct {
		epoch int64
		ok    bool
		err   error
	}
	got := make(chan result, 1)
	go func() {
		e, ok, err := TryAcquire(rctx, rivalDB, "b", longTTL)
		got <- result{e, ok, err}
	}()
	waitForLockWait(t, leaderDB, "amtriage-rival")
	select {
	case r := <-got:
		t.Fatalf("takeover went past an open fenced transaction: %+v", r)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the old leader's last write: %v", err)
	}
	r := <-got
	if r.err != nil || !r.ok || r.epoch != a+1 {
		t.Fatalf("takeover after the commit: %+v, want epoch %d", r, a+1)
	}
}

// waitForLockWait returns once a backend of application app waits for a
// lock: the deterministic sign that it is blocked, not slow.
func waitForLockWait(t *testing.T, db DB, app string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var n int
		err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n)
		if err != nil {
			t.Fatalf("no backend of %s waited for a lock: %v", app, err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
