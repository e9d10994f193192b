package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/amtriage/amtriage/store"
)

// ErrNotLeader is a state write on a replica that does not lead: only the
// leader processes and delivers.
var ErrNotLeader = errors.New("not the leader: this replica is a standby")

// opTimeout bounds one store operation: a database that stops answering
// fails the operation (the pipeline retries it) instead of hanging it.
const opTimeout = 15 * time.Second

// inboxChannel is the NOTIFY channel an append signals on, so the leader
// reads new entries at once whichever replica took them.
const inboxChannel = "amtriage_inbox"

// Store is the PostgreSQL implementation of store.Store. Every replica
// appends to the inbox and reads; only the one holding the lease (Lead)
// writes the state, the outbox and receivers' state, each transaction
// fenced by the lease's epoch.
type Store struct {
	pool *pgxpool.Pool
	dsn  string // for scrubbing errors; never printed

	base   context.Context // ends with Close
	cancel context.CancelFunc

	epoch    atomic.Int64                    // the lease epoch this replica leads at; 0: it does not lead
	term     atomic.Pointer[context.Context] // the term Lead was given; nil: none
	inboxSeq atomic.Uint64                   // the last inbox sequence known committed

	depthMu sync.Mutex
	depth   map[string]int // the leader's queued events by receiver
	counted time.Time      // when depth was last read from the database

	onDeadLetter atomic.Pointer[func(*store.DeadLetter)]
	onWatchError atomic.Pointer[func(error)]

	// outboxMu serializes the leader's outbox inserts (Apply, ReplayEvent):
	// an envelope's seq is given at insert, and Next hands out an incident's
	// events in seq order, so they must commit in that order.
	outboxMu sync.Mutex
}

var _ store.Store = (*Store)(nil)

// Open uses a pool whose schema Migrate brings up to date (before the
// store is used: it may be down now). It does not lead until Lead.
func Open(ctx context.Context, pool *pgxpool.Pool, dsn string) (*Store, error) {
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &Store{pool: pool, dsn: dsn, base: base, cancel: cancel, depth: map[string]int{}}, nil
}

// Pool is the store's connection pool (the lease shares it).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Lead makes this replica the writer at epoch (0: none). The queues' depth
// is read again, as the previous leader changed it. When that fails the
// replica does not lead: the caller may try again.
//
// ctx is the term: the leader's own operations (leaderOp) end with it.
func (s *Store) Lead(ctx context.Context, epoch int64) error {
	if epoch == 0 {
		s.epoch.Store(0)
		s.term.Store(nil)
		return nil
	}
	s.term.Store(&ctx)
	if err := s.refreshInboxSeq(ctx); err != nil {
		s.epoch.Store(0)
		s.term.Store(nil)
		return err
	}
	if err := s.recount(ctx); err != nil {
		s.epoch.Store(0)
		s.term.Store(nil)
		return err
	}
	s.epoch.Store(epoch)
	return nil
}

// Epoch is the epoch this replica leads at, 0 when it does not.
func (s *Store) Epoch() int64 { return s.epoch.Load() }

// Close ends the store's operations; the caller closes the pool.
func (s *Store) Close() error {
	s.cancel()
	return nil
}

// Ping checks that the database answers, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

func (s *Store) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, opTimeout)
}

// leaderOp is op for what only the leader does (fenced writes, reading the
// outbox and the inbox): it also ends termGrace after the term does. On a
// link that drops packets the term's work then stops within the lease's
// margin, not at the timeout after a successor has begun.
func (s *Store) leaderOp(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(s.base, timeout)
	if term := s.term.Load(); term != nil {
		stop := context.AfterFunc(*term, func() { time.AfterFunc(termGrace, cancel) })
		return ctx, func() { stop(); cancel() }
	}
	return ctx, cancel
}

// termGrace is how long a term's operations may go on after it ends: the
// acknowledgement of a delivery that has just succeeded still commits (a
// graceful handover repeats nothing), and they are over well within the
// lease's margin (1 s), before a successor can lead.
const termGrace = 300 * time.Millisecond

// wrap names the operation and the database (never the password).
func (s *Store) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("postgres %s: %s: %w", DescribeDSN(s.dsn), what, ScrubError(s.dsn, err))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Data exceptions, integrity violations, program limits: the same
		// statement with the same values fails again.
		switch pgErr.Code[:2] {
		case "22", "23", "54":
			return fmt.Errorf("%w (%w)", err, store.ErrPermanent)
		}
	}
	return err
}

// fenced runs f in a transaction that commits only if this replica still
// holds the lease at its epoch.
func (s *Store) fenced(ctx context.Context, what string, f func(tx pgx.Tx) error) error {
	epoch := s.epoch.Load()
	if epoch == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotLeader)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := Fence(ctx, tx, epoch); err != nil {
			return err
		}
		return f(tx)
	})
	if errors.Is(err, ErrDeposed) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return s.wrap(what, err)
}

func (s *Store) refreshInboxSeq(ctx context.Context) error {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT seq FROM inbox_seq`).Scan(&seq); err != nil {
		return s.wrap("read the inbox sequence", err)
	}
	s.seenInbox(uint64(seq))
	return nil
}

// seenInbox raises the known last inbox sequence to seq.
func (s *Store) seenInbox(seq uint64) {
	for {
		cur := s.inboxSeq.Load()
		if seq <= cur || s.inboxSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// LoadReceiverState implements notify.ReceiverState.
func (s *Store) LoadReceiverState(receiver, incidentID string, v any) (bool, error) {
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT state FROM receiver_state WHERE receiver = $1 AND incident_id = $2`, receiver, incidentID).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap(fmt.Sprintf("load %s state of %s", receiver, incidentID), err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("load %s state of %s: %w", receiver, incidentID, err)
	}
	return true, nil
}

// SaveReceiverState implements notify.ReceiverState.
func (s *Store) SaveReceiverState(receiver, incidentID string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("save %s state of %s: %w", receiver, incidentID, err)
	}
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	return s.fenced(ctx, fmt.Sprintf("save %s state of %s", receiver, incidentID), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO receiver_state (receiver, incident_id, state) VALUES ($1, $2, $3)
			ON CONFLICT (receiver, incident_id) DO UPDATE SET state = excluded.state`, receiver, incidentID, raw)
		return err
	})
}
