package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/store"
)

// Export is a store opened read-only to be copied elsewhere (`amtriage
// store migrate`): its records as they are stored, byte for byte, in key
// order. While it is open no amtriage can open the store to write (bbolt's
// file lock is shared), so everything it reads is one state.
type Export struct {
	dir          string
	inbox, state *bolt.DB // inbox is nil when inbox.db does not exist
	processed    uint64   // the last inbox sequence folded into state.db
	appended     uint64   // the last inbox sequence handed out
}

// ErrInUse is a store that another process holds open: the amtriage
// running on it must stop before the store is copied.
var ErrInUse = errors.New("stop amtriage first")

// exportLockWait is how long OpenExport waits for a writer's lock: a
// running daemon holds it for good, so waiting longer changes nothing.
const exportLockWait = time.Second

// OpenExport opens the store in dir read-only, refusing one that a running
// amtriage holds (ErrInUse), one that is damaged (*CorruptError), one a
// newer amtriage wrote, and one whose files do not belong together — the
// checks OpenStore makes, without writing anything.
func OpenExport(dir string) (*Export, error) {
	statePath := filepath.Join(dir, StateFile)
	switch fi, err := os.Stat(statePath); {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s holds no amtriage store: %s does not exist", dir, statePath)
	case err != nil:
		return nil, fmt.Errorf("open store: %w", err)
	case fi.Size() == 0:
		return nil, fmt.Errorf("%s holds no amtriage store: %s is empty", dir, statePath)
	}
	e := &Export{dir: dir}
	var err error
	if e.state, err = openReadOnly(statePath); err != nil {
		return nil, err
	}
	inboxPath := filepath.Join(dir, InboxFile)
	if fi, serr := os.Stat(inboxPath); serr == nil && fi.Size() > 0 {
		if e.inbox, err = openReadOnly(inboxPath); err != nil {
			e.Close()
			return nil, err
		}
	}
	if err := e.readSequences(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// openReadOnly takes the file's shared lock first, so that a running
// amtriage is named as such rather than read as damage, then reads the
// whole file once where a panic on a damaged page can be recovered.
func openReadOnly(path string) (*bolt.DB, error) {
	var db *bolt.DB
	err := guarded(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: exportLockWait})
		return err
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%s is open in another process (a running amtriage?): %w", path, ErrInUse)
	}
	var corrupt *CorruptError
	if err != nil && !errors.As(err, &corrupt) {
		err = &CorruptError{Path: path, Err: err}
	}
	if err != nil {
		return nil, err
	}
	if err := readAll(path); err != nil { // a second shared lock: ours lets it in
		db.Close()
		return nil, err
	}
	return db, nil
}

