package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// An outbox value is a fixed header, so a scan can find each incident's
// head and its due time without decoding events, then the envelope as JSON:
//
//	next attempt (unix ns, 8) | enqueued (unix ns, 8) | len(incident id) (2) | incident id | JSON
func encodeEnvelope(env *notify.Envelope) ([]byte, error) {
	body, err := store.EncodeEnvelope(env)
	if err != nil {
		return nil, err
	}
	id := env.Event.Incident.ID
	v := make([]byte, 18+len(id)+len(body))
	binary.BigEndian.PutUint64(v[0:], uint64(unixNano(env.NextAttempt)))
	binary.BigEndian.PutUint64(v[8:], uint64(unixNano(env.Enqueued)))
	binary.BigEndian.PutUint16(v[16:], uint16(len(id)))
	copy(v[18:], id)
	copy(v[18+len(id):], body)
	return v, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

type envelopeHeader struct {
	next, enqueued time.Time
	incident       string
	body           []byte
}

func decodeHeader(v []byte) (envelopeHeader, error) {
	if len(v) < 18 {
		return envelopeHeader{}, fmt.Errorf("outbox entry too short (%d bytes)", len(v))
	}
	n := int(binary.BigEndian.Uint16(v[16:]))
	if len(v) < 18+n {
		return envelopeHeader{}, fmt.Errorf("outbox entry truncated")
	}
	h := envelopeHeader{incident: string(v[18 : 18+n]), body: v[18+n:]}
	if ns := int64(binary.BigEndian.Uint64(v[0:])); ns != 0 {
		h.next = time.Unix(0, ns)
	}
	h.enqueued = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))
	return h, nil
}

// enqueue fans an event out to every receiver's queue inside the state
// transaction that produced it, so an event exists iff its state change does.
func (s *Store) enqueue(tx *bolt.Tx, receivers []string, ev *incident.Event) error {
	outbox := tx.Bucket(bucketOutbox)
	for _, r := range receivers {
		q, err := outbox.CreateBucketIfNotExists([]byte(r))
		if err != nil {
			return fmt.Errorf("outbox %s: %w", r, err)
		}
		q.FillPercent = appendFill
		seq, err := q.NextSequence()
		if err != nil {
			return fmt.Errorf("outbox %s sequence: %w", r, err)
		}
		v, err := encodeEnvelope(&notify.Envelope{Receiver: r, Event: *ev, Enqueued: ev.At})
		if err != nil {
			return fmt.Errorf("outbox %s encode: %w", r, err)
		}
		if err := q.Put(u64(seq), v); err != nil {
			return fmt.Errorf("outbox %s put: %w", r, err)
		}
		s.queued(tx, r, 1)
	}
	return nil
}

// queued counts what a transaction adds to (or removes from) a receiver's
// queue, once it has committed: the depth is read on every delivery, and
// counting the bucket's keys walks all of its pages.
func (s *Store) queued(tx *bolt.Tx, receiver string, delta int) {
	tx.OnCommit(func() {
		s.depthMu.Lock()
		s.depth[receiver] += delta
		s.depthMu.Unlock()
	})
}

// countQueued reads each receiver's queue depth, once at open.
func (s *Store) countQueued() error {
	depth := map[string]int{}
	err := s.state.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEachBucket(func(k []byte) error {
			depth[string(k)] = tx.Bucket(bucketOutbox).Bucket(k).Stats().KeyN
			return nil
		})
	})
	s.depthMu.Lock()
	s.depth = depth
	s.depthMu.Unlock()
	return err
}

// Next implements notify.Queue: the oldest due envelope that heads its
// incident's events, skipping the incidents busy says are in flight. An
// entry that cannot be decoded can never be delivered: it is moved to the
// dead letters, and the queue flows on.
func (s *Store) Next(receiver string, now time.Time, busy func(incident string) bool) (*notify.Envelope, time.Time, notify.QueueStats, error) {
	if s.acksDue(receiver) {
		if err := s.flushAcks(receiver); err != nil {
			return nil, time.Time{}, notify.QueueStats{}, err
		}
	}
	for {
		env, wake, stats, bad, err := s.next(receiver, now, s.pendingAcks(receiver), busy)
		if err == nil && bad == nil && env == nil && s.hasPendingAcks(receiver) {
			// Nothing to deliver now: write the acknowledgements down.
			if err := s.flushAcks(receiver); err != nil {
				return nil, time.Time{}, stats, err
			}
			continue
		}
		if err != nil || bad == nil {
			return env, wake, stats, err
		}
		if err := s.deadLetterRaw(receiver, bad); err != nil {
			return nil, time.Time{}, stats, err
		}
	}
}

// undecodable is an outbox entry that does not decode.
type undecodable struct {
	seq uint64
	raw []byte
	err error
}

