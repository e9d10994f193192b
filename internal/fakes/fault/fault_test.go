package fault

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestQueueHandsOutFaultsInOrder(t *testing.T) {
	var q Queue
	q.Add(Fault{Status: 500, Times: 2})
	q.Add(Fault{Status: 429, RetryAfter: 3}) // Times 0 counts as one
	var got []int
	for {
		f, ok := q.Next()
		if !ok {
			break
		}
		got = append(got, f.Status)
	}
	if len(got) != 3 || got[0] != 500 || got[1] != 500 || got[2] != 429 {
		t.Fatalf("statuses %v, want [500 500 429]", got)
	}
	w := httptest.NewRecorder()
	Fault{RetryAfter: 3}.SetRetryAfter(w)
	if w.Header().Get("Retry-After") != "3" {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
}

func TestGateReleasesHungRequests(t *testing.T) {
	var g Gate
	done := make(chan struct{})
	go func() { g.Hang(httptest.NewRequest("GET", "/", nil)); close(done) }()
	select {
	case <-done:
		t.Fatal("Hang returned before Close")
	case <-time.After(20 * time.Millisecond):
	}
	g.Close()
	g.Close() // twice is fine
	<-done
	g.Hang(httptest.NewRequest("GET", "/", nil)) // after Close: returns at once
}
