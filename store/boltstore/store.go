package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/store"
)

// The store is two bbolt files. inbox.db holds acknowledged webhook bodies
// until they are processed; state.db holds incidents, tombstones and the
// outbox. Two files let intake commits and processing commits fsync in
// parallel; state.db records the last inbox sequence it has folded in, in the
// same transaction as the state change, so processing is exactly-once.
const (
	InboxFile = "inbox.db"
	StateFile = "state.db"
)

var (
	bucketInbox      = []byte("inbox")
	bucketIncidents  = []byte("incidents")
	BucketAlerts     = []byte("alerts")
	bucketTombstones = []byte("tombstones")
	bucketOutbox     = []byte("outbox")
	bucketDead       = []byte("deadletter")
	BucketMeta       = []byte("meta")
	bucketReceivers  = []byte("receivers")
	// bucketHeartbeats: externalURL → when its last heartbeat arrived
	// (unix ns), for the dead man's switch.
	bucketHeartbeats = []byte("heartbeats")
	keyLastSeq       = []byte("last_inbox_seq")
	// keyAcked is the last inbox sequence acknowledged when state.db last
	// committed: with keyLastSeq it tells whether an inbox.db found empty
	// held notifications not yet processed.
	keyAcked  = []byte("acked_inbox_seq")
	KeySchema = []byte("schema")
)

// SchemaVersion "2": alert records leave out their key, fingerprint and
// name, open incidents their decisive alert's reasons, decisions their
// signal lines. "3": alert records name the externalURL and receiver of
// the group that delivered them (the scope of resolution by absence),
// incidents the unit they group by, and heartbeats are kept. "1" and "2"
// stores read as they are and are marked "3", so an older amtriage refuses
// them instead of misreading them: their alerts have a groupKey alone, a
// scope no notification matches, until Alertmanager delivers them again.
const SchemaVersion = "3"

// Store is the durable state of the daemon.
type Store struct {
	inbox    *bolt.DB
	state    *bolt.DB
	inboxSeq atomic.Uint64 // last committed inbox sequence
	// processed is the last sequence folded into state.db; trimmed the last
	// deleted from inbox.db. Appends delete processed entries in their own
	// transaction, so trimming costs no extra fsync while webhooks arrive.
	processed atomic.Uint64
	trimmed   atomic.Uint64

	deadMu sync.Mutex
	dead   map[string]int // dead letters by queue

	depthMu sync.Mutex
	depth   map[string]int // queued envelopes by receiver

	// Acknowledgements not yet written, by receiver (see Ack).
	ackMu      sync.Mutex
	acked      map[string]map[uint64]bool
	ackedSince map[string]time.Time
	// flushing holds acknowledgements being written: until their commit
	// lands, a concurrent Next's snapshot may still see them queued.
	flushing map[string]map[uint64]int // receiver → seq → commits under way

	onDeadLetter   func(*store.DeadLetter) // see OnDeadLetter
	dir, statePath string
	// FaultApply, in tests, fails a state commit before it is written.
	FaultApply atomic.Pointer[func(*store.Commit) error]
}

// Buckets fill their pages to this share when a node splits. bbolt's
// default of half suits random inserts into a large tree; every write here
// is a batch (a commit of a chunk) or an append, which half-full pages made
// twice the size they need to be.
const (
	storeFill  = 0.9
	appendFill = 1.0
)

// wb is a bucket of a write transaction with the store's fill percent.
func wb(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	b.FillPercent = storeFill
	return b
}

// MarkProcessed records that entries up to seq are durable in state.db and
// may be deleted from the inbox.
func (s *Store) MarkProcessed(seq uint64) { s.processed.Store(seq) }

// An inbox value is arrival (unix ns, 8) | body. The arrival's top bit, never
// set for a time before 2262, marks a replayed entry.
const replayedBit = 1 << 63

// actionBit, next to it, marks an action entry (store.EntryAction): an
// arrival before 2262 sets neither.
const actionBit = 1 << 62

func encodeArrival(e *store.InboxEntry) uint64 {
	at := uint64(e.ReceivedAt.UnixNano())
	if e.Replayed {
		at |= replayedBit
	}
	if e.Kind == store.EntryAction {
		at |= actionBit
	}
	return at
}

// decodeArrival is an entry's arrival, replayed mark and kind.
func decodeArrival(at uint64) store.InboxEntry {
	e := store.InboxEntry{
		ReceivedAt: time.Unix(0, int64(at&^(replayedBit|actionBit))).UTC(),
		Replayed:   at&replayedBit != 0,
	}
	if at&actionBit != 0 {
		e.Kind = store.EntryAction
	}
	return e
}

