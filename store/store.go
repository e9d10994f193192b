// Package store names what the pipeline keeps durable: the inbox of
// acknowledged webhooks, the incident state, the outbox of receivers' events,
// their per-incident state, dead letters and evidence. The bbolt
// implementation (store/boltstore) is the embedded default; see the README's
// "What a 200 promises" and "Replicas on PostgreSQL".
package store

import (
	"errors"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
)

// ErrPermanent marks a store error that the same write will meet again:
// what it was given cannot be held (too large, malformed). The pipeline
// dead-letters the notification behind it instead of retrying for ever;
// any other error (I/O, a database away) is retried.
var ErrPermanent = errors.New("the store cannot hold this")

// Store is everything the daemon keeps durable. Implementations:
// store/boltstore (embedded, one process) and store/pgstore (PostgreSQL,
// any number of replicas with one leader).
type Store interface {
	Inbox
	State
	Outbox
	notify.ReceiverState
	DeadLetters
	Evidence
	Close() error
}

// Inbox holds acknowledged webhook bodies, in order, until the pipeline has
// folded them into the state.
type Inbox interface {
	// AppendInbox stores entries durably in one commit (group commit) and
	// sets each entry's Seq; it returns only once they are durable.
	AppendInbox(entries []*InboxEntry) error
	// InboxSeq is the sequence of the last entry known committed.
	InboxSeq() uint64
	// ReadInbox returns up to limit entries after seq, oldest first,
	// stopping early once maxBytes of bodies have been read.
	ReadInbox(after uint64, limit, maxBytes int) ([]InboxEntry, error)
	// TrimInbox deletes processed entries up to and including seq.
	TrimInbox(upTo uint64) error
	// MarkProcessed records that entries up to seq are folded into the
	// state, so they may be deleted.
	MarkProcessed(seq uint64)
}

// State is the incident state, changed only by the pipeline's commits.
type State interface {
	LoadState() (*LoadedState, error)
	// Apply writes a commit atomically: its state changes, the events it
	// queues for receivers and the last inbox sequence it folds in.
	Apply(c *Commit) error
	// OldestDeadLetter is when the oldest dead letter was given up on
	// (zero: none), for the retention sweep.
	OldestDeadLetter() time.Time
}

// Outbox is the receivers' queues of incident events.
type Outbox interface {
	notify.Queue
	// OutboxDepth is the number of queued events by receiver.
	OutboxDepth() (map[string]int, error)
}

// DeadLetters is work given up on, kept for an operator to read and replay.
type DeadLetters interface {
	DeadLetterCounts() map[string]int
	// DeadLetters lists up to limit dead letters (without payloads), newest
	// first, and how many there are.
	DeadLetters(limit int) ([]*DeadLetter, int, error)
	ReadDeadLetter(id uint64) (*DeadLetter, error)
	RemoveDeadLetter(id uint64) error
	// ReplayEvent queues ev again for the dead letter's receiver and
	// removes the dead letter, at most once.
	ReplayEvent(id uint64, ev *incident.Event) error
	// OnDeadLetter sets f to be told of every dead letter once it is stored.
	OnDeadLetter(f func(*DeadLetter))
}

// EvidenceRecord is one incident's evidence as stored: the JSON record and
// its PNGs by panel id (triage/evidence gathers it).
type EvidenceRecord struct {
	ID   string
	JSON []byte
	PNGs map[int64][]byte
}

// Evidence is what was gathered for Sev 1–2 incidents, kept with them.
type Evidence interface {
	// PutEvidence stores records in one transaction; stored[i] is false
	// when record i's incident is gone or already has evidence.
	PutEvidence(batch []EvidenceRecord) (stored []bool, err error)
	HasEvidence(id string) bool
	Evidence(id string) ([]byte, bool, error)
	EvidencePNG(id string, panel int64) ([]byte, bool, error)
}

// InboxEntry is one acknowledged webhook body.
type InboxEntry struct {
	Seq        uint64
	ReceivedAt time.Time
	Body       []byte
	// Replayed: put back from the dead letters. Its alerts are folded in
	// as of its arrival, but it is never taken to list its whole group:
	// newer notifications may have brought alerts it does not know.
	Replayed bool
	// Kind is what the body is: an Alertmanager notification (the zero
	// value) or an action (a Slack click, a PagerDuty webhook). A kind
	// comes from the endpoint that took the entry, never from its body,
	// so a webhook cannot pass for an action.
	Kind EntryKind
}

// EntryKind is what an inbox entry holds.
type EntryKind uint8

const (
	EntryNotification EntryKind = iota // an Alertmanager webhook body
	EntryAction                        // an action (actions.Action, JSON)
)

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
	LastSeq   uint64
	Changes   []*incident.Changes
	Receivers []string
	// Takes, when set, says whether a receiver takes an event of a kind
	// (action receivers take only action events): ReceiversFor.
	Takes            func(receiver string, kind incident.EventKind) bool
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

// ReceiversFor lists the receivers ev is queued for.
func (c *Commit) ReceiversFor(ev *incident.Event) []string {
	if c.Takes == nil {
		return c.Receivers
	}
	out := make([]string, 0, len(c.Receivers))
	for _, r := range c.Receivers {
		if c.Takes(r, ev.Kind) {
			out = append(out, r)
		}
	}
	return out
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
