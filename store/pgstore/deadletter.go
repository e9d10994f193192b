package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// insertDeadLetter stores d within tx and sets its ID.
func insertDeadLetter(ctx context.Context, tx pgx.Tx, d *store.DeadLetter) error {
	d.Bytes = len(d.Payload)
	meta, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	var id int64
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	if err := tx.QueryRow(ctx, `INSERT INTO dead_letters (queue, at_ns, meta, payload) VALUES ($1, $2, $3, $4) RETURNING id`,
		d.Queue, d.At.UnixNano(), meta, payload).Scan(&id); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	d.ID = uint64(id)
	return nil
}

func decodeDeadLetter(id int64, meta []byte) (*store.DeadLetter, error) {
	d := &store.DeadLetter{}
	if err := json.Unmarshal(meta, d); err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", id, err)
	}
	d.ID = uint64(id)
	return d, nil
}

// OnDeadLetter sets f to be told of every dead letter once it is stored;
// nil tells no one (a pointer to a nil f would panic after the commit).
func (s *Store) OnDeadLetter(f func(*store.DeadLetter)) {
	if f == nil {
		s.onDeadLetter.Store(nil)
		return
	}
	s.onDeadLetter.Store(&f)
}

// DeadLetterCounts is the number of dead letters by queue (every replica
// reads it for the gauge).
func (s *Store) DeadLetterCounts() map[string]int {
	ctx, cancel := s.op()
	defer cancel()
	out := map[string]int{}
	rows, err := s.pool.Query(ctx, `SELECT queue, count(*) FROM dead_letters GROUP BY queue`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var n int
		if rows.Scan(&q, &n) == nil {
			out[q] = n
		}
	}
	return out
}

// DeadLetters lists up to limit dead letters, newest first, without their
// payloads, and how many there are in all.
func (s *Store) DeadLetters(limit int) ([]*store.DeadLetter, int, error) {
	ctx, cancel := s.op()
	defer cancel()
	var total int
	var out []*store.DeadLetter
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM dead_letters`).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, meta FROM dead_letters ORDER BY id DESC LIMIT $1`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var meta []byte
			if err := rows.Scan(&id, &meta); err != nil {
				return err
			}
			d, err := decodeDeadLetter(id, meta)
			if err != nil {
				d = &store.DeadLetter{ID: uint64(id), Kind: "unreadable", Error: err.Error(), Bytes: len(meta)}
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, s.wrap("list dead letters", err)
	}
	return out, total, nil
}

// ReadDeadLetter reads one dead letter with its payload.
func (s *Store) ReadDeadLetter(id uint64) (*store.DeadLetter, error) {
	ctx, cancel := s.op()
	defer cancel()
	var meta, payload []byte
	err := s.pool.QueryRow(ctx, `SELECT meta, payload FROM dead_letters WHERE id = $1`, int64(id)).Scan(&meta, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("read dead letter %d", id), err)
	}
	d, err := decodeDeadLetter(int64(id), meta)
	if err != nil {
		return nil, err
	}
	d.Payload = payload
	return d, nil
}

// RemoveDeadLetter deletes one dead letter (after its notification was
// appended to the inbox again). Any replica may: it changes no incident.
func (s *Store) RemoveDeadLetter(id uint64) error {
	ctx, cancel := s.op()
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM dead_letters WHERE id = $1`, int64(id))
	if err != nil {
		return s.wrap(fmt.Sprintf("remove dead letter %d", id), err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ReplayEvent puts ev at the end of the dead letter's receiver's queue and
// removes the dead letter, in one transaction: the row lock of the DELETE
// makes concurrent replays replay once. Only the leader replays: ev comes
// from its book, and its outbox inserts are serialized (see outboxMu).
func (s *Store) ReplayEvent(id uint64, ev *incident.Event) error {
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	var queue string
	err := s.fenced(ctx, fmt.Sprintf("replay dead letter %d", id), func(tx pgx.Tx) error {
		var meta []byte
		err := tx.QueryRow(ctx, `DELETE FROM dead_letters WHERE id = $1 RETURNING meta`, int64(id)).Scan(&meta)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		d, err := decodeDeadLetter(int64(id), meta)
		if err != nil {
			return err
		}
		if d.Kind != store.DeadEvent {
			return fmt.Errorf("dead letter %d is a %s, not an event", id, d.Kind)
		}
		queue = d.Queue
		b := &pgx.Batch{}
		if err := queueEnvelope(b, &notify.Envelope{Receiver: queue, Event: *ev, Enqueued: ev.At}); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	s.queued(queue, 1)
	return nil
}

// OldestDeadLetter is when the oldest dead letter was given up on; zero
// when there is none or the database cannot say (pruning waits).
func (s *Store) OldestDeadLetter() time.Time {
	ctx, cancel := s.op()
	defer cancel()
	var ns *int64
	if err := s.pool.QueryRow(ctx, `SELECT min(at_ns) FROM dead_letters`).Scan(&ns); err != nil || ns == nil {
		return time.Time{}
	}
	return time.Unix(0, *ns).UTC()
}