// OpenStore opens (creating if needed) the store under dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	// NoFreelistSync: the freelist is rebuilt on open instead of written on
	// every commit, which halves commit I/O without weakening durability.
	opts := &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
	inbox, err := openFile(filepath.Join(dir, InboxFile), opts)
	if err != nil {
		return nil, err
	}
	var used uint64
	if err := inbox.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketInbox); b != nil {
			used = b.Sequence()
		}
		return nil
	}); err != nil {
		inbox.Close()
		return nil, &CorruptError{Path: filepath.Join(dir, InboxFile), Err: err}
	}
	if err := refuseLostState(dir, used); err != nil {
		inbox.Close()
		return nil, err
	}
	state, err := openFile(filepath.Join(dir, StateFile), opts)
	if err != nil {
		inbox.Close()
		return nil, err
	}
	// Grow the files 4 MiB at a time rather than bbolt's 16: a store is a
	// few MiB until a storm, and its size on disk should say so.
	inbox.AllocSize, state.AllocSize = 4<<20, 4<<20
	s := &Store{inbox: inbox, state: state, dir: dir, statePath: filepath.Join(dir, StateFile)}
	// bbolt rebuilds the freelist on the first write: a damaged page it
	// meets there panics, which guarded turns into an error naming the file.
	err = guarded(filepath.Join(dir, StateFile), func() error {
		if err := s.init(); err != nil {
			return err
		}
		if err := s.alignInbox(); err != nil {
			return err
		}
		if err := s.countDeadLetters(); err != nil {
			return fmt.Errorf("read dead letters: %w", err)
		}
		if err := s.countQueued(); err != nil {
			return fmt.Errorf("read the outbox: %w", err)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// alignInbox keeps inbox sequences ahead of what state.db has processed. If
// inbox.db was deleted or replaced (say, to reclaim space after a storm), new
// entries would otherwise reuse processed sequences and be skipped.
func (s *Store) alignInbox() error {
	var last, acked uint64
	if err := s.state.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(BucketMeta).Get(keyLastSeq); v != nil {
			last = binary.BigEndian.Uint64(v)
		}
		if v := tx.Bucket(BucketMeta).Get(keyAcked); v != nil {
			acked = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read last processed sequence: %w", err)
	}
	if seq := s.inboxSeq.Load(); acked > max(seq, last) {
		from := max(seq, last) + 1
		return fmt.Errorf("store: %s holds notifications up to %d, but %s records %d acknowledged and %d processed: "+
			"notifications %d to %d, acknowledged and not processed, are lost. Restore %s from a backup; to start anew on purpose, move both files aside",
			filepath.Join(s.dir, InboxFile), seq, StateFile, acked, last, from, acked, InboxFile)
	}
	if s.inboxSeq.Load() >= last {
		return nil
	}
	err := s.inbox.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		if k, _ := b.Cursor().First(); k != nil {
			return fmt.Errorf("inbox.db holds entries numbered below the %d already processed: it belongs to another state.db", last)
		}
		return b.SetSequence(last)
	})
	if err != nil {
		return fmt.Errorf("align inbox: %w", err)
	}
	s.inboxSeq.Store(last)
	return nil
}

func (s *Store) init() error {
	if err := s.inbox.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInbox)
		if err == nil {
			s.inboxSeq.Store(b.Sequence())
		}
		return err
	}); err != nil {
		return fmt.Errorf("init inbox: %w", err)
	}
	return s.state.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIncidents, BucketAlerts, bucketTombstones, bucketOutbox, bucketDead, BucketMeta, bucketReceivers, bucketHeartbeats} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("init state bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(BucketMeta)
		switch v := meta.Get(KeySchema); {
		case v == nil, string(v) == "1", string(v) == "2":
			return meta.Put(KeySchema, []byte(SchemaVersion))
		case string(v) != SchemaVersion:
			return fmt.Errorf("state.db has schema %q, this amtriage reads %q (and \"1\", \"2\"): it was written by a newer amtriage", v, SchemaVersion)
		}
		return nil
	})
}

