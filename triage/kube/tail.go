package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	corev1 "k8s.io/api/core/v1"

	"github.com/amtriage/amtriage/diagnosis"
)

// Tail is the last lines of one container's log, kept as evidence.
type Tail struct {
	Pod       string   `json:"pod"`
	Container string   `json:"container,omitempty"`
	Previous  bool     `json:"previous"` // the container before its last restart
	Lines     []string `json:"lines"`
	// Clipped marks lines left out past the byte bound ("… clipped: N
	// bytes more"); empty when none were.
	Clipped string `json:"clipped,omitempty"`
}

// TailLogs reads the last lines (up to logTailLines) of the snapshot's
// first failing pod, else of its first pod, keeping at most maxBytes of
// them (the latest). Not cached: evidence is read once per incident. No
// pod: nil, nil.
func (c *Cluster) TailLogs(ctx context.Context, s *diagnosis.Snapshot, maxBytes int) (*Tail, error) {
	if s == nil || len(s.Pods) == 0 {
		return nil, nil
	}
	req, ok := c.pickLogs(s)
	if !ok {
		p := s.Pods[0]
		req = logRequest{ns: s.Namespace, pod: p.Name, container: p.Container}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.LogTimeout)
	defer cancel()
	opts := &corev1.PodLogOptions{
		Container:  req.container,
		Previous:   req.previous,
		TailLines:  new(int64(logTailLines)),
		LimitBytes: new(c.opts.LogBytes),
	}
	rc, err := c.client.CoreV1().Pods(req.ns).GetLogs(req.pod, opts).Stream(ctx)
	if err != nil {
		var ue *url.Error
		for errors.As(err, &ue) { // its text repeats the API server's URL
			err = ue.Err
		}
		return nil, fmt.Errorf("logs of pod %s/%s: %w", req.ns, req.pod, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, c.opts.LogBytes))
	if err != nil {
		return nil, fmt.Errorf("logs of pod %s/%s: %w", req.ns, req.pod, err)
	}
	t := &Tail{Pod: req.pod, Container: req.container, Previous: req.previous, Lines: []string{}}
	var lines []string
	for line := range bytes.SplitSeq(bytes.TrimRight(data, "\n"), []byte{'\n'}) {
		if s := cleanLine(line); s != "" {
			lines = append(lines, s)
		}
	}
	// The latest lines within maxBytes (each counted with its newline).
	kept, size := len(lines), 0
	for kept > 0 && size+len(lines[kept-1])+1 <= maxBytes {
		size += len(lines[kept-1]) + 1
		kept--
	}
	if kept > 0 {
		more := 0
		for _, l := range lines[:kept] {
			more += len(l) + 1
		}
		t.Clipped = fmt.Sprintf("… clipped: %d bytes more", more)
	}
	t.Lines = append(t.Lines, lines[kept:]...)
	return t, nil
}
