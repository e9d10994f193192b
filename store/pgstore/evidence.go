package pgstore

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/store"
)

// PutEvidence stores records in one fenced transaction; stored[i] is false
// when record i's incident is gone or already has evidence.
func (s *Store) PutEvidence(batch []store.EvidenceRecord) ([]bool, error) {
	ctx, cancel := s.op()
	defer cancel()
	stored := make([]bool, len(batch))
	err := s.fenced(ctx, "store evidence", func(tx pgx.Tx) error {
		for i, r := range batch {
			tag, err := tx.Exec(ctx, `INSERT INTO evidence (incident_id, record)
				SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM incidents WHERE id = $1)
				ON CONFLICT (incident_id) DO NOTHING`, r.ID, r.JSON)
			if err != nil {
				return fmt.Errorf("evidence of %s: %w", r.ID, err)
			}
			if tag.RowsAffected() == 0 {
				continue
			}
			for panel, png := range r.PNGs {
				if _, err := tx.Exec(ctx, `INSERT INTO evidence_png (incident_id, panel, png) VALUES ($1, $2, $3)
					ON CONFLICT (incident_id, panel) DO NOTHING`, r.ID, panel, png); err != nil {
					return fmt.Errorf("evidence of %s: %w", r.ID, err)
				}
			}
			stored[i] = true
		}
		return nil
	})
	if err != nil {
		clear(stored)
		return stored, err
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
	return s.value(`SELECT record FROM evidence WHERE incident_id = $1`, id)
}

// EvidencePNG is one panel's stored PNG.
func (s *Store) EvidencePNG(id string, panel int64) ([]byte, bool, error) {
	return s.value(`SELECT png FROM evidence_png WHERE incident_id = $1 AND panel = $2`, id, panel)
}

func (s *Store) value(query string, args ...any) ([]byte, bool, error) {
	ctx, cancel := s.op()
	defer cancel()
	var v []byte
	err := s.pool.QueryRow(ctx, query, args...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap("read evidence", err)
	}
	return v, true, nil
}
