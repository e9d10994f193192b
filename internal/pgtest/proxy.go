package pgtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a server, and can cut them: a client
// that reaches PostgreSQL through it loses its database on Cut while
// everyone else keeps theirs (a network partition of one replica).
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	cut     bool
	stalled chan struct{}         // non-nil while stalled; closed to resume
	conns   map[net.Conn]struct{} // both ends of every live forwarding
	wg      sync.WaitGroup
}

// NewProxy listens on a free 127.0.0.1 port and forwards to targetAddr. It
// is closed when the test ends.
func NewProxy(t testing.TB, targetAddr string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy listen: %v", err)
	}
	p := &Proxy{target: targetAddr, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is where clients connect: 127.0.0.1:PORT.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every forwarded connection and drops each new one at once, until
// Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.resumeLocked() // stalled writers wake to find their connections closed
	for c := range p.conns {
		c.Close()
	}
}

// Stall stops forwarding bytes, in both directions, on every connection old
// and new, without closing any: a link that silently drops packets, where
// only a client's own timeouts help. Restore resumes, Cut drops them.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Restore undoes Cut and Stall: new connections are forwarded again, and
// stalled bytes flow.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.resumeLocked()
}

func (p *Proxy) resumeLocked() {
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// gate waits while the proxy is stalled.
func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.stalled
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track adds c unless the proxy is cut; false means c was closed instead.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(gatedWriter{dst, p}, src)
		// One direction ended: end both, as a dropped link would.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
}

// gatedWriter holds each write while the proxy is stalled.
type gatedWriter struct {
	w io.Writer
	p *Proxy
}

func (g gatedWriter) Write(b []byte) (int, error) {
	g.p.gate()
	return g.w.Write(b)
}
