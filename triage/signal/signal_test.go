package signal

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEvaluationDoRunsOncePerKey(t *testing.T) {
	ev := NewEvaluation(time.Unix(100, 0))
	var calls atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := Memo(ev, "q", func() (int, error) {
				calls.Add(1)
				time.Sleep(time.Millisecond)
				return 7, errors.New("boom")
			})
			if v != 7 || err == nil || err.Error() != "boom" {
				t.Errorf("Memo = %v, %v; want 7, boom", v, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("fn called %d times, want 1", n)
	}
	if _, _ = Memo(ev, "other", func() (int, error) { calls.Add(1); return 0, nil }); calls.Load() != 2 {
		t.Fatal("a second key must call fn")
	}
}

func TestNilEvaluationMemoisesNothing(t *testing.T) {
	var ev *Evaluation
	n := 0
	for range 3 {
		_, _ = ev.Do("k", func() (any, error) { n++; return nil, nil })
	}
	if n != 3 {
		t.Fatalf("fn called %d times, want 3", n)
	}
	if ev.Time().IsZero() {
		t.Fatal("nil evaluation must report the current time")
	}
	if at := time.Unix(5, 0); !NewEvaluation(at).Time().Equal(at) {
		t.Fatal("Time must be At")
	}
}

func TestTripKeepsTheFirstReasonPerBackend(t *testing.T) {
	ev := NewEvaluation(time.Now())
	if _, ok := ev.Tripped("prometheus"); ok {
		t.Fatal("a fresh evaluation has a tripped backend")
	}
	if !ev.Trip("prometheus", "timed out after 2s") {
		t.Fatal("the first Trip did not trip")
	}
	if ev.Trip("prometheus", "timed out again") {
		t.Fatal("a second Trip tripped again")
	}
	if why, ok := ev.Tripped("prometheus"); !ok || why != "timed out after 2s" {
		t.Fatalf("Tripped = %q, %v; want the first reason", why, ok)
	}
	if _, ok := ev.Tripped("other"); ok {
		t.Fatal("tripping one backend tripped another")
	}
	if _, ok := NewEvaluation(time.Now()).Tripped("prometheus"); ok {
		t.Fatal("a trip outlived its evaluation")
	}
	var none *Evaluation
	none.Trip("prometheus", "x") // no evaluation: nothing to remember, no panic
	none.Answered("prometheus")
	if _, ok := none.Tripped("prometheus"); ok {
		t.Fatal("a nil evaluation remembers a trip")
	}
}

// A backend that answered once in the evaluation is up: a slow query of it
// must not stop the others.
func TestAnsweredBackendIsNotTripped(t *testing.T) {
	ev := NewEvaluation(time.Now())
	ev.Answered("prometheus")
	if ev.Trip("prometheus", "timed out after 2s") {
		t.Fatal("Trip tripped a backend that answered")
	}
	if why, ok := ev.Tripped("prometheus"); ok {
		t.Fatalf("tripped (%q) after answering", why)
	}
}
