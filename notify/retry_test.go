package notify

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/incident"
)

func TestDelivererHonoursRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var calls []time.Time
	n := notifierFunc(func(ctx context.Context, ev *incident.Event) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		if len(calls) == 1 {
			return true, &RetryAfterError{After: 150 * time.Millisecond, Err: errors.New("429 from receiver")}
		}
		return false, nil
	})
	q := &memQueue{items: envelopes(incident.Opened)}
	d := &Deliverer{Queue: q, Notifier: n, Wake: make(chan struct{}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry()), BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	runUntil(t, d, q.empty)
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	if gap := calls[1].Sub(calls[0]); gap < 150*time.Millisecond {
		t.Fatalf("retried after %v, before the receiver's Retry-After of 150ms", gap)
	}
}

func TestIdempotentClientRetries5xxButNot429(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky":
			if n.Add(1) <= 2 {
				http.Error(w, "busy", http.StatusBadGateway)
				return
			}
			io.WriteString(w, "ok")
		case "/limited":
			n.Add(1)
			w.Header().Set("Retry-After", "30")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	c := NewIdempotentHTTPClient(5 * time.Second)

	resp, err := c.Get(srv.URL + "/flaky")
	if err != nil || resp.StatusCode != http.StatusOK || n.Load() != 3 {
		t.Fatalf("flaky: %v %v after %d calls; want 200 after 3", resp, err, n.Load())
	}
	resp.Body.Close()

	n.Store(0)
	resp, err = c.Get(srv.URL + "/limited")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || n.Load() != 1 {
		t.Fatalf("limited: %v %v after %d calls; want the 429 after 1", resp, err, n.Load())
	}
	if got := RetryAfter(resp.Header, time.Second); got != 30*time.Second {
		t.Errorf("RetryAfter = %v, want 30s", got)
	}
	resp.Body.Close()
	if got := RetryAfter(http.Header{}, 7*time.Second); got != 7*time.Second {
		t.Errorf("RetryAfter without the header = %v, want the default", got)
	}
}

// The default client never repeats a request the server may have processed:
// a 5xx goes back to the outbox; only a refused connection is retried.
func TestDefaultClientDoesNotRepeatPosts(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "oops", http.StatusBadGateway)
	}))
	defer srv.Close()
	resp, err := NewHTTPClient(5*time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != http.StatusBadGateway || n.Load() != 1 {
		t.Fatalf("%v %v after %d calls; want the 502 after exactly 1", resp, err, n.Load())
	}
	resp.Body.Close()
}
