package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DB is what the lease and the schema need of a database handle: a
// *pgxpool.Pool or a *pgx.Conn.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrDeposed means this replica no longer holds the lease: another one took
// it (the epoch moved on), or it expired. A state transaction that gets it
// must roll back; its leader must stop.
var ErrDeposed = errors.New("deposed: the leader lease has a newer epoch or has expired")

// The lease is one row. Its epoch grows by one at every acquisition and
// fences every state write: a transaction carries the epoch its leader was
// given, and Fence refuses it once the epoch has moved on. Expiry is on the
// database's clock (now()), the one clock every replica shares.
var leaseDDL = []string{
	`CREATE TABLE lease (
		id         boolean PRIMARY KEY DEFAULT true CHECK (id),
		holder     text NOT NULL,
		epoch      bigint NOT NULL,
		expires_at timestamptz NOT NULL
	)`,
	`INSERT INTO lease (holder, epoch, expires_at) VALUES ('', 0, '-infinity')`,
}

// TryAcquire takes the lease for holder when it is free, expired, or
// already holder's, for ttl from the database's now(), and returns the new
// epoch (always one more than the last). ok is false when another holder
// has it.
//
// It locks the row FOR UPDATE first, which waits for every transaction
// that Fence let through (FOR KEY SHARE) to commit: the new leader then
// loads a state that includes the old leader's last writes.
func TryAcquire(ctx context.Context, db DB, holder string, ttl time.Duration) (epoch int64, ok bool, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("acquire lease: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var cur string
	var free bool
	err = tx.QueryRow(ctx,
		`SELECT holder, expires_at <= clock_timestamp() FROM lease WHERE id FOR UPDATE`).Scan(&cur, &free)
	if err != nil {
		return 0, false, fmt.Errorf("acquire lease: %w", err)
	}
	if !free && cur != holder {
		return 0, false, nil
	}
	// clock_timestamp, not now(): now() is when this transaction began,
	// perhaps long before the row lock was granted.
	err = tx.QueryRow(ctx,
		`UPDATE lease SET holder = $1, epoch = epoch + 1,
		        expires_at = clock_timestamp() + $2 * interval '1 microsecond'
		  WHERE id RETURNING epoch`, holder, ttl.Microseconds()).Scan(&epoch)
	if err != nil {
		return 0, false, fmt.Errorf("acquire lease: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("acquire lease: commit: %w", err)
	}
	return epoch, true, nil
}

// Renew extends holder's lease at epoch to ttl from the database's now().
// It returns ErrDeposed when the lease has expired or moved on. It does not
// wait for the leader's own fenced transactions (FOR KEY SHARE lets an
// UPDATE of non-key columns through).
func Renew(ctx context.Context, db DB, holder string, epoch int64, ttl time.Duration) error {
	tag, err := db.Exec(ctx,
		`UPDATE lease SET expires_at = clock_timestamp() + $3 * interval '1 microsecond'
		  WHERE id AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()`,
		holder, epoch, ttl.Microseconds())
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrDeposed
	}
	return nil
}

// Release gives up holder's lease at epoch, marking it expired so that a
// successor takes it at once (a rolling update). Releasing a lease that
// has moved on is a no-op.
func Release(ctx context.Context, db DB, holder string, epoch int64) error {
	if _, err := db.Exec(ctx,
		`UPDATE lease SET expires_at = '-infinity' WHERE id AND holder = $1 AND epoch = $2`,
		holder, epoch); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	return nil
}

// Fence checks, inside a state transaction, that epoch is still the
// lease's: ErrDeposed if it moved on. The row stays share-locked until the
// transaction ends, so a takeover waits for it to commit or roll back and
// nothing a deposed leader began can commit after its successor started.
// Every state write calls it first.
//
// Fence looks at the epoch, not the expiry: a lease that has expired but
// not been taken has no other leader to conflict with.
func Fence(ctx context.Context, tx pgx.Tx, epoch int64) error {
	var cur int64
	if err := tx.QueryRow(ctx, `SELECT epoch FROM lease WHERE id FOR KEY SHARE`).Scan(&cur); err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	if cur != epoch {
		return fmt.Errorf("%w (epoch %d, lease at %d)", ErrDeposed, epoch, cur)
	}
	return nil
}

// LeaseState is the lease row, for status pages and tests.
type LeaseState struct {
	Holder    string
	Epoch     int64
	ExpiresAt time.Time // zero when released or never held
	Expired   bool      // on the database's clock
}

// ReadLease returns the lease row as it is now.
func ReadLease(ctx context.Context, db DB) (LeaseState, error) {
	var s LeaseState
	var at pgtype.Timestamptz // -infinity after Release and before the first holder
	err := db.QueryRow(ctx,
		`SELECT holder, epoch, expires_at, expires_at <= clock_timestamp() FROM lease WHERE id`).
		Scan(&s.Holder, &s.Epoch, &at, &s.Expired)
	if err != nil {
		return LeaseState{}, fmt.Errorf("read lease: %w", err)
	}
	if at.InfinityModifier == pgtype.Finite {
		s.ExpiresAt = at.Time
	}
	return s, nil
}
