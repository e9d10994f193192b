// Package fault is the failure injection the fake receivers share: canned
// answers (a status, Retry-After, a hang) consumed by the next requests, and
// a gate that holds hung requests until the server closes.
package fault

import (
	"net/http"
	"strconv"
	"sync"
)

// Fault is how the next request(s) fail.
type Fault struct {
	Status     int  // HTTP status to answer with (e.g. 500, 429)
	RetryAfter int  // seconds, sent as Retry-After when > 0
	Hang       bool // never answer until the client gives up or the server closes
	Lost       bool // serve the request, then drop the answer (see Drop); with Hang, hang after serving
	Times      int  // how many requests; at least one
}

// SetRetryAfter writes the Retry-After header the fault asks for.
func (f Fault) SetRetryAfter(w http.ResponseWriter) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
}

// Queue hands out faults in the order they were added.
type Queue struct {
	mu     sync.Mutex
	faults []Fault
}

// Add queues f for the next f.Times requests (at least one).
func (q *Queue) Add(f Fault) {
	f.Times = max(f.Times, 1)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.faults = append(q.faults, f)
}

// Next takes the fault for this request, if any.
func (q *Queue) Next() (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.faults) == 0 {
		return Fault{}, false
	}
	f := q.faults[0]
	if q.faults[0].Times--; q.faults[0].Times <= 0 {
		q.faults = q.faults[1:]
	}
	return f, true
}

// Gate holds hung requests until the client gives up or Close is called,
// so that closing a fake server never waits on them. Its zero value is
// ready to use.
type Gate struct {
	once   sync.Once
	closed chan struct{}
}

func (g *Gate) ch() chan struct{} {
	g.once.Do(func() { g.closed = make(chan struct{}) })
	return g.closed
}

// Hang blocks until r's client gives up or the gate closes.
func (g *Gate) Hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-g.ch():
	}
}

// Close releases every hung request, now and later. It may be called more
// than once.
func (g *Gate) Close() {
	ch := g.ch()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Drop closes the request's connection without an answer: the request was
// served but its response is lost, as when the network or the caller's
// process fails after the write.
func Drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fault: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}
