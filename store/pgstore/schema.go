package pgstore

import (
	"context"
	"fmt"
)

// A migration takes the schema from Version-1 to Version. Its statements
// run in order, in the one transaction that applies every pending
// migration.
type migration struct {
	Version    int
	Name       string
	Statements []string
}

// migrations is the schema's history, oldest first; versions count from 1
// without gaps. Nothing is released yet, so the store's tables join
// migration 1 (append their DDL to its Statements); once a release has
// shipped, a change is a new migration at the end, never an edit.
var migrations = []migration{
	{Version: 1, Name: "initial", Statements: concat(leaseDDL, storeDDL)},
	// Actions (Slack clicks, PagerDuty webhooks) share the inbox with
	// notifications: store.EntryKind.
	{Version: 2, Name: "inbox entry kinds", Statements: []string{
		`ALTER TABLE inbox ADD COLUMN kind smallint NOT NULL DEFAULT 0`,
	}},
}

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// SchemaVersion is the newest schema this build knows.
var SchemaVersion = migrations[len(migrations)-1].Version

// migrateLockKey is the pg_advisory_xact_lock key that serialises schema
// migrations: replicas starting at once migrate one after another.
const migrateLockKey int64 = 0x616d747269616765 // "amtriage"

// ErrSchemaNewer is returned by Migrate when the database's schema is newer
// than this build's: an older amtriage must not write to it.
type ErrSchemaNewer struct {
	Database, Known int
}

func (e *ErrSchemaNewer) Error() string {
	return fmt.Sprintf("database schema %d was written by a newer amtriage; this one reads up to %d", e.Database, e.Known)
}

// Migrate creates the schema, or brings it to SchemaVersion, in one
// transaction under an advisory lock. It returns the version the database
// was at before. A database at a newer version is refused with
// *ErrSchemaNewer and left untouched.
func Migrate(ctx context.Context, db DB) (from int, err error) {
	return migrate(ctx, db, migrations)
}

func migrate(ctx context.Context, db DB, ms []migration) (from int, err error) {
	known := 0
	if len(ms) > 0 {
		known = ms[len(ms)-1].Version
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate schema: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // no-op after Commit

	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return 0, fmt.Errorf("migrate schema: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return 0, fmt.Errorf("migrate schema: create schema_version: %w", err)
	}
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&from); err != nil {
		return 0, fmt.Errorf("migrate schema: read version: %w", err)
	}
	if from > known {
		return from, &ErrSchemaNewer{Database: from, Known: known}
	}
	for _, m := range ms {
		if m.Version <= from {
			continue
		}
		for i, stmt := range m.Statements {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return from, fmt.Errorf("migrate schema to %d (%s), statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return from, fmt.Errorf("migrate schema to %d: record version: %w", m.Version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return from, fmt.Errorf("migrate schema: commit: %w", err)
	}
	return from, nil
}

// CurrentSchemaVersion reads the database's schema version: 0 when it has
// none yet.
func CurrentSchemaVersion(ctx context.Context, db DB) (int, error) {
	var exists bool
	if err := db.QueryRow(ctx, "SELECT to_regclass('schema_version') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := db.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
