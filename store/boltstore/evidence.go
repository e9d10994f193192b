package boltstore

import (
	"bytes"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/amtriage/amtriage/store"
)

// bucketEvidence holds each Sev 1–2 incident's evidence (triage/evidence):
// "<id>" → the JSON record, "<id>\x00png\x00<panel id>" → a PNG. Incident
// ids never hold a NUL. Pruned with the incident.
var bucketEvidence = []byte("evidence")

func evidencePNGKey(id string, panel int64) []byte {
	return []byte(id + "\x00png\x00" + strconv.FormatInt(panel, 10))
}

// PutEvidence stores incidents' evidence records and PNGs in one
// transaction; stored[i] is false (nothing written for it) when record
// i's incident is not in the store (pruned meanwhile) or already has
// evidence.
func (s *Store) PutEvidence(batch []store.EvidenceRecord) ([]bool, error) {
	stored := make([]bool, len(batch))
	err := s.state.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEvidence)
		if err != nil {
			return err
		}
		for i, r := range batch {
			if tx.Bucket(bucketIncidents).Get([]byte(r.ID)) == nil || b.Get([]byte(r.ID)) != nil {
				continue
			}
			if err := b.Put([]byte(r.ID), r.JSON); err != nil {
				return fmt.Errorf("evidence of %s: %w", r.ID, err)
			}
			for panel, png := range r.PNGs {
				if err := b.Put(evidencePNGKey(r.ID, panel), png); err != nil {
					return fmt.Errorf("evidence of %s: %w", r.ID, err)
				}
			}
			stored[i] = true
		}
		return nil
	})
	if err != nil {
		clear(stored)
		return stored, fmt.Errorf("store evidence: %w", err)
	}
	return stored, nil
}

// HasEvidence reports whether the incident's evidence is stored.
func (s *Store) HasEvidence(id string) bool {
	_, ok, _ := s.Evidence(id)
	return ok
}

// Evidence is the incident's stored evidence record.
func (s *Store) Evidence(id string) ([]byte, bool, error) {
	return s.evidenceValue([]byte(id))
}

// EvidencePNG is one panel's stored PNG.
func (s *Store) EvidencePNG(id string, panel int64) ([]byte, bool, error) {
	return s.evidenceValue(evidencePNGKey(id, panel))
}

func (s *Store) evidenceValue(key []byte) ([]byte, bool, error) {
	var out []byte
	err := s.state.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEvidence); b != nil {
			if v := b.Get(key); v != nil {
				out = bytes.Clone(v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("read evidence: %w", err)
	}
	return out, out != nil, nil
}

// deleteEvidence removes a pruned incident's evidence, in its commit.
func deleteEvidence(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketEvidence)
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(id)); err != nil {
		return err
	}
	prefix := []byte(id + "\x00")
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