// Close writes the pending acknowledgements and closes both files.
func (s *Store) Close() error {
	return errors.Join(s.FlushAcks(), s.inbox.Close(), s.state.Close())
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// AppendInbox stores bodies in one transaction, so concurrent requests share
// one fsync (group commit), and sets each entry's Seq.
func (s *Store) AppendInbox(entries []*store.InboxEntry) error {
	if len(entries) == 0 {
		return nil // nothing to commit; storing last=0 would rewind InboxSeq
	}
	var last uint64
	upTo := s.processed.Load()
	err := s.inbox.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		b.FillPercent = appendFill
		if err := trim(b, upTo); err != nil {
			return err
		}
		for _, e := range entries {
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("inbox sequence: %w", err)
			}
			e.Seq = seq
			v := make([]byte, 8+len(e.Body))
			binary.BigEndian.PutUint64(v, encodeArrival(e))
			copy(v[8:], e.Body)
			if err := b.Put(u64(seq), v); err != nil {
				return fmt.Errorf("inbox put: %w", err)
			}
			last = seq
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append inbox: %w", err)
	}
	s.inboxSeq.Store(last)
	s.trimmed.Store(upTo)
	return nil
}

// InboxSeq is the sequence of the last committed inbox entry.
func (s *Store) InboxSeq() uint64 { return s.inboxSeq.Load() }

// ReadInbox returns up to limit entries after seq, oldest first, stopping early
// once maxBytes of bodies have been read.
func (s *Store) ReadInbox(after uint64, limit, maxBytes int) ([]store.InboxEntry, error) {
	var out []store.InboxEntry
	err := s.inbox.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketInbox).Cursor()
		size := 0
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit && size < maxBytes; k, v = c.Next() {
			if len(v) < 8 {
				return fmt.Errorf("inbox entry %d is corrupt (%d bytes)", binary.BigEndian.Uint64(k), len(v))
			}
			e := decodeArrival(binary.BigEndian.Uint64(v))
			e.Seq, e.Body = binary.BigEndian.Uint64(k), append([]byte(nil), v[8:]...)
			size += len(e.Body)
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read inbox: %w", err)
	}
	return out, nil
}

// TrimInbox deletes processed entries up to and including seq. The pipeline
// calls it when idle; under load, appends trim as they go.
func (s *Store) TrimInbox(upTo uint64) error {
	if upTo <= s.trimmed.Load() {
		return nil
	}
	err := s.inbox.Update(func(tx *bolt.Tx) error { return trim(tx.Bucket(bucketInbox), upTo) })
	if err != nil {
		return fmt.Errorf("trim inbox: %w", err)
	}
	s.trimmed.Store(upTo)
	return nil
}

func trim(b *bolt.Bucket, upTo uint64) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("trim inbox: %w", err)
		}
	}
	return nil
}

// LoadState reads the persisted incident state. A record that does not
// decode is a damaged state.db.
func (s *Store) LoadState() (*store.LoadedState, error) {
	var ls *store.LoadedState
	err := guarded(s.statePath, func() error {
		var err error
		ls, err = s.loadState()
		if err != nil {
			return &CorruptError{Path: s.statePath, Err: err}
		}
		return nil
	})
	return ls, err
}

func (s *Store) loadState() (*store.LoadedState, error) {
	l := store.NewLoader()
	var last uint64
	err := s.state.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(BucketMeta).Get(keyLastSeq); v != nil {
			last = binary.BigEndian.Uint64(v)
		}
		if err := tx.Bucket(bucketIncidents).ForEach(func(k, v []byte) error { return l.Incident(string(k), v) }); err != nil {
			return err
		}
		if err := tx.Bucket(BucketAlerts).ForEach(func(k, v []byte) error {
			id, key, _ := cutNul(k)
			return l.Alert(id, key, v)
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTombstones).ForEach(func(k, v []byte) error { return l.Tombstone(string(k), v) }); err != nil {
			return err
		}
		return tx.Bucket(bucketHeartbeats).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("heartbeat %q: %d bytes, want 8", k, len(v))
			}
			l.Heartbeat(string(k), time.Unix(0, int64(binary.BigEndian.Uint64(v))))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return l.Done(last), nil
}

func alertKey(incidentID, key string) []byte {
	return []byte(incidentID + "\x00" + key)
}

func cutNul(k []byte) (string, string, bool) {
	for i, c := range k {
		if c == 0 {
			return string(k[:i]), string(k[i+1:]), true
		}
	}
	return string(k), "", false
}

