// Package store names what the pipeline keeps durable: the inbox of
// acknowledged webhooks, the incident state, the outbox of receivers' events,
// their per-incident state, dead letters and evidence. The bbolt
// implementation (store/boltstore) is the embedded default; see the README's
// "Storage".
package store

import (
	"errors"
	"time"

	"github.com/amtriage/amtriage/incident"
)

// InboxEntry is one acknowledged webhook body.
type InboxEntry struct {
	Seq        uint64
	ReceivedAt time.Time
	Body       []byte
	// Replayed: put back from the dead letters. Its alerts are folded in
	// as of its arrival, but it is never taken to list its whole group:
	// newer notifications may have brought alerts it does not know.
	Replayed bool
}

// LoadedState is everything needed to rebuild the incident book.
type LoadedState struct {
	LastSeq    uint64
	Incidents  []*incident.Incident
	Alerts     []incident.AlertRef
	Tombstones map[string]incident.Tombstone
	// Heartbeats: when the last heartbeat of each Alertmanager arrived.
	Heartbeats map[string]time.Time
}

// Commit is one processing step made durable: the state changes, the events
// queued for each receiver, pruned records, notifications given up on, and
// the last inbox sequence folded in, all in one transaction.
type Commit struct {
	LastSeq          uint64
	Changes          []*incident.Changes
	Receivers        []string
	PrunedIncidents  []string
	PrunedTombstones []string
	DeadLetters      []*DeadLetter
	// Heartbeats are the heartbeats this commit's notifications carried:
	// externalURL → arrival, kept with the notification that proves it.
	Heartbeats map[string]time.Time
	// ForgetHeartbeats are Alertmanagers the dead man's switch stops
	// watching (silent for longer than incidents.retention).
	ForgetHeartbeats []string
	// PruneDeadBefore, when set, deletes dead letters given up on before it.
	PruneDeadBefore time.Time
}

// Dead-letter kinds: a notification the pipeline could not process, or an
// incident event a receiver could not take.
const (
	DeadNotification = "notification"
	DeadEvent        = "event"
)

// InboxQueue names the pipeline's own dead letters (notifications) where
// receivers' dead letters carry the receiver's name.
const InboxQueue = "inbox"

// ErrNotFound is an id that names nothing.
var ErrNotFound = errors.New("not found")

// DeadLetter is work given up on, kept for an operator to read and replay
// until incidents.retention has passed.
type DeadLetter struct {
	ID       uint64    `json:"id"`
	Kind     string    `json:"kind"`  // DeadNotification or DeadEvent
	Queue    string    `json:"queue"` // InboxQueue, or the receiver
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"` // when it was given up on
	// A notification: its inbox sequence and arrival, and its alert count
	// when it could be read.
	Seq        uint64    `json:"inbox_seq,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	Alerts     int       `json:"alerts,omitempty"`
	// An event: which incident and what happened to it.
	Incident  string             `json:"incident,omitempty"`
	EventKind incident.EventKind `json:"event,omitempty"`
	Bytes     int                `json:"bytes"` // size of the payload kept
	// Payload is the notification's body, or the envelope as it was queued
	// (JSON, or the raw bytes when they could not be decoded).
	Payload []byte `json:"-"`
}
