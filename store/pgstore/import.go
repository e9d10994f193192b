package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/store"
)

// ImportSource is a store to copy into PostgreSQL, read as it is stored:
// records are the bytes of store's codecs, which both backends keep, so
// they are copied as they are (store/boltstore's Export).
type ImportSource interface {
	// Sequences: the last inbox sequence folded into the state, and the
	// last one handed out.
	Sequences() (processed, appended uint64)
	Incidents(f func(id string, record []byte) error) error
	Alerts(f func(incidentID, key string, record []byte) error) error
	Tombstones(f func(key string, record []byte) error) error
	Heartbeats(f func(url string, at time.Time) error) error
	ReceiverStates(f func(receiver, incidentID string, state []byte) error) error
	// Outbox: each receiver's queue in order.
	Outbox(f func(receiver string, seq uint64, incidentID string, next, enqueued time.Time, body []byte) error) error
	// DeadLetters: oldest first, with their ids and payloads.
	DeadLetters(f func(d *store.DeadLetter) error) error
	Evidence(f func(incidentID string, record []byte) error) error
	EvidencePNGs(f func(incidentID string, panel int64, png []byte) error) error
	// Inbox: the entries after seq, oldest first.
	Inbox(after uint64, f func(store.InboxEntry) error) error
}

// ImportCounts is what Import copied.
type ImportCounts struct {
	Incidents, Alerts, Tombstones, Heartbeats int
	ReceiverStates                            map[string]int // by receiver
	Outbox                                    map[string]int // queued events by receiver
	DeadLetters                               int
	Evidence, EvidencePNGs                    int
	// Inbox is the entries acknowledged and not yet processed; LastProcessed
	// the last sequence folded into the state; NextInboxSeq the number the
	// next webhook gets.
	Inbox         int
	LastProcessed uint64
	NextInboxSeq  uint64
}

// NotEmptyError is a database that already holds state: Import copies
// into an empty one only, never merges.
type NotEmptyError struct {
	Found []string // "3 incidents", "12 inbox entries", …
}

func (e *NotEmptyError) Error() string {
	return fmt.Sprintf("the database already holds amtriage state (%s): store migrate copies into an empty database only", strings.Join(e.Found, ", "))
}

// LeaseHeldError is a database whose leader lease another holder has not
// let expire: an amtriage runs on it.
type LeaseHeldError struct {
	Holder    string
	ExpiresAt time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("amtriage %q holds the leader lease of this database (until %s): stop every amtriage using it first",
		e.Holder, e.ExpiresAt.UTC().Format(time.RFC3339))
}

// importLeaseTTL is how long the lease Import takes lasts. While the copy
// runs, its transaction holds the lease row (Fence), so no replica takes
// over whatever the expiry; the TTL only bounds how long a copy that died
// keeps replicas waiting.
const importLeaseTTL = 30 * time.Second

// copyChunk bounds the rows (and bytes) buffered for one COPY.
const (
	copyChunkRows  = 1000
	copyChunkBytes = 8 << 20
)

// Import copies src into the database behind db, in one transaction under
// the leader lease: all of it or nothing, and no replica processes a state
// half copied. It brings the schema up to date first. It refuses a
// database that already holds state (*NotEmptyError) or whose lease
// another holder has (*LeaseHeldError). Sequences are kept (inbox entries,
// queued events, dead letters) and the counters set above them, so that
// new inbox entries, events and dead letters are numbered after the
// copied ones. Errors are not scrubbed: the caller names the database.
func Import(ctx context.Context, db DB, src ImportSource) (*ImportCounts, error) {
	if _, err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	holder := importHolder()
	epoch, ok, err := TryAcquire(ctx, db, holder, importLeaseTTL)
	if err != nil {
		return nil, err
	}
	if !ok {
		l, err := ReadLease(ctx, db)
		if err != nil {
			return nil, err
		}
		return nil, &LeaseHeldError{Holder: l.Holder, ExpiresAt: l.ExpiresAt}
	}
	defer func() {
		// Released at once, so a replica started meanwhile leads now; on a
		// cancelled ctx too.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = Release(rctx, db, holder, epoch) // unreleased, it expires in importLeaseTTL
	}()
	var counts *ImportCounts
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := Fence(ctx, tx, epoch); err != nil {
			return err
		}
		if err := refuseState(ctx, tx); err != nil {
			return err
		}
		var err error
		counts, err = copyAll(ctx, tx, src)
		return err
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

func importHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("store-migrate-%s-%d", host, os.Getpid())
}