func (s *Store) next(receiver string, now time.Time, acked map[uint64]bool, busy func(string) bool) (env *notify.Envelope, wake time.Time, stats notify.QueueStats, bad *undecodable, err error) {
	err = s.state.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketOutbox).Bucket([]byte(receiver))
		if q == nil {
			return nil
		}
		stats.Depth = s.queueDepth(receiver)
		heads := map[string]bool{}
		c := q.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if acked[seq] {
				continue // delivered; its deletion is not written yet
			}
			h, err := decodeHeader(v)
			if err != nil {
				bad = &undecodable{seq: seq, raw: append([]byte(nil), v...), err: err}
				return nil
			}
			if stats.Oldest.IsZero() {
				stats.Oldest = h.enqueued
			}
			if heads[h.incident] {
				continue // an earlier event of this incident goes first
			}
			heads[h.incident] = true
			if busy != nil && busy(h.incident) {
				continue // its event in flight goes first; it wakes the deliverer when done
			}
			if h.next.After(now) {
				if wake.IsZero() || h.next.Before(wake) {
					wake = h.next
				}
				continue
			}
			e, err := store.DecodeEnvelope(h.body)
			if err != nil {
				bad = &undecodable{seq: seq, raw: append([]byte(nil), v...), err: err}
				return nil
			}
			e.Seq, e.Receiver, e.Enqueued = seq, receiver, h.enqueued
			env = e
			return nil
		}
		return nil
	})
	return env, wake, stats, bad, err
}

// deadLetterRaw moves an undecodable outbox entry to the dead letters, as
// it was stored.
func (s *Store) deadLetterRaw(receiver string, bad *undecodable) error {
	err := s.state.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketOutbox).Bucket([]byte(receiver))
		if q == nil || q.Get(u64(bad.seq)) == nil {
			return nil // gone meanwhile
		}
		if err := q.Delete(u64(bad.seq)); err != nil {
			return err
		}
		s.queued(tx, receiver, -1)
		d := &store.DeadLetter{Kind: store.DeadEvent, Queue: receiver, Attempts: 0, At: time.Now().UTC(), Payload: bad.raw,
			Error: fmt.Sprintf("outbox entry %d does not decode: %v", bad.seq, bad.err)}
		if h, err := decodeHeader(bad.raw); err == nil {
			d.Incident = h.incident
		}
		return s.putDeadLetter(tx, d)
	})
	if err != nil {
		return fmt.Errorf("dead-letter undecodable outbox entry %d of %s: %w", bad.seq, receiver, err)
	}
	return nil
}

// Acknowledgements are written in batches: a commit (and its fsync) for
// each delivered event bounded a receiver at a thousand events a second and
// held the write lock against processing. An acknowledged envelope is
// skipped until its batch is written: at most ackBatch of them, or those of
// the last ackDelay, or all once nothing is due. A crash before a batch is
// written delivers its envelopes again: delivery is at least once.
const (
	ackBatch = 64
	ackDelay = 20 * time.Millisecond
)

// Ack implements notify.Queue.
func (s *Store) Ack(receiver string, seq uint64) error {
	s.ackMu.Lock()
	if s.acked == nil {
		s.acked, s.ackedSince = map[string]map[uint64]bool{}, map[string]time.Time{}
	}
	set := s.acked[receiver]
	if set == nil {
		set = map[uint64]bool{}
		s.acked[receiver] = set
		s.ackedSince[receiver] = time.Now()
	}
	set[seq] = true
	full := len(set) >= ackBatch
	s.ackMu.Unlock()
	if full {
		return s.flushAcks(receiver)
	}
	return nil
}

func (s *Store) acksDue(receiver string) bool {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return len(s.acked[receiver]) > 0 && time.Since(s.ackedSince[receiver]) >= ackDelay
}

func (s *Store) hasPendingAcks(receiver string) bool {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return len(s.acked[receiver]) > 0
}

// pendingAcks is a copy of the receiver's acknowledgements not yet written,
// including those whose commit is under way.
func (s *Store) pendingAcks(receiver string) map[uint64]bool {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if len(s.acked[receiver]) == 0 && len(s.flushing[receiver]) == 0 {
		return nil
	}
	out := maps.Clone(s.acked[receiver])
	if out == nil {
		out = map[uint64]bool{}
	}
	for seq := range s.flushing[receiver] {
		out[seq] = true
	}
	return out
}

