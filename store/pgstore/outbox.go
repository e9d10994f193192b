package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// recountEvery: the queues' depth (a gauge) is read from the database this
// often, as replays from other replicas add to it.
const recountEvery = 10 * time.Second

// headPage is how many queued entries Next reads at a time: it stops at
// the first due head, which is nearly always on the first page.
const headPage = 128

// Next implements notify.Queue: the oldest due envelope that heads its
// incident's events, skipping the incidents busy says are in flight. An
// entry that cannot be decoded is moved to the dead letters.
func (s *Store) Next(receiver string, now time.Time, busy func(incident string) bool) (*notify.Envelope, time.Time, notify.QueueStats, error) {
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	var stats notify.QueueStats
	if time.Since(s.countedAt()) > recountEvery {
		if err := s.recount(ctx); err != nil {
			return nil, time.Time{}, stats, err
		}
	}
	s.depthMu.Lock()
	stats.Depth = s.depth[receiver]
	s.depthMu.Unlock()
	var wake time.Time
	heads := map[string]bool{}
	after := int64(0)
	for {
		type head struct {
			seq, next, enqueued int64
			incident            string
		}
		var page []head
		rows, err := s.pool.Query(ctx, `SELECT seq, incident_id, next_ns, enqueued_ns FROM outbox
			WHERE receiver = $1 AND seq > $2 ORDER BY seq LIMIT $3`, receiver, after, headPage)
		if err != nil {
			return nil, time.Time{}, stats, s.wrap("read the outbox of "+receiver, err)
		}
		for rows.Next() {
			var h head
			if err := rows.Scan(&h.seq, &h.incident, &h.next, &h.enqueued); err != nil {
				rows.Close()
				return nil, time.Time{}, stats, s.wrap("read the outbox of "+receiver, err)
			}
			page = append(page, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, time.Time{}, stats, s.wrap("read the outbox of "+receiver, err)
		}
		for _, h := range page {
			after = h.seq
			if stats.Oldest.IsZero() {
				stats.Oldest = fromNano(h.enqueued)
			}
			if heads[h.incident] {
				continue // an earlier event of this incident goes first
			}
			heads[h.incident] = true
			if busy != nil && busy(h.incident) {
				continue
			}
			if next := fromNano(h.next); next.After(now) {
				if wake.IsZero() || next.Before(wake) {
					wake = next
				}
				continue
			}
			env, err := s.envelope(ctx, receiver, h.seq, fromNano(h.enqueued))
			if errors.Is(err, errGone) {
				continue
			}
			if err != nil {
				return nil, time.Time{}, stats, err
			}
			return env, wake, stats, nil
		}
		if len(page) < headPage {
			return nil, wake, stats, nil
		}
	}
}

var errGone = errors.New("outbox entry gone")

// envelope reads one queued envelope; one that does not decode is moved to
// the dead letters, as it was stored, and errGone returned.
func (s *Store) envelope(ctx context.Context, receiver string, seq int64, enqueued time.Time) (*notify.Envelope, error) {
	var body []byte
	var incidentID string
	err := s.pool.QueryRow(ctx, `SELECT body, incident_id FROM outbox WHERE receiver = $1 AND seq = $2`, receiver, seq).Scan(&body, &incidentID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errGone
	}
	if err != nil {
		return nil, s.wrap("read the outbox of "+receiver, err)
	}
	env, derr := store.DecodeEnvelope(body)
	if derr == nil {
		env.Seq, env.Receiver, env.Enqueued = uint64(seq), receiver, enqueued
		return env, nil
	}
	d := &store.DeadLetter{Kind: store.DeadEvent, Queue: receiver, At: time.Now().UTC(), Payload: body, Incident: incidentID,
		Error: fmt.Sprintf("outbox entry %d does not decode: %v", seq, derr)}
	if err := s.moveToDead(ctx, receiver, uint64(seq), d); err != nil {
		return nil, fmt.Errorf("dead-letter undecodable outbox entry %d of %s: %w", seq, receiver, err)
	}
	return nil, errGone
}

// Ack implements notify.Queue.
func (s *Store) Ack(receiver string, seq uint64) error {
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	var deleted int64
	err := s.fenced(ctx, fmt.Sprintf("acknowledge %s event %d", receiver, seq), func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM outbox WHERE receiver = $1 AND seq = $2`, receiver, int64(seq))
		deleted = tag.RowsAffected()
		return err
	})
	if err == nil {
		s.queued(receiver, -int(deleted))
	}
	return err
}

// Retry implements notify.Queue.
func (s *Store) Retry(env *notify.Envelope) error {
	body, err := store.EncodeEnvelope(env)
	if err != nil {
		return fmt.Errorf("outbox %s entry %d: %w", env.Receiver, env.Seq, err)
	}
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	return s.fenced(ctx, fmt.Sprintf("retry %s event %d", env.Receiver, env.Seq), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE outbox SET next_ns = $3, body = $4 WHERE receiver = $1 AND seq = $2`,
			env.Receiver, int64(env.Seq), unixNano(env.NextAttempt), body)
		return err
	})
}

// DeadLetter implements notify.Queue.
func (s *Store) DeadLetter(env *notify.Envelope) error {
	d, err := store.EventDeadLetter(env, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	return s.moveToDead(ctx, env.Receiver, env.Seq, d)
}

// moveToDead deletes an outbox entry and stores d, in one fenced transaction.
func (s *Store) moveToDead(ctx context.Context, receiver string, seq uint64, d *store.DeadLetter) error {
	var deleted int64
	err := s.fenced(ctx, fmt.Sprintf("dead-letter %s event %d", receiver, seq), func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM outbox WHERE receiver = $1 AND seq = $2`, receiver, int64(seq))
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected()
		return insertDeadLetter(ctx, tx, d)
	})
	if err != nil {
		return err
	}
	s.queued(receiver, -int(deleted))
	if f := s.onDeadLetter.Load(); f != nil {
		(*f)(d)
	}
	return nil
}

func (s *Store) queued(receiver string, delta int) {
	s.depthMu.Lock()
	s.depth[receiver] += delta
	s.depthMu.Unlock()
}

func (s *Store) countedAt() time.Time {
	s.depthMu.Lock()
	defer s.depthMu.Unlock()
	return s.counted
}

// recount reads every queue's depth.
func (s *Store) recount(ctx context.Context) error {
	depth, err := s.outboxDepth(ctx)
	if err != nil {
		return err
	}
	s.depthMu.Lock()
	s.depth, s.counted = depth, time.Now()
	s.depthMu.Unlock()
	return nil
}

// OutboxDepth is the number of events queued per receiver.
func (s *Store) OutboxDepth() (map[string]int, error) {
	ctx, cancel := s.leaderOp(opTimeout)
	defer cancel()
	return s.outboxDepth(ctx)
}

func (s *Store) outboxDepth(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	rows, err := s.pool.Query(ctx, `SELECT receiver, count(*) FROM outbox GROUP BY receiver`)
	if err != nil {
		return nil, s.wrap("count the outbox", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		var n int
		if err := rows.Scan(&r, &n); err != nil {
			return nil, s.wrap("count the outbox", err)
		}
		out[r] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("count the outbox", err)
	}
	return out, nil
}