// readSequences reads where the inbox stands and refuses what OpenStore
// refuses: a newer schema, acknowledged notifications that are lost, an
// inbox.db from another store.
func (e *Export) readSequences() error {
	var acked uint64
	err := e.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(BucketMeta)
		if meta == nil {
			return nil
		}
		switch v := meta.Get(KeySchema); {
		case v == nil, string(v) == "1", string(v) == "2", string(v) == SchemaVersion:
		default:
			return fmt.Errorf("state.db has schema %q, this amtriage reads %q (and \"1\", \"2\"): it was written by a newer amtriage", v, SchemaVersion)
		}
		if v := meta.Get(keyLastSeq); len(v) == 8 {
			e.processed = binary.BigEndian.Uint64(v)
		}
		if v := meta.Get(keyAcked); len(v) == 8 {
			acked = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(e.dir, StateFile), err)
	}
	var used uint64
	var first uint64
	if e.inbox != nil {
		err := guarded(filepath.Join(e.dir, InboxFile), func() error {
			return e.inbox.View(func(tx *bolt.Tx) error {
				if b := tx.Bucket(bucketInbox); b != nil {
					used = b.Sequence()
					if k, _ := b.Cursor().First(); len(k) == 8 {
						first = binary.BigEndian.Uint64(k)
					}
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(e.dir, InboxFile), err)
		}
	}
	if acked > max(used, e.processed) {
		return fmt.Errorf("store: %s holds notifications up to %d, but %s records %d acknowledged and %d processed: "+
			"notifications %d to %d, acknowledged and not processed, are lost. Restore %s from a backup before migrating",
			filepath.Join(e.dir, InboxFile), used, StateFile, acked, e.processed, max(used, e.processed)+1, acked, InboxFile)
	}
	if used < e.processed && first != 0 {
		return fmt.Errorf("store: %s holds entries numbered below the %d already processed: it belongs to another state.db", InboxFile, e.processed)
	}
	e.appended = max(used, e.processed)
	return nil
}

// Close releases both files.
func (e *Export) Close() error {
	var errs []error
	if e.inbox != nil {
		errs = append(errs, e.inbox.Close())
	}
	if e.state != nil {
		errs = append(errs, e.state.Close())
	}
	return errors.Join(errs...)
}

// Dir is the store's directory.
func (e *Export) Dir() string { return e.dir }

// Sequences are the last inbox sequence folded into the state and the last
// one the inbox handed out: entries between them are acknowledged and not
// yet processed, and new entries must be numbered above appended.
func (e *Export) Sequences() (processed, appended uint64) { return e.processed, e.appended }

// view reads state.db, a damaged page an error naming the file.
func (e *Export) view(f func(tx *bolt.Tx) error) error {
	return readGuarded(filepath.Join(e.dir, StateFile), func() error { return e.state.View(f) })
}

// callerPanic is a panic in the caller's function, which runs inside a
// read: it is the caller's bug, not a damaged file, and is re-raised.
type callerPanic struct{ v any }

// readGuarded is guarded, except that a panic of the caller's function
// (see call) is raised again rather than blamed on the file: a file
// reported damaged may be thrown away.
func readGuarded(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if p, ok := r.(callerPanic); ok {
				panic(p.v)
			}
			err = &CorruptError{Path: path, Err: fmt.Errorf("%v", r)}
		}
	}()
	return f()
}

// call runs the caller's function, marking its panics (see readGuarded).
func call(f func() error) error {
	defer func() {
		if r := recover(); r != nil {
			panic(callerPanic{r})
		}
	}()
	return f()
}

// each calls f with a copy of every key and value of the bucket name (none
// when it does not exist): a value is valid only within its transaction.
func (e *Export) each(name []byte, f func(k, v []byte) error) error {
	return e.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil // a nested bucket
			}
			k, v = bytes.Clone(k), bytes.Clone(v)
			return call(func() error { return f(k, v) })
		})
	})
}

// Incidents calls f with every incident record (store.EncodeIncident's).
func (e *Export) Incidents(f func(id string, record []byte) error) error {
	return e.each(bucketIncidents, func(k, v []byte) error { return f(string(k), v) })
}

// Alerts calls f with every alert record (store.EncodeAlert's) and the
// incident it belongs to.
func (e *Export) Alerts(f func(incidentID, key string, record []byte) error) error {
	return e.each(BucketAlerts, func(k, v []byte) error {
		id, key, ok := cutNul(k)
		if !ok {
			return fmt.Errorf("alert record %q has no incident id", k)
		}
		return f(id, key, v)
	})
}

// Tombstones calls f with every tombstone record (JSON of
// incident.Tombstone): the idempotency records of resolved alerts.
func (e *Export) Tombstones(f func(key string, record []byte) error) error {
	return e.each(bucketTombstones, func(k, v []byte) error { return f(string(k), v) })
}

// Heartbeats calls f with when each Alertmanager's last heartbeat arrived.
func (e *Export) Heartbeats(f func(url string, at time.Time) error) error {
	return e.each(bucketHeartbeats, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("heartbeat %q: %d bytes, want 8", k, len(v))
		}
		return f(string(k), time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC())
	})
}

