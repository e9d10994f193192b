package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/store"
)

// LoadState reads the incident state in one snapshot (REPEATABLE READ): a
// standby taking over sees everything its predecessor committed.
func (s *Store) LoadState() (*store.LoadedState, error) {
	ctx, cancel := s.leaderOp(2 * opTimeout)
	defer cancel()
	l := store.NewLoader()
	var last int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT last_inbox_seq FROM progress`).Scan(&last); err != nil {
			return fmt.Errorf("progress: %w", err)
		}
		if err := each(ctx, tx, `SELECT id, record FROM incidents`, func(r pgx.Rows) error {
			var id string
			var v []byte
			if err := r.Scan(&id, &v); err != nil {
				return err
			}
			return l.Incident(id, v)
		}); err != nil {
			return err
		}
		if err := each(ctx, tx, `SELECT incident_id, key, record FROM alerts`, func(r pgx.Rows) error {
			var id string
			var key, v []byte
			if err := r.Scan(&id, &key, &v); err != nil {
				return err
			}
			return l.Alert(id, string(key), v)
		}); err != nil {
			return err
		}
		if err := each(ctx, tx, `SELECT key, record FROM tombstones`, func(r pgx.Rows) error {
			var key, v []byte
			if err := r.Scan(&key, &v); err != nil {
				return err
			}
			return l.Tombstone(string(key), v)
		}); err != nil {
			return err
		}
		return each(ctx, tx, `SELECT url, at_ns FROM heartbeats`, func(r pgx.Rows) error {
			var url []byte
			var ns int64
			if err := r.Scan(&url, &ns); err != nil {
				return err
			}
			l.Heartbeat(string(url), time.Unix(0, ns))
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("load state", err)
	}
	return l.Done(uint64(last)), nil
}

// each runs f on every row of query.
func each(ctx context.Context, tx pgx.Tx, query string, f func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Apply writes a commit in one fenced transaction: a replica deposed since
// it read the state writes nothing. The inbox entries it folds in are
// deleted with it.
func (s *Store) Apply(c *store.Commit) error {
	ctx, cancel := s.leaderOp(2 * opTimeout)
	defer cancel()
	queued := map[string]int{}
	dead := make([]*store.DeadLetter, 0, len(c.DeadLetters))
	s.outboxMu.Lock()
	defer s.outboxMu.Unlock()
	err := s.fenced(ctx, "commit state", func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, ch := range c.Changes {
			if err := queueChanges(b, ch, c, queued); err != nil {
				return err
			}
		}
		for _, id := range c.PrunedIncidents {
			b.Queue(`DELETE FROM incidents WHERE id = $1`, id)
			b.Queue(`DELETE FROM alerts WHERE incident_id = $1`, id) // none should be left; a pruned incident keeps nothing
			// What receivers remembered about it goes too (Slack ts, Grafana id), and its evidence.
			b.Queue(`DELETE FROM receiver_state WHERE incident_id = $1`, id)
			b.Queue(`DELETE FROM evidence WHERE incident_id = $1`, id)
			b.Queue(`DELETE FROM evidence_png WHERE incident_id = $1`, id)
		}
		for _, k := range c.PrunedTombstones {
			b.Queue(`DELETE FROM tombstones WHERE key_sha256 = sha256($1)`, []byte(k))
		}
		for url, at := range c.Heartbeats {
			b.Queue(`INSERT INTO heartbeats (url, at_ns) VALUES ($1, $2) ON CONFLICT (url_sha256) DO UPDATE SET at_ns = excluded.at_ns`, []byte(url), at.UnixNano())
		}
		for _, url := range c.ForgetHeartbeats {
			b.Queue(`DELETE FROM heartbeats WHERE url_sha256 = sha256($1)`, []byte(url))
		}
		if !c.PruneDeadBefore.IsZero() {
			b.Queue(`DELETE FROM dead_letters WHERE at_ns < $1`, c.PruneDeadBefore.UnixNano())
		}
		if c.LastSeq > 0 {
			b.Queue(`UPDATE progress SET last_inbox_seq = $1`, int64(c.LastSeq))
			b.Queue(`DELETE FROM inbox WHERE seq <= $1`, int64(c.LastSeq))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		for _, d := range c.DeadLetters {
			cp := *d
			if err := insertDeadLetter(ctx, tx, &cp); err != nil {
				return err
			}
			dead = append(dead, &cp)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, d := range dead {
		c.DeadLetters[i].ID = d.ID
	}
	s.depthMu.Lock()
	for r, n := range queued {
		s.depth[r] += n
	}
	s.depthMu.Unlock()
	if f := s.onDeadLetter.Load(); f != nil {
		for _, d := range dead {
			(*f)(d)
		}
	}
	return nil
}

// queueChanges adds one change's writes to b, in the order the bbolt store
// makes them: incidents, alerts, deleted alerts, tombstones, events.
func queueChanges(b *pgx.Batch, ch *incident.Changes, c *store.Commit, queued map[string]int) error {
	for _, inc := range ch.Incidents {
		v, err := store.EncodeIncident(inc)
		if err != nil {
			return fmt.Errorf("incident %s: %w", inc.ID, err)
		}
		b.Queue(`INSERT INTO incidents (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = excluded.record`, inc.ID, v)
	}
	for _, ref := range ch.Alerts {
		v, err := store.EncodeAlert(ref.Alert)
		if err != nil {
			return fmt.Errorf("alert %s: %w", ref.Alert.Key, err)
		}
		b.Queue(`INSERT INTO alerts (incident_id, key, record) VALUES ($1, $2, $3)
			ON CONFLICT (incident_id, key_sha256) DO UPDATE SET record = excluded.record`, ref.IncidentID, []byte(ref.Alert.Key), v)
	}
	for _, ref := range ch.DeletedAlerts {
		b.Queue(`DELETE FROM alerts WHERE incident_id = $1 AND key_sha256 = sha256($2)`, ref.IncidentID, []byte(ref.Alert.Key))
	}
	for _, k := range ch.DeletedTombstones {
		b.Queue(`DELETE FROM tombstones WHERE key_sha256 = sha256($1)`, []byte(k))
	}
	for k, t := range ch.Tombstones {
		v, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("tombstone %s: %w", k, err)
		}
		b.Queue(`INSERT INTO tombstones (key, record) VALUES ($1, $2) ON CONFLICT (key_sha256) DO UPDATE SET record = excluded.record`, []byte(k), v)
	}
	for i := range ch.Events {
		for _, r := range c.ReceiversFor(&ch.Events[i]) {
			if err := queueEnvelope(b, &notify.Envelope{Receiver: r, Event: ch.Events[i], Enqueued: ch.Events[i].At}); err != nil {
				return err
			}
			queued[r]++
		}
	}
	return nil
}

// queueEnvelope adds an outbox insert to b.
func queueEnvelope(b *pgx.Batch, env *notify.Envelope) error {
	body, err := store.EncodeEnvelope(env)
	if err != nil {
		return fmt.Errorf("outbox %s encode: %w", env.Receiver, err)
	}
	b.Queue(`INSERT INTO outbox (receiver, incident_id, next_ns, enqueued_ns, body) VALUES ($1, $2, $3, $4, $5)`,
		env.Receiver, env.Event.Incident.ID, unixNano(env.NextAttempt), unixNano(env.Enqueued), body)
	return nil
}