// flushAcks writes the receiver's pending acknowledgements in one commit.
// They stay visible to pendingAcks until the commit has landed: a Next that
// read the queue before it would otherwise hand out a delivered event again.
func (s *Store) flushAcks(receiver string) error {
	s.ackMu.Lock()
	set := s.acked[receiver]
	delete(s.acked, receiver)
	delete(s.ackedSince, receiver)
	if len(set) > 0 {
		if s.flushing == nil {
			s.flushing = map[string]map[uint64]int{}
		}
		if s.flushing[receiver] == nil {
			s.flushing[receiver] = map[uint64]int{}
		}
		for seq := range set {
			s.flushing[receiver][seq]++
		}
	}
	s.ackMu.Unlock()
	if len(set) == 0 {
		return nil
	}
	defer func() {
		s.ackMu.Lock()
		defer s.ackMu.Unlock()
		f := s.flushing[receiver]
		for seq := range set {
			if f[seq]--; f[seq] <= 0 {
				delete(f, seq)
			}
		}
		if len(f) == 0 {
			delete(s.flushing, receiver)
		}
	}()
	err := s.state.Update(func(tx *bolt.Tx) error {
		for seq := range set {
			if err := s.dequeue(tx, receiver, seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.ackMu.Lock() // keep them for the next try
		if s.acked[receiver] == nil {
			s.acked[receiver], s.ackedSince[receiver] = map[uint64]bool{}, time.Now()
		}
		for seq := range set {
			s.acked[receiver][seq] = true
		}
		s.ackMu.Unlock()
		return fmt.Errorf("acknowledge %d %s events: %w", len(set), receiver, err)
	}
	return nil
}

// FlushAcks writes every receiver's pending acknowledgements.
func (s *Store) FlushAcks() error {
	s.ackMu.Lock()
	receivers := slices.Collect(maps.Keys(s.acked))
	s.ackMu.Unlock()
	var errs []error
	for _, r := range receivers {
		errs = append(errs, s.flushAcks(r))
	}
	return errors.Join(errs...)
}

// dequeue deletes one envelope, if it is still queued.
func (s *Store) dequeue(tx *bolt.Tx, receiver string, seq uint64) error {
	q := tx.Bucket(bucketOutbox).Bucket([]byte(receiver))
	if q == nil || q.Get(u64(seq)) == nil {
		return nil
	}
	s.queued(tx, receiver, -1)
	if err := q.Delete(u64(seq)); err != nil {
		return fmt.Errorf("outbox %s entry %d: %w", receiver, seq, err)
	}
	return nil
}

// Retry implements notify.Queue.
func (s *Store) Retry(env *notify.Envelope) error {
	return s.state.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketOutbox).Bucket([]byte(env.Receiver))
		if q == nil {
			return fmt.Errorf("outbox %s missing", env.Receiver)
		}
		v, err := encodeEnvelope(env)
		if err != nil {
			return fmt.Errorf("outbox %s entry %d: %w", env.Receiver, env.Seq, err)
		}
		return q.Put(u64(env.Seq), v)
	})
}

// DeadLetter implements notify.Queue.
func (s *Store) DeadLetter(env *notify.Envelope) error {
	d, err := store.EventDeadLetter(env, time.Now())
	if err != nil {
		return err
	}
	return s.state.Update(func(tx *bolt.Tx) error {
		if err := s.dequeue(tx, env.Receiver, env.Seq); err != nil {
			return err
		}
		return s.putDeadLetter(tx, d)
	})
}

// OutboxDepth is the number of envelopes waiting per receiver (those
// delivered, whose acknowledgement is not written yet, do not wait).
func (s *Store) OutboxDepth() (map[string]int, error) {
	s.depthMu.Lock()
	out := make(map[string]int, len(s.depth))
	for r, n := range s.depth {
		out[r] = n
	}
	s.depthMu.Unlock()
	s.ackMu.Lock()
	for r, set := range s.acked {
		out[r] -= len(set)
	}
	s.ackMu.Unlock()
	return out, nil
}

func (s *Store) queueDepth(receiver string) int {
	s.depthMu.Lock()
	n := s.depth[receiver]
	s.depthMu.Unlock()
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return n - len(s.acked[receiver])
}

// LoadReceiverState implements notify.ReceiverState.
func (s *Store) LoadReceiverState(receiver, incidentID string, v any) (bool, error) {
	found := false
	err := s.state.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReceivers).Bucket([]byte(receiver))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(incidentID))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return false, fmt.Errorf("load %s state of %s: %w", receiver, incidentID, err)
	}
	return found, nil
}

// SaveReceiverState implements notify.ReceiverState.
func (s *Store) SaveReceiverState(receiver, incidentID string, v any) error {
	err := s.state.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketReceivers).CreateBucketIfNotExists([]byte(receiver))
		if err != nil {
			return err
		}
		return putJSON(b, []byte(incidentID), v)
	})
	if err != nil {
		return fmt.Errorf("save %s state of %s: %w", receiver, incidentID, err)
	}
	return nil
}

var _ notify.ReceiverState = (*Store)(nil)
