package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// A dead letter is stored as len(meta) (4) | meta JSON | payload, so a large
// body is neither base64-inflated nor decoded to list the queue.
func encodeDeadLetter(d *store.DeadLetter) ([]byte, error) {
	d.Bytes = len(d.Payload)
	meta, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	v := make([]byte, 4+len(meta)+len(d.Payload))
	binary.BigEndian.PutUint32(v, uint32(len(meta)))
	copy(v[4:], meta)
	copy(v[4+len(meta):], d.Payload)
	return v, nil
}

// decodeDeadLetter reads a record; withPayload copies the payload out too.
// Records written before this format are a bare envelope JSON.
func decodeDeadLetter(k, v []byte, withPayload bool) (*store.DeadLetter, error) {
	d := &store.DeadLetter{}
	if len(v) > 0 && v[0] == '{' {
		var env notify.Envelope
		if err := json.Unmarshal(v, &env); err != nil {
			return nil, err
		}
		at := env.NextAttempt
		if at.IsZero() {
			at = env.Enqueued
		}
		*d = store.DeadLetter{Kind: store.DeadEvent, Queue: env.Receiver, Error: env.LastError, Attempts: env.Attempts,
			At: at, Incident: env.Event.Incident.ID, EventKind: env.Event.Kind, Bytes: len(v)}
		if withPayload {
			d.Payload = append([]byte(nil), v...)
		}
	} else {
		if len(v) < 4 || int(binary.BigEndian.Uint32(v)) > len(v)-4 {
			return nil, fmt.Errorf("dead letter %d: record of %d bytes is truncated", binary.BigEndian.Uint64(k), len(v))
		}
		n := int(binary.BigEndian.Uint32(v))
		if err := json.Unmarshal(v[4:4+n], d); err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if withPayload {
			d.Payload = append([]byte(nil), v[4+n:]...)
		}
	}
	d.ID = binary.BigEndian.Uint64(k)
	return d, nil
}

// putDeadLetter adds d to the queue within tx and sets its ID.
func (s *Store) putDeadLetter(tx *bolt.Tx, d *store.DeadLetter) error {
	dead := tx.Bucket(bucketDead)
	dead.FillPercent = appendFill
	seq, err := dead.NextSequence()
	if err != nil {
		return fmt.Errorf("dead letter sequence: %w", err)
	}
	d.ID = seq
	v, err := encodeDeadLetter(d)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if err := dead.Put(u64(seq), v); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	tx.OnCommit(func() {
		s.deadCount(d.Queue, 1)
		if s.onDeadLetter != nil {
			s.onDeadLetter(d)
		}
	})
	return nil
}

func (s *Store) deadCount(queue string, delta int) {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	s.dead[queue] += delta
	if s.dead[queue] <= 0 {
		delete(s.dead, queue)
	}
}

// countDeadLetters reads the queue's size per queue, once at open.
func (s *Store) countDeadLetters() error {
	counts := map[string]int{}
	err := s.state.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			d, err := decodeDeadLetter(k, v, false)
			if err != nil {
				counts["unreadable"]++
				return nil // counted; listed as unreadable
			}
			counts[d.Queue]++
			return nil
		})
	})
	s.deadMu.Lock()
	s.dead = counts
	s.deadMu.Unlock()
	return err
}

// DeadLetterCounts is the dead-letter queue's size by queue.
func (s *Store) DeadLetterCounts() map[string]int {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	out := make(map[string]int, len(s.dead))
	for q, n := range s.dead {
		out[q] = n
	}
	return out
}

// DeadLetters lists up to limit dead letters, newest first, without their
// payloads, and how many there are in all.
func (s *Store) DeadLetters(limit int) ([]*store.DeadLetter, int, error) {
	var out []*store.DeadLetter
	total := 0
	err := s.state.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDead)
		for _, n := range s.DeadLetterCounts() {
			total += n
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			d, err := decodeDeadLetter(k, v, false)
			if err != nil {
				d = &store.DeadLetter{ID: binary.BigEndian.Uint64(k), Kind: "unreadable", Error: err.Error(), Bytes: len(v)}
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list dead letters: %w", err)
	}
	return out, total, nil
}

// ReadDeadLetter reads one dead letter with its payload.
func (s *Store) ReadDeadLetter(id uint64) (*store.DeadLetter, error) {
	var d *store.DeadLetter
	err := s.state.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDead).Get(u64(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		d, err = decodeDeadLetter(u64(id), v, true)
		return err
	})
	return d, err
}

// RemoveDeadLetter deletes one dead letter (after a replay).
func (s *Store) RemoveDeadLetter(id uint64) error {
	return s.state.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDead)
		v := b.Get(u64(id))
		if v == nil {
			return store.ErrNotFound
		}
		queue := "unreadable"
		if d, err := decodeDeadLetter(u64(id), v, false); err == nil {
			queue = d.Queue
		}
		tx.OnCommit(func() { s.deadCount(queue, -1) })
		if err := b.Delete(u64(id)); err != nil {
			return fmt.Errorf("remove dead letter %d: %w", id, err)
		}
		return nil
	})
}

// ReplayEvent puts ev at the end of the dead letter's receiver's queue and
// removes the dead letter: one transaction, so the event is never in both
// places or in neither.
func (s *Store) ReplayEvent(id uint64, ev *incident.Event) error {
	return s.state.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDead)
		v := b.Get(u64(id))
		if v == nil {
			return store.ErrNotFound
		}
		d, err := decodeDeadLetter(u64(id), v, false)
		if err != nil {
			return fmt.Errorf("dead letter %d: %w", id, err)
		}
		if d.Kind != store.DeadEvent {
			return fmt.Errorf("dead letter %d is a %s, not an event", id, d.Kind)
		}
		if err := s.enqueue(tx, []string{d.Queue}, ev); err != nil {
			return fmt.Errorf("replay dead letter %d: %w", id, err)
		}
		tx.OnCommit(func() { s.deadCount(d.Queue, -1) })
		if err := b.Delete(u64(id)); err != nil {
			return fmt.Errorf("replay dead letter %d: %w", id, err)
		}
		return nil
	})
}

// OldestDeadLetter is when the oldest readable dead letter was given up on;
// zero when there is none (or the queue cannot be read: pruning waits).
func (s *Store) OldestDeadLetter() time.Time {
	var at time.Time
	_ = s.state.View(func(tx *bolt.Tx) error { // reads the mmap: an error is the queue unread, and pruning waits
		c := tx.Bucket(bucketDead).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if d, err := decodeDeadLetter(k, v, false); err == nil {
				at = d.At
				return nil
			}
		}
		return nil
	})
	return at
}

// pruneDeadLetters deletes dead letters given up on before cutoff. Ids grow
// with time, so the scan stops at the first one to keep. A record that
// cannot be read has no date and is kept.
func (s *Store) pruneDeadLetters(tx *bolt.Tx, cutoff time.Time) error {
	b := tx.Bucket(bucketDead)
	var keys [][]byte
	pruned := map[string]int{}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		d, err := decodeDeadLetter(k, v, false)
		if err != nil {
			continue
		}
		if !d.At.Before(cutoff) {
			break
		}
		keys = append(keys, append([]byte(nil), k...))
		pruned[d.Queue]++
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("dead letter %d: %w", binary.BigEndian.Uint64(k), err)
		}
	}
	if len(pruned) > 0 {
		tx.OnCommit(func() {
			for q, n := range pruned {
				s.deadCount(q, -n)
			}
		})
	}
	return nil
}
