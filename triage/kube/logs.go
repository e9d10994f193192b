package kube

import (
	"bytes"
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/amtriage/amtriage/diagnosis"

	"github.com/amtriage/amtriage/internal/clip"
)

const (
	logTailLines = 200
	maxLogLine   = 300 // bytes per kept line
	// logErrorTTL is how long a failed read is remembered: long enough that
	// a storm's snapshots do not retry it, short enough to retry soon.
	logErrorTTL = time.Minute
)

// errorLine matches the lines worth showing: error, fatal, panic and fail
// at the start of a word (errors, failed, panicked…), exception anywhere
// (NullPointerException), klog's E/F severity prefix, and the connection
// failures the diagnosis reads as infrastructure signs ("dial tcp …:
// connection refused", "i/o timeout") even when logged without a level.
var errorLine = regexp.MustCompile(`(?i:\b(?:error|fatal|panic|fail)|exception|connection refused|i/o timeout|no route to host|no such host)|^[EF]\d{4} `)

// ansiEscape matches terminal colour and cursor sequences.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// Logs reads a few error lines of the first failing pod of the snapshot:
// the first with restarts or a reason after which a container has logs. It
// is the only API call of a snapshot, and is made once per pod, container
// and restart count: later calls are answered from a bounded cache (failed
// reads for a minute). No failing pod: nil, nil.
func (c *Cluster) Logs(ctx context.Context, s *diagnosis.Snapshot) (*diagnosis.Logs, error) {
	if s == nil {
		return nil, nil
	}
	req, ok := c.pickLogs(s)
	if !ok {
		return nil, nil
	}
	return c.logs.do(req.key, c.now(), func() (*diagnosis.Logs, error) {
		return c.readLogs(ctx, req)
	})
}

// logRequest is one container's log read.
type logRequest struct {
	ns, pod, container string
	previous           bool
	key                string
}

// pickLogs chooses the pod and container whose logs to read.
func (c *Cluster) pickLogs(s *diagnosis.Snapshot) (logRequest, bool) {
	for i := range s.Pods {
		p := &s.Pods[i]
		if p.Restarts == 0 && !logReasons[p.Reason] {
			continue
		}
		req := logRequest{ns: s.Namespace, pod: p.Name, container: p.Container, previous: p.Restarts > 0}
		uid, restarts := "", p.Restarts
		// The cache knows the pod's UID and each container's restarts; the
		// pod may be gone from it, then the snapshot's view serves.
		if set := c.setFor(s.Namespace); set != nil {
			if obj, ok, _ := set.pods.GetIndexer().GetByKey(s.Namespace + "/" + p.Name); ok {
				if pod, _ := obj.(*corev1.Pod); pod != nil {
					uid = string(pod.UID)
					if c := logContainer(pod, req.container); c != nil {
						req.container, restarts = c.Name, c.RestartCount
						req.previous = c.RestartCount > 0
					}
				}
			}
		}
		req.key = cmp.Or(uid, s.Namespace+"/"+p.Name) + "\x00" + req.container + "\x00" + strconv.Itoa(int(restarts))
		return req, true
	}
	return logRequest{}, false
}

// logContainer returns the status of the named container, else the one
// restarted most, else the first.
func logContainer(p *corev1.Pod, name string) *corev1.ContainerStatus {
	var out *corev1.ContainerStatus
	for _, list := range [2][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			c := &list[i]
			if name != "" && c.Name == name {
				return c
			}
			if out == nil || c.RestartCount > out.RestartCount {
				out = c
			}
		}
	}
	if name != "" && out != nil && out.Name != name {
		return nil // the named container is not in the status (yet)
	}
	return out
}