// ReceiverStates calls f with what each receiver remembers of each
// incident (Slack's message ts, Grafana's annotation ids), as JSON.
func (e *Export) ReceiverStates(f func(receiver, incidentID string, state []byte) error) error {
	return e.view(func(tx *bolt.Tx) error {
		rs := tx.Bucket(bucketReceivers)
		if rs == nil {
			return nil
		}
		return rs.ForEachBucket(func(name []byte) error {
			receiver := string(name)
			return rs.Bucket(name).ForEach(func(k, v []byte) error {
				if v == nil {
					return nil
				}
				state := bytes.Clone(v)
				return call(func() error { return f(receiver, string(k), state) })
			})
		})
	})
}

// Outbox calls f with every queued event, receiver by receiver, each
// receiver's in queue order: its sequence, incident, next attempt (zero:
// due now), enqueue time and body (store.EncodeEnvelope's, which holds the
// attempts and the last error).
func (e *Export) Outbox(f func(receiver string, seq uint64, incidentID string, next, enqueued time.Time, body []byte) error) error {
	return e.view(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		if outbox == nil {
			return nil
		}
		return outbox.ForEachBucket(func(name []byte) error {
			receiver := string(name)
			return outbox.Bucket(name).ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("outbox %s: key %x is not a sequence", receiver, k)
				}
				seq := binary.BigEndian.Uint64(k)
				h, err := decodeHeader(v)
				if err != nil {
					return fmt.Errorf("outbox %s entry %d: %w", receiver, seq, err)
				}
				body := bytes.Clone(h.body)
				return call(func() error { return f(receiver, seq, h.incident, h.next, h.enqueued, body) })
			})
		})
	})
}

// DeadLetters calls f with every dead letter, oldest first, with its id and
// payload. A record that cannot be read is an error naming its id.
func (e *Export) DeadLetters(f func(d *store.DeadLetter) error) error {
	return e.each(bucketDead, func(k, v []byte) error {
		d, err := decodeDeadLetter(k, v, true)
		if err != nil {
			return fmt.Errorf("unreadable dead letter (remove it, or restore %s): %w", StateFile, err)
		}
		return f(d)
	})
}

// Evidence calls f with every incident's evidence record (JSON).
func (e *Export) Evidence(f func(incidentID string, record []byte) error) error {
	return e.each(bucketEvidence, func(k, v []byte) error {
		if bytes.IndexByte(k, 0) >= 0 {
			return nil // a PNG: see EvidencePNGs
		}
		return f(string(k), v)
	})
}

// EvidencePNGs calls f with every panel PNG kept with an incident's evidence.
func (e *Export) EvidencePNGs(f func(incidentID string, panel int64, png []byte) error) error {
	return e.each(bucketEvidence, func(k, v []byte) error {
		id, rest, ok := bytes.Cut(k, []byte("\x00png\x00"))
		if !ok {
			return nil // a record: see Evidence
		}
		panel, err := strconv.ParseInt(string(rest), 10, 64)
		if err != nil {
			return fmt.Errorf("evidence PNG key %q: %w", k, err)
		}
		return f(string(id), panel, v)
	})
}

// Inbox calls f with every inbox entry after seq, oldest first: with seq
// the last processed, the notifications acknowledged and not yet folded in.
func (e *Export) Inbox(after uint64, f func(store.InboxEntry) error) error {
	if e.inbox == nil {
		return nil
	}
	return readGuarded(filepath.Join(e.dir, InboxFile), func() error {
		return e.inbox.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketInbox)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
				seq := binary.BigEndian.Uint64(k)
				if len(v) < 8 {
					return fmt.Errorf("inbox entry %d is corrupt (%d bytes)", seq, len(v))
				}
				entry := decodeArrival(binary.BigEndian.Uint64(v))
				entry.Seq, entry.Body = seq, bytes.Clone(v[8:])
				if err := call(func() error { return f(entry) }); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
