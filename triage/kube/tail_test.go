package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTailLogs(t *testing.T) {
	long := make([]string, 0, 50)
	for i := range 50 {
		long = append(long, fmt.Sprintf("line %02d %s", i, strings.Repeat("x", 40)))
	}
	tests := []struct {
		name        string
		text        string
		err         error
		maxBytes    int
		wantLines   []string
		wantClipped string
		wantErr     string
	}{
		{name: "every line, escapes cleaned", text: "booting\n\x1b[31mERROR: cannot connect\x1b[0m\nexiting\n", maxBytes: 1 << 10,
			wantLines: []string{"booting", "ERROR: cannot connect", "exiting"}},
		{name: "the latest lines within the bound", text: strings.Join(long, "\n"), maxBytes: 2 * 49,
			wantLines: long[48:], wantClipped: fmt.Sprintf("… clipped: %d bytes more", 48*49)},
		{name: "read fails", err: errors.New("forbidden"), maxBytes: 1 << 10, wantErr: "logs of pod shop/api-7d9f-2: forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client := testCluster(t, Options{Now: func() time.Time { return t0 }, LogBytes: 1 << 20}, shop()...)
			r := &logReactor{text: tt.text, err: tt.err}
			r.install(c, client)
			tail, err := c.TailLogs(context.Background(), c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0), tt.maxBytes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tail.Pod != "api-7d9f-2" || !tail.Previous || strings.Join(tail.Lines, "|") != strings.Join(tt.wantLines, "|") || tail.Clipped != tt.wantClipped {
				t.Fatalf("tail %+v\nwant lines %q clipped %q", tail, tt.wantLines, tt.wantClipped)
			}
			if o := r.opts; o.TailLines == nil || *o.TailLines != logTailLines {
				t.Fatalf("options %+v", o)
			}
		})
	}
}
