package triage

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/webhook"
)

// Errors the intake answers with 503 so Alertmanager retries.
var (
	ErrOverloaded = errors.New("overloaded: too many notifications waiting to be stored")
	ErrClosed     = errors.New("shutting down")
)

type appendReq struct {
	entry store.InboxEntry
	msg   *webhook.Message // decoded at intake, handed to the pipeline to skip a decode
	done  chan error
}

// Committer appends webhook bodies to the inbox with group commit: while one
// transaction is being fsynced, new requests queue, and the next transaction
// takes all of them. No timer adds latency when the daemon is idle.
type Committer struct {
	inbox    store.Inbox
	metrics  *Metrics
	reqs     chan *appendReq
	maxBatch int
	onCommit func(entries []*store.InboxEntry, msgs []*webhook.Message)

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// NewCommitter starts a committer; maxPending bounds queued requests.
// onCommit receives each committed batch's entries and decoded messages.
func NewCommitter(inbox store.Inbox, metrics *Metrics, maxPending int, onCommit func(entries []*store.InboxEntry, msgs []*webhook.Message)) *Committer {
	c := &Committer{inbox: inbox, metrics: metrics, reqs: make(chan *appendReq, maxPending), maxBatch: 1024, onCommit: onCommit}
	c.wg.Add(1)
	go c.run()
	return c
}

// Append stores one body durably and returns once it is on disk. msg is the
// body already decoded, or nil.
func (c *Committer) Append(ctx context.Context, body []byte, msg *webhook.Message, at time.Time) error {
	return c.AppendEntry(ctx, store.InboxEntry{ReceivedAt: at, Body: body}, msg)
}

// AppendEntry is Append for a whole entry (a replayed one, say).
func (c *Committer) AppendEntry(ctx context.Context, entry store.InboxEntry, msg *webhook.Message) error {
	req := &appendReq{entry: entry, msg: msg, done: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	select {
	case c.reqs <- req:
	default:
		c.mu.RUnlock()
		return ErrOverloaded
	}
	c.mu.RUnlock()
	// Once queued the body will be committed even if the client goes away;
	// waiting for it keeps the answer truthful.
	return <-req.done
}

// Close stops accepting and waits for queued requests to be committed.
func (c *Committer) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Committer) run() {
	defer c.wg.Done()
	batch := make([]*appendReq, 0, c.maxBatch)
	entries := make([]*store.InboxEntry, 0, c.maxBatch)
	var msgs []*webhook.Message
	for first := range c.reqs {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < c.maxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		entries = entries[:0]
		for _, r := range batch {
			entries = append(entries, &r.entry)
		}
		start := time.Now()
		err := c.inbox.AppendInbox(entries)
		c.metrics.CommitDuration.WithLabelValues("inbox").Observe(time.Since(start).Seconds())
		c.metrics.CommitBatch.Observe(float64(len(batch)))
		if err == nil && c.onCommit != nil {
			msgs = msgs[:0]
			for _, r := range batch {
				msgs = append(msgs, r.msg)
			}
			c.onCommit(entries, msgs)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// AppendAction stores a verified action durably (an inbox entry of kind
// store.EntryAction) and returns once it is committed: the leader applies
// it in inbox order.
func (c *Committer) AppendAction(ctx context.Context, a *actions.Action) error {
	body, err := a.Encode()
	if err != nil {
		return err
	}
	return c.AppendEntry(ctx, store.InboxEntry{ReceivedAt: a.At, Body: body, Kind: store.EntryAction}, nil)
}
