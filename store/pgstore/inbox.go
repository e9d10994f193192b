package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/store"
)

// AppendInbox stores entries in one transaction (the requests a replica
// queued meanwhile: group commit) and sets each entry's Seq. Any replica
// appends; the leader is told through NOTIFY.
func (s *Store) AppendInbox(entries []*store.InboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := s.op()
	defer cancel()
	var last int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The counter row stays locked until commit: appends commit in the
		// order of their numbers (see storeDDL).
		if err := tx.QueryRow(ctx, `UPDATE inbox_seq SET seq = seq + $1 RETURNING seq`, len(entries)).Scan(&last); err != nil {
			return err
		}
		first := last - int64(len(entries)) + 1
		rows := make([][]any, len(entries))
		for i, e := range entries {
			rows[i] = []any{first + int64(i), e.ReceivedAt.UnixNano(), e.Replayed, e.Body}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"inbox"}, []string{"seq", "received_ns", "replayed", "body"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, inboxChannel, strconv.FormatInt(last, 10))
		return err
	})
	if err != nil {
		return s.wrap("append inbox", err)
	}
	first := uint64(last) - uint64(len(entries)) + 1
	for i, e := range entries {
		e.Seq = first + uint64(i)
	}
	s.seenInbox(uint64(last))
	return nil
}

// InboxSeq is the last inbox sequence this replica knows committed: its
// own appends, what it read, and what Watch heard of.
func (s *Store) InboxSeq() uint64 { return s.inboxSeq.Load() }

// ReadInbox returns up to limit entries after seq, oldest first, stopping
// once maxBytes of bodies have been read.
func (s *Store) ReadInbox(after uint64, limit, maxBytes int) ([]store.InboxEntry, error) {
	ctx, cancel := s.leaderOp(opTimeout) // the pipeline reads it to process
	defer cancel()
	var out []store.InboxEntry
	size := 0
	// Pages of 64: a limit of thousands of large bodies is not fetched at
	// once past maxBytes.
	for len(out) < limit && size < maxBytes {
		page := min(64, limit-len(out))
		rows, err := s.pool.Query(ctx, `SELECT seq, received_ns, replayed, body FROM inbox WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), page)
		if err != nil {
			return nil, s.wrap("read inbox", err)
		}
		n := 0
		for rows.Next() {
			var seq, ns int64
			var e store.InboxEntry
			if err := rows.Scan(&seq, &ns, &e.Replayed, &e.Body); err != nil {
				rows.Close()
				return nil, s.wrap("read inbox", err)
			}
			e.Seq, e.ReceivedAt = uint64(seq), time.Unix(0, ns).UTC()
			out = append(out, e)
			after = e.Seq
			size += len(e.Body)
			n++
			if size >= maxBytes {
				break
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap("read inbox", err)
		}
		if n < page {
			break
		}
	}
	if len(out) > 0 {
		s.seenInbox(out[len(out)-1].Seq)
	}
	return out, nil
}

// TrimInbox: Apply deletes the entries it folds in, in its transaction.
func (s *Store) TrimInbox(upTo uint64) error { return nil }

// MarkProcessed: see TrimInbox.
func (s *Store) MarkProcessed(seq uint64) {}

// Watch calls wake whenever an append commits (NOTIFY from any replica),
// and at least every poll (a notification is lost with its connection),
// until ctx ends. Connection failures are retried.
func (s *Store) Watch(ctx context.Context, poll time.Duration, wake func()) {
	for ctx.Err() == nil {
		err := s.listen(ctx, poll, wake)
		if ctx.Err() != nil {
			return
		}
		_ = err // the pool's errors surface in the pipeline and /readyz; retry quietly
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

func (s *Store) listen(ctx context.Context, poll time.Duration, wake func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+inboxChannel); err != nil {
		conn.Conn().Close(ctx) // do not hand a half-listening connection back
		return err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "UNLISTEN *"); err != nil {
			conn.Conn().Close(uctx)
		}
	}()
	for {
		wctx, cancel := context.WithTimeout(ctx, poll)
		n, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if seq, perr := strconv.ParseUint(n.Payload, 10, 64); perr == nil {
				s.seenInbox(seq)
			}
			wake()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			before := s.inboxSeq.Load()
			var seq int64
			if err := conn.QueryRow(ctx, `SELECT seq FROM inbox_seq`).Scan(&seq); err != nil {
				return fmt.Errorf("poll the inbox: %w", err)
			}
			s.seenInbox(uint64(seq))
			if uint64(seq) > before {
				wake()
			}
		default:
			return err
		}
	}
}