// refuseState returns *NotEmptyError when any table holds a row.
func refuseState(ctx context.Context, tx pgx.Tx) error {
	tables := []struct{ table, what string }{
		{"incidents", "incidents"}, {"inbox", "inbox entries"}, {"outbox", "outbox entries"},
		{"alerts", "alerts"}, {"tombstones", "tombstones"}, {"heartbeats", "heartbeats"},
		{"receiver_state", "receiver states"}, {"dead_letters", "dead letters"},
		{"evidence", "evidence records"}, {"evidence_png", "evidence PNGs"},
	}
	var found []string
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t.table).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", t.table, err)
		}
		if n > 0 {
			found = append(found, fmt.Sprintf("%d %s", n, t.what))
		}
	}
	if len(found) > 0 {
		return &NotEmptyError{Found: found}
	}
	return nil
}

// copier buffers rows for one table and writes them with COPY, a chunk at
// a time.
type copier struct {
	ctx   context.Context
	tx    pgx.Tx
	table string
	cols  []string
	rows  [][]any
	size  int
	n     int
}

func newCopier(ctx context.Context, tx pgx.Tx, table string, cols ...string) *copier {
	return &copier{ctx: ctx, tx: tx, table: table, cols: cols}
}

// add buffers one row; size is its payload's bytes.
func (c *copier) add(size int, vals ...any) error {
	c.rows = append(c.rows, vals)
	c.size += size
	c.n++
	if len(c.rows) >= copyChunkRows || c.size >= copyChunkBytes {
		return c.flush()
	}
	return nil
}

func (c *copier) flush() error {
	if len(c.rows) == 0 {
		return nil
	}
	// COPY writes identity columns as given (like OVERRIDING SYSTEM VALUE).
	if _, err := c.tx.CopyFrom(c.ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
		return fmt.Errorf("copy %s: %w", c.table, err)
	}
	c.rows, c.size = c.rows[:0], 0
	return nil
}

