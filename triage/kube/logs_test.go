package kube

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/triage/signal"

	"github.com/amtriage/amtriage/internal/clip"
)

func TestErrorLines(t *testing.T) {
	long := "ERROR " + strings.Repeat("日本", 100) // 606 bytes
	logs := strings.Join([]string{
		"starting server on :8080",
		"level=info msg=ready",
		"2026-11-03T12:00:00Z ERROR connecting to db: timeout",
		"\x1b[31mFATAL\x1b[0m config missing",
		"terror is not an error word",                     // "error" is, later in the line
		"everything fine, no failures? failures are fine", // "failures" starts a word
		"java.lang.NullPointerException: null",
		"\tat com.shop.Api.handle(Api.java:42)",
		"panic: runtime error: invalid memory address",
		"goroutine 1 [running]:",
		"E1103 12:00:01.000000       1 main.go:10] cannot start",
		"Everything OK",
		"dial tcp 10.0.0.5:5432: connect: connection refused",
		"affail is not matched",
		long,
		"bad utf8 \xff\xfe error\r",
		"",
	}, "\n")
	got := errorLines([]byte(logs), 100)
	want := []string{
		"2026-11-03T12:00:00Z ERROR connecting to db: timeout",
		"FATAL config missing",
		"terror is not an error word",
		"everything fine, no failures? failures are fine",
		"java.lang.NullPointerException: null",
		"panic: runtime error: invalid memory address",
		"E1103 12:00:01.000000       1 main.go:10] cannot start",
		"dial tcp 10.0.0.5:5432: connect: connection refused",
		clip.Bytes(long, maxLogLine),
		"bad utf8 \uFFFD error",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errorLines:\n got %q\nwant %q", got, want)
	}
	for _, l := range got {
		if len(l) > maxLogLine || !utf8.ValidString(l) {
			t.Errorf("line of %d bytes, valid %v: %q", len(l), utf8.ValidString(l), l)
		}
	}
	// The last MaxLogLines are kept, in order.
	got = errorLines([]byte(logs), diagnosis.MaxLogLines)
	if !reflect.DeepEqual(got, want[len(want)-diagnosis.MaxLogLines:]) {
		t.Errorf("last %d: %q", diagnosis.MaxLogLines, got)
	}
	if got := errorLines([]byte("all good\nstill good"), 5); got != nil {
		t.Errorf("no error lines: %q", got)
	}
}

// logReactor answers pod log reads of the fake clientset with text and
// counts them, recording the options of the last one.
type logReactor struct {
	mu    sync.Mutex
	calls int
	opts  *corev1.PodLogOptions
	pod   string
	text  string
	err   error
}

func (r *logReactor) install(c *Cluster, client interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
}) {
	client.PrependReactor("get", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "log" {
			return false, nil, nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.calls++
		r.opts = action.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions)
		if r.err != nil {
			return true, nil, r.err
		}
		return true, &runtime.Unknown{Raw: []byte(r.text)}, nil
	})
}

func (r *logReactor) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func TestLogs(t *testing.T) {
	now := t0
	reg := prometheus.NewRegistry()
	metrics := signal.NewMetrics(reg)
	c, client := testCluster(t, Options{Now: func() time.Time { return now }, Metrics: metrics, LogBytes: 1 << 10}, shop()...)
	r := &logReactor{text: "booting\nERROR: cannot connect to postgres:5432\nexiting\n"}
	r.install(c, client)

	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	logs, err := c.Logs(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	want := &diagnosis.Logs{Pod: "api-7d9f-2", Container: "api", Previous: true, Lines: []string{"ERROR: cannot connect to postgres:5432"}}
	if !reflect.DeepEqual(logs, want) {
		t.Errorf("logs = %+v, want %+v", logs, want)
	}
	if o := r.opts; o.Container != "api" || !o.Previous || o.TailLines == nil || *o.TailLines != 200 || o.LimitBytes == nil || *o.LimitBytes != 1<<10 {
		t.Errorf("log options = %+v", o)
	}
	if n := testutil.CollectAndCount(metrics.Requests, "amtriage_signal_request_duration_seconds"); n != 1 {
		t.Errorf("metric series = %d", n)
	}

	// The same pod, container and restart count: from the cache.
	for range 3 {
		again, err := c.Logs(context.Background(), c.Snapshot(Target{Namespace: "shop", Pod: "api-7d9f-0"}, t0))
		if err != nil || again != logs {
			t.Errorf("cached read = %+v, %v", again, err)
		}
	}
	if r.count() != 1 {
		t.Errorf("%d log reads, want 1", r.count())
	}

	// Another restart: read again.
	p := shop()[5].(*corev1.Pod)
	p.Status.ContainerStatuses[0].RestartCount++
	add(t, c, p)
	if _, err := c.Logs(context.Background(), c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)); err != nil || r.count() != 2 {
		t.Errorf("after a restart: %d reads, err %v", r.count(), err)
	}

	// No failing pod: nothing read.
	healthy, _ := testCluster(t, Options{}, newDeployment("shop", "web", 1, "1", appsv1DeploymentAvailable(1)),
		newReplicaSet("shop", "web", "1111", "1", t0, 1, container("web", "shop/web:1")),
		newPod("shop", "web-1111", "web-1111-a", t0))
	if logs, err := healthy.Logs(context.Background(), healthy.Snapshot(Target{Namespace: "shop", Deployment: "web"}, t0)); logs != nil || err != nil {
		t.Errorf("healthy: %+v, %v", logs, err)
	}
	if logs, err := c.Logs(context.Background(), nil); logs != nil || err != nil {
		t.Errorf("nil snapshot: %+v, %v", logs, err)
	}
}