// Apply writes a commit.
func (s *Store) Apply(c *store.Commit) error {
	if fault := s.FaultApply.Load(); fault != nil {
		if err := (*fault)(c); err != nil {
			return permanent(fmt.Errorf("commit state: %w", err))
		}
	}
	err := s.state.Update(func(tx *bolt.Tx) error {
		incs, alerts, tombs := wb(tx, bucketIncidents), wb(tx, BucketAlerts), wb(tx, bucketTombstones)
		for _, ch := range c.Changes {
			for _, inc := range ch.Incidents {
				v, err := store.EncodeIncident(inc)
				if err == nil {
					err = incs.Put([]byte(inc.ID), v)
				}
				if err != nil {
					return fmt.Errorf("incident %s: %w", inc.ID, err)
				}
			}
			for _, ref := range ch.Alerts {
				v, err := store.EncodeAlert(ref.Alert)
				if err == nil {
					err = alerts.Put(alertKey(ref.IncidentID, ref.Alert.Key), v)
				}
				if err != nil {
					return fmt.Errorf("alert %s: %w", ref.Alert.Key, err)
				}
			}
			for _, ref := range ch.DeletedAlerts {
				if err := alerts.Delete(alertKey(ref.IncidentID, ref.Alert.Key)); err != nil {
					return err
				}
			}
			for _, k := range ch.DeletedTombstones {
				if err := tombs.Delete([]byte(k)); err != nil {
					return err
				}
			}
			for k, t := range ch.Tombstones {
				if err := putJSON(tombs, []byte(k), t); err != nil {
					return fmt.Errorf("tombstone %s: %w", k, err)
				}
			}
			for i := range ch.Events {
				if err := s.enqueue(tx, c.ReceiversFor(&ch.Events[i]), &ch.Events[i]); err != nil {
					return err
				}
			}
		}
		receivers := tx.Bucket(bucketReceivers)
		for _, id := range c.PrunedIncidents {
			if err := incs.Delete([]byte(id)); err != nil {
				return err
			}
			// What receivers remembered about it goes too (Slack ts, Grafana id).
			if err := receivers.ForEachBucket(func(name []byte) error {
				return receivers.Bucket(name).Delete([]byte(id))
			}); err != nil {
				return err
			}
			if err := deleteEvidence(tx, id); err != nil {
				return fmt.Errorf("prune evidence of %s: %w", id, err)
			}
		}
		for _, k := range c.PrunedTombstones {
			if err := tombs.Delete([]byte(k)); err != nil {
				return err
			}
		}
		beats := tx.Bucket(bucketHeartbeats)
		for url, at := range c.Heartbeats {
			if err := beats.Put([]byte(url), u64(uint64(at.UnixNano()))); err != nil {
				return fmt.Errorf("heartbeat of %s: %w", url, err)
			}
		}
		for _, url := range c.ForgetHeartbeats {
			if err := beats.Delete([]byte(url)); err != nil {
				return fmt.Errorf("forget heartbeat of %s: %w", url, err)
			}
		}
		for _, d := range c.DeadLetters {
			if err := s.putDeadLetter(tx, d); err != nil {
				return err
			}
		}
		if !c.PruneDeadBefore.IsZero() {
			if err := s.pruneDeadLetters(tx, c.PruneDeadBefore); err != nil {
				return fmt.Errorf("prune dead letters: %w", err)
			}
		}
		meta := tx.Bucket(BucketMeta)
		if err := meta.Put(keyAcked, u64(s.inboxSeq.Load())); err != nil {
			return err
		}
		if c.LastSeq > 0 {
			return meta.Put(keyLastSeq, u64(c.LastSeq))
		}
		return nil
	})
	if err != nil {
		return permanent(fmt.Errorf("commit state: %w", err))
	}
	return nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, buf)
}

// RawState and RawInbox are the bbolt files themselves, for tests that
// damage or rewrite records as an older amtriage wrote them.
func (s *Store) RawState() *bolt.DB { return s.state }

// RawInbox: see RawState.
func (s *Store) RawInbox() *bolt.DB { return s.inbox }

// OnDeadLetter sets f to be told of every dead letter once it is stored.
func (s *Store) OnDeadLetter(f func(*store.DeadLetter)) { s.onDeadLetter = f }

var _ store.Store = (*Store)(nil)

// permanent marks bbolt's refusals of a key or value as store.ErrPermanent:
// the same commit would be refused again.
func permanent(err error) error {
	if errors.Is(err, bolt.ErrKeyTooLarge) || errors.Is(err, bolt.ErrValueTooLarge) || errors.Is(err, bolt.ErrKeyRequired) {
		return fmt.Errorf("%w (%w)", err, store.ErrPermanent)
	}
	return err
}