func (c *Cluster) readLogs(parent context.Context, req logRequest) (*diagnosis.Logs, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, c.opts.LogTimeout)
	defer cancel()
	opts := &corev1.PodLogOptions{
		Container:  req.container,
		Previous:   req.previous,
		TailLines:  new(int64(logTailLines)),
		LimitBytes: new(c.opts.LogBytes),
	}
	data, err := func() ([]byte, error) {
		rc, err := c.client.CoreV1().Pods(req.ns).GetLogs(req.pod, opts).Stream(ctx)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, c.opts.LogBytes))
	}()
	outcome := "ok"
	switch {
	case err == nil:
	case parent.Err() != nil:
		// The caller gave up: say so in the error, which keeps it out of
		// the cache.
		outcome = "canceled"
		err = fmt.Errorf("%w (%w)", err, context.Canceled)
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
		err = fmt.Errorf("%w (timeout %s)", err, c.opts.LogTimeout)
	default:
		outcome = "error"
	}
	c.opts.Metrics.Observe("kubernetes_logs", outcome, time.Since(start))
	what := "pod " + req.ns + "/" + req.pod
	if req.container != "" {
		what += " container " + req.container
	}
	if err != nil {
		c.log.Debug("kubernetes: pod logs not read", "pod", req.ns+"/"+req.pod, "container", req.container, "err", err)
		return nil, fmt.Errorf("logs of %s: %w", what, err)
	}
	lines := errorLines(data, diagnosis.MaxLogLines)
	if lines == nil {
		lines = []string{} // read, and no error line in it: not the same as unread
	}
	return &diagnosis.Logs{
		Pod:       req.pod,
		Container: req.container,
		Previous:  req.previous,
		Lines:     lines,
	}, nil
}

// errorLines returns the last max lines of data that errorLine matches,
// cleaned of terminal escapes and invalid UTF-8 and clipped to maxLogLine
// bytes each.
func errorLines(data []byte, max int) []string {
	ring := make([]string, 0, max)
	next := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		s := cleanLine(line)
		if s == "" || !errorLine.MatchString(s) {
			continue
		}
		s = clip.Bytes(s, maxLogLine)
		if len(ring) < max {
			ring = append(ring, s)
			continue
		}
		ring[next] = s
		next = (next + 1) % max
	}
	if len(ring) == 0 {
		return nil
	}
	return append(ring[next:], ring[:next]...)
}

func cleanLine(b []byte) string {
	if bytes.IndexByte(b, 0x1b) >= 0 {
		b = ansiEscape.ReplaceAll(b, nil)
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	return strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// logCache is a bounded LRU of log reads by pod UID, container and restart
// count, with one read in flight per key.
type logCache struct {
	mu       sync.Mutex
	max      int
	ll       *list.List // of *logEntry, most recent first
	byKey    map[string]*list.Element
	inflight map[string]*logFlight
}

type logEntry struct {
	key  string
	logs *diagnosis.Logs
	err  error
	at   time.Time
}

type logFlight struct {
	done chan struct{}
	logs *diagnosis.Logs
	err  error
}

func newLogCache(max int) *logCache {
	return &logCache{max: max, ll: list.New(), byKey: map[string]*list.Element{}, inflight: map[string]*logFlight{}}
}

func (lc *logCache) do(key string, now time.Time, read func() (*diagnosis.Logs, error)) (*diagnosis.Logs, error) {
	lc.mu.Lock()
	if el, ok := lc.byKey[key]; ok {
		e := el.Value.(*logEntry)
		if e.err == nil || now.Sub(e.at) < logErrorTTL {
			lc.ll.MoveToFront(el)
			lc.mu.Unlock()
			return e.logs, e.err
		}
		lc.ll.Remove(el)
		delete(lc.byKey, key)
	}
	if f, ok := lc.inflight[key]; ok {
		lc.mu.Unlock()
		<-f.done
		return f.logs, f.err
	}
	f := &logFlight{done: make(chan struct{})}
	lc.inflight[key] = f
	lc.mu.Unlock()

	f.logs, f.err = read()

	lc.mu.Lock()
	delete(lc.inflight, key)
	// A read cut short by the caller's own cancellation says nothing about
	// the pod: not remembered.
	if !errors.Is(f.err, context.Canceled) {
		lc.byKey[key] = lc.ll.PushFront(&logEntry{key: key, logs: f.logs, err: f.err, at: now})
		for lc.ll.Len() > lc.max {
			last := lc.ll.Back()
			lc.ll.Remove(last)
			delete(lc.byKey, last.Value.(*logEntry).key)
		}
	}
	lc.mu.Unlock()
	close(f.done)
	return f.logs, f.err
}

func (lc *logCache) len() int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.ll.Len()
}