// copyAll writes every record of src within tx.
func copyAll(ctx context.Context, tx pgx.Tx, src ImportSource) (*ImportCounts, error) {
	counts := &ImportCounts{ReceiverStates: map[string]int{}, Outbox: map[string]int{}}
	processed, appended := src.Sequences()
	counts.LastProcessed, counts.NextInboxSeq = processed, max(appended, processed)+1

	incidents := newCopier(ctx, tx, "incidents", "id", "record")
	if err := src.Incidents(func(id string, v []byte) error { return incidents.add(len(v), id, v) }); err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	alerts := newCopier(ctx, tx, "alerts", "incident_id", "key", "record")
	if err := src.Alerts(func(id, key string, v []byte) error { return alerts.add(len(v), id, []byte(key), v) }); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	tombs := newCopier(ctx, tx, "tombstones", "key", "record")
	if err := src.Tombstones(func(key string, v []byte) error { return tombs.add(len(v), []byte(key), v) }); err != nil {
		return nil, fmt.Errorf("tombstones: %w", err)
	}
	beats := newCopier(ctx, tx, "heartbeats", "url", "at_ns")
	if err := src.Heartbeats(func(url string, at time.Time) error { return beats.add(8, []byte(url), at.UnixNano()) }); err != nil {
		return nil, fmt.Errorf("heartbeats: %w", err)
	}
	rstate := newCopier(ctx, tx, "receiver_state", "receiver", "incident_id", "state")
	if err := src.ReceiverStates(func(r, id string, v []byte) error {
		counts.ReceiverStates[r]++
		return rstate.add(len(v), r, id, v)
	}); err != nil {
		return nil, fmt.Errorf("receiver state: %w", err)
	}
	var maxOutbox int64
	outbox := newCopier(ctx, tx, "outbox", "receiver", "seq", "incident_id", "next_ns", "enqueued_ns", "body")
	if err := src.Outbox(func(r string, seq uint64, id string, next, enqueued time.Time, body []byte) error {
		counts.Outbox[r]++
		maxOutbox = max(maxOutbox, int64(seq))
		return outbox.add(len(body), r, int64(seq), id, unixNano(next), unixNano(enqueued), body)
	}); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var maxDead int64
	dead := newCopier(ctx, tx, "dead_letters", "id", "queue", "at_ns", "meta", "payload")
	if err := src.DeadLetters(func(d *store.DeadLetter) error {
		meta, payload, err := deadLetterRow(d)
		if err != nil {
			return err
		}
		maxDead = max(maxDead, int64(d.ID))
		return dead.add(len(payload)+len(meta), int64(d.ID), d.Queue, d.At.UnixNano(), meta, payload)
	}); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	ev := newCopier(ctx, tx, "evidence", "incident_id", "record")
	if err := src.Evidence(func(id string, v []byte) error { return ev.add(len(v), id, v) }); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	pngs := newCopier(ctx, tx, "evidence_png", "incident_id", "panel", "png")
	if err := src.EvidencePNGs(func(id string, panel int64, png []byte) error { return pngs.add(len(png), id, panel, png) }); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	inbox := newCopier(ctx, tx, "inbox", "seq", "received_ns", "replayed", "body", "kind")
	if err := src.Inbox(processed, func(e store.InboxEntry) error {
		if e.Seq > appended {
			return fmt.Errorf("inbox entry %d is numbered past the inbox's last sequence %d", e.Seq, appended)
		}
		return inbox.add(len(e.Body), int64(e.Seq), e.ReceivedAt.UnixNano(), e.Replayed, e.Body, int16(e.Kind))
	}); err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	for _, c := range []*copier{incidents, alerts, tombs, beats, rstate, outbox, dead, ev, pngs, inbox} {
		if err := c.flush(); err != nil {
			return nil, err
		}
	}
	counts.Incidents, counts.Alerts, counts.Tombstones, counts.Heartbeats = incidents.n, alerts.n, tombs.n, beats.n
	counts.DeadLetters, counts.Evidence, counts.EvidencePNGs, counts.Inbox = dead.n, ev.n, pngs.n, inbox.n

	// The inbox continues above what was handed out; the identities above
	// the copied ids. setval is not undone by a rollback: a failed copy
	// leaves a gap in the numbering, nothing else.
	b := &pgx.Batch{}
	b.Queue(`UPDATE inbox_seq SET seq = $1`, int64(max(appended, processed)))
	b.Queue(`UPDATE progress SET last_inbox_seq = $1`, int64(processed))
	if maxOutbox > 0 {
		b.Queue(`SELECT setval(pg_get_serial_sequence('outbox', 'seq'), $1)`, maxOutbox)
	}
	if maxDead > 0 {
		b.Queue(`SELECT setval(pg_get_serial_sequence('dead_letters', 'id'), $1)`, maxDead)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("set the sequences: %w", err)
	}
	return counts, nil
}

// deadLetterRow is a dead letter as insertDeadLetter stores it.
func deadLetterRow(d *store.DeadLetter) (meta, payload []byte, err error) {
	if d.ID == 0 {
		return nil, nil, errors.New("a dead letter without an id")
	}
	cp := *d
	cp.Bytes = len(cp.Payload)
	meta, err = json.Marshal(&cp)
	if err != nil {
		return nil, nil, fmt.Errorf("dead letter %d: %w", d.ID, err)
	}
	payload = cp.Payload
	if payload == nil {
		payload = []byte{}
	}
	return meta, payload, nil
}
