package pgstore

// The store's tables. Records are the bytes store's codecs write (the same
// JSON bbolt keeps), times are unix nanoseconds: exact, as bbolt has them.
// Keys a webhook supplies (alert keys hold its fingerprints, heartbeats its
// externalURL) are bytea: JSON lets them hold a NUL, which text refuses.
// Pass them as []byte: pgx sends a string as bytea's text input, which
// reads backslashes as escapes.
//
// The inbox's sequence is a counter row, not a SEQUENCE: each append takes
// its numbers with an UPDATE that holds the row until commit, so appends
// commit in the order of their numbers and the leader, reading in order,
// never passes an entry that commits later with a smaller number.
var storeDDL = []string{
	`CREATE TABLE inbox_seq (
		id  boolean PRIMARY KEY DEFAULT true CHECK (id),
		seq bigint NOT NULL
	)`,
	`INSERT INTO inbox_seq (seq) VALUES (0)`,
	`CREATE TABLE inbox (
		seq         bigint PRIMARY KEY,
		received_ns bigint NOT NULL,
		replayed    boolean NOT NULL,
		body        bytea NOT NULL
	)`,
	// progress: the last inbox sequence folded into the state.
	`CREATE TABLE progress (
		id             boolean PRIMARY KEY DEFAULT true CHECK (id),
		last_inbox_seq bigint NOT NULL
	)`,
	`INSERT INTO progress (last_inbox_seq) VALUES (0)`,
	`CREATE TABLE incidents (
		id     text PRIMARY KEY,
		record bytea NOT NULL
	)`,
	// Keys a webhook supplies (an alert's, a tombstone's, a heartbeat's
	// URL) may be 8 KiB: a btree entry holds at most 2,704 bytes, so they
	// are indexed by their SHA-256 (a generated column: every statement
	// names the key and the database derives the digest).
	`CREATE TABLE alerts (
		incident_id text NOT NULL,
		key         bytea NOT NULL,
		key_sha256  bytea GENERATED ALWAYS AS (sha256(key)) STORED,
		record      bytea NOT NULL,
		PRIMARY KEY (incident_id, key_sha256)
	)`,
	`CREATE TABLE tombstones (
		key        bytea NOT NULL,
		key_sha256 bytea GENERATED ALWAYS AS (sha256(key)) STORED PRIMARY KEY,
		record     bytea NOT NULL
	)`,
	`CREATE TABLE heartbeats (
		url        bytea NOT NULL,
		url_sha256 bytea GENERATED ALWAYS AS (sha256(url)) STORED PRIMARY KEY,
		at_ns      bigint NOT NULL
	)`,
	`CREATE TABLE outbox (
		receiver    text NOT NULL,
		seq         bigint GENERATED ALWAYS AS IDENTITY,
		incident_id text NOT NULL,
		next_ns     bigint NOT NULL,
		enqueued_ns bigint NOT NULL,
		body        bytea NOT NULL,
		PRIMARY KEY (receiver, seq)
	)`,
	`CREATE TABLE receiver_state (
		receiver    text NOT NULL,
		incident_id text NOT NULL,
		state       bytea NOT NULL,
		PRIMARY KEY (receiver, incident_id)
	)`,
	`CREATE INDEX receiver_state_incident ON receiver_state (incident_id)`,
	`CREATE TABLE dead_letters (
		id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		queue   text NOT NULL,
		at_ns   bigint NOT NULL,
		meta    bytea NOT NULL,
		payload bytea NOT NULL
	)`,
	`CREATE INDEX dead_letters_at ON dead_letters (at_ns)`,
	`CREATE TABLE evidence (
		incident_id text PRIMARY KEY,
		record      bytea NOT NULL
	)`,
	`CREATE TABLE evidence_png (
		incident_id text NOT NULL,
		panel       bigint NOT NULL,
		png         bytea NOT NULL,
		PRIMARY KEY (incident_id, panel)
	)`,
}
