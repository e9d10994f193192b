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
	received := make([]int64, len(entries))
	replayed := make([]bool, len(entries))
	kinds := make([]int16, len(entries))
	bodies := make([][]byte, len(entries))
	for i, e := range entries {
		received[i], replayed[i], kinds[i], bodies[i] = e.ReceivedAt.UnixNano(), e.Replayed, int16(e.Kind), e.Body
		if bodies[i] == nil {
			bodies[i] = []byte{} // pgx sends nil as NULL; bbolt stores it as empty
		}
	}
	// One statement, so one round trip and its own transaction: the
	// counter row's UPDATE holds it until this commits, so appends commit
	// in the order of their numbers (see storeDDL), and NOTIFY is sent at
	// the commit.
	var last int64
	err := s.pool.QueryRow(ctx, appendInboxSQL, len(entries), received, replayed, bodies, inboxChannel, kinds).Scan(&last)
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

const appendInboxSQL = `
WITH counter AS (
	UPDATE inbox_seq SET seq = seq + $1 RETURNING seq
), added AS (
	INSERT INTO inbox (seq, received_ns, replayed, body, kind)
	SELECT (SELECT seq FROM counter) - $1 + t.n, t.received, t.replayed, t.body, t.kind
	  FROM unnest($2::bigint[], $3::boolean[], $4::bytea[], $6::smallint[]) WITH ORDINALITY AS t(received, replayed, body, kind, n)
)
SELECT seq FROM counter, pg_notify($5, seq::text)`

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
		rows, err := s.pool.Query(ctx, `SELECT seq, received_ns, replayed, body, kind FROM inbox WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), page)
		if err != nil {
			return nil, s.wrap("read inbox", err)
		}
		n := 0
		for rows.Next() {
			var seq, ns int64
			var kind int16
			var e store.InboxEntry
			if err := rows.Scan(&seq, &ns, &e.Replayed, &e.Body, &kind); err != nil {
				rows.Close()
				return nil, s.wrap("read inbox", err)
			}
			e.Seq, e.ReceivedAt, e.Kind = uint64(seq), time.Unix(0, ns).UTC(), store.EntryKind(kind)
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
// until ctx ends. Connection failures are retried every second at most
// (poll, if shorter); what was appended meanwhile wakes it once it listens
// again. While it cannot listen (the database away, or a pooler without
// LISTEN) it polls through the pool at each retry, so appends are still
// seen; a failure is reported to OnWatchError when it changes.
func (s *Store) Watch(ctx context.Context, poll time.Duration, wake func()) {
	var last string
	for ctx.Err() == nil {
		err := s.listen(ctx, poll, wake)
		if ctx.Err() != nil {
			return
		}
		if f := s.onWatchError.Load(); f != nil && err != nil && err.Error() != last {
			(*f)(s.wrap("listening for appends (polling meanwhile)", err))
		}
		if err != nil {
			last = err.Error()
		}
		pctx, cancel := s.op()
		_ = s.pollInbox(pctx, s.pool, wake) // an error here is the same outage, reported above
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(min(poll, time.Second)):
		}
	}
}

// OnWatchError sets f to be told when Watch cannot listen, once per
// distinct error.
func (s *Store) OnWatchError(f func(error)) { s.onWatchError.Store(&f) }

// listenStatement subscribes to appends (a variable: tests make it fail).
var listenStatement = "LISTEN " + inboxChannel

// watchPoll is Watch's read of the inbox sequence; its comment tells an
// operator looking at pg_stat_activity which backend listens.
const watchPoll = `SELECT seq FROM inbox_seq -- amtriage: listening for appends`

// pollInbox reads the inbox sequence and wakes if it moved past what this
// replica knew.
func (s *Store) pollInbox(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, wake func()) error {
	before := s.inboxSeq.Load()
	var seq int64
	if err := conn.QueryRow(ctx, watchPoll).Scan(&seq); err != nil {
		return fmt.Errorf("poll the inbox: %w", err)
	}
	s.seenInbox(uint64(seq))
	if uint64(seq) > before {
		wake()
	}
	return nil
}

func (s *Store) listen(ctx context.Context, poll time.Duration, wake func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, listenStatement); err != nil {
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
	// Listening now: an append whose notification came before went unheard.
	if err := s.pollInbox(ctx, conn, wake); err != nil {
		return err
	}
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
			if err := s.pollInbox(ctx, conn, wake); err != nil {
				return err
			}
		default:
			return err
		}
	}
}