func TestLogsErrorCached(t *testing.T) {
	now := t0
	c, client := testCluster(t, Options{Now: func() time.Time { return now }}, shop()...)
	r := &logReactor{err: errors.New("no kubelet")}
	r.install(c, client)
	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	for range 3 {
		if _, err := c.Logs(context.Background(), s); err == nil || !strings.Contains(err.Error(), "no kubelet") ||
			!strings.Contains(err.Error(), "pod shop/api-7d9f-2 container api") {
			t.Errorf("err = %v", err)
		}
	}
	if r.count() != 1 {
		t.Errorf("%d reads of a failing log, want 1 within %s", r.count(), logErrorTTL)
	}
	now = now.Add(logErrorTTL)
	_, _ = c.Logs(context.Background(), s)
	if r.count() != 2 {
		t.Errorf("%d reads, want a retry after %s", r.count(), logErrorTTL)
	}

	// A read the caller cancelled is not remembered.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	now = now.Add(logErrorTTL)
	_, _ = c.Logs(ctx, s)
	_, _ = c.Logs(ctx, s)
	if r.count() != 4 {
		t.Errorf("%d reads, want cancelled reads not cached", r.count())
	}
}

func TestLogCache(t *testing.T) {
	lc := newLogCache(3)
	var reads atomic.Int32
	read := func(key string) func() (*diagnosis.Logs, error) {
		return func() (*diagnosis.Logs, error) {
			reads.Add(1)
			return &diagnosis.Logs{Pod: key}, nil
		}
	}
	for _, k := range []string{"a", "b", "c", "a", "d", "a", "b"} {
		got, _ := lc.do(k, t0, read(k))
		if got.Pod != k {
			t.Errorf("%s: %+v", k, got)
		}
	}
	// a b c (3 reads), a cached, d evicts b, a cached, b read again (evicts c).
	if n := reads.Load(); n != 5 || lc.len() != 3 {
		t.Errorf("reads %d, len %d", n, lc.len())
	}

	// Concurrent readers of one key share one read.
	reads.Store(0)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, _ = lc.do("slow", t0, func() (*diagnosis.Logs, error) {
				reads.Add(1)
				<-release
				return &diagnosis.Logs{}, nil
			})
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("%d concurrent reads, want 1", n)
	}
}

func TestLogsContainerChoice(t *testing.T) {
	p := newPod("shop", "api-7d9f", "api-7d9f-0", t0, func(p *corev1.Pod) {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "sidecar", RestartCount: 2,
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}}})
	})
	c, client := testCluster(t, Options{}, p)
	r := &logReactor{text: "fatal: sidecar"}
	r.install(c, client)
	s := &diagnosis.Snapshot{Namespace: "shop", Pods: []diagnosis.Pod{{Name: "api-7d9f-0", Restarts: 2}}}
	logs, err := c.Logs(context.Background(), s)
	if err != nil || logs.Container != "sidecar" || !logs.Previous || r.opts.Container != "sidecar" {
		t.Errorf("logs %+v, err %v, opts %+v", logs, err, r.opts)
	}
	// A pod gone from the cache: the snapshot's view serves.
	s = &diagnosis.Snapshot{Namespace: "shop", Pods: []diagnosis.Pod{{Name: "gone", Reason: "Error", Container: "api"}}}
	logs, err = c.Logs(context.Background(), s)
	if err != nil || logs.Pod != "gone" || logs.Previous || r.opts.Container != "api" {
		t.Errorf("gone pod: logs %+v, err %v, opts %+v", logs, err, r.opts)
	}
	if fmt.Sprint(r.count()) != "2" {
		t.Errorf("reads %d", r.count())
	}
}
