package triage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/triage/incident"
)

// enqueue fans an event out to every receiver's FIFO inside the state
// transaction that produced it, so an event exists iff its state change does.
func enqueue(outbox *bolt.Bucket, receivers []string, ev *incident.Event) error {
	for _, r := range receivers {
		q, err := outbox.CreateBucketIfNotExists([]byte(r))
		if err != nil {
			return fmt.Errorf("outbox %s: %w", r, err)
		}
		seq, err := q.NextSequence()
		if err != nil {
			return fmt.Errorf("outbox %s sequence: %w", r, err)
		}
		env := notify.Envelope{Receiver: r, Event: *ev, Enqueued: ev.At}
		if err := putJSON(q, u64(seq), &env); err != nil {
			return fmt.Errorf("outbox %s put: %w", r, err)
		}
	}
	return nil
}

// Oldest implements notify.Queue.
func (s *Store) Oldest(receiver string) (*notify.Envelope, error) {
	var env *notify.Envelope
	err := s.state.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketOutbox).Bucket([]byte(receiver))
		if q == nil {
			return nil
		}
		k, v := q.Cursor().First()
		if k == nil {
			return nil
		}
		env = new(notify.Envelope)
		if err := json.Unmarshal(v, env); err != nil {
			return fmt.Errorf("outbox %s entry %d: %w", receiver, binary.BigEndian.Uint64(k), err)
		}
		env.Seq = binary.BigEndian.Uint64(k)
		return nil
	})
	return env, err
}

// Ack implements notify.Queue.
func (s *Store) Ack(receiver string, seq uint64) error {
	return s.state.Update(func(tx *bolt.Tx) error {
		if q := tx.Bucket(bucketOutbox).Bucket([]byte(receiver)); q != nil {
			return q.Delete(u64(seq))
		}
		return nil
	})
}

// Retry implements notify.Queue.
func (s *Store) Retry(env *notify.Envelope) error {
	return s.state.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketOutbox).Bucket([]byte(env.Receiver))
		if q == nil {
			return fmt.Errorf("outbox %s missing", env.Receiver)
		}
		return putJSON(q, u64(env.Seq), env)
	})
}

// DeadLetter implements notify.Queue.
func (s *Store) DeadLetter(env *notify.Envelope) error {
	return s.state.Update(func(tx *bolt.Tx) error {
		if q := tx.Bucket(bucketOutbox).Bucket([]byte(env.Receiver)); q != nil {
			if err := q.Delete(u64(env.Seq)); err != nil {
				return err
			}
		}
		dead := tx.Bucket(bucketDead)
		seq, err := dead.NextSequence()
		if err != nil {
			return err
		}
		return putJSON(dead, u64(seq), env)
	})
}

// OutboxDepth counts queued envelopes per receiver.
func (s *Store) OutboxDepth() (map[string]int, error) {
	out := map[string]int{}
	err := s.state.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEachBucket(func(k []byte) error {
			out[string(k)] = tx.Bucket(bucketOutbox).Bucket(k).Stats().KeyN
			return nil
		})
	})
	return out, err
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
