package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A damaged or missing store file is a clear error naming the file and
// what to do, with exit status 1: never a panic with a goroutine dump, and
// never an empty state.db silently standing in for the one that was lost.
func TestDamagedStoreIsAClearError(t *testing.T) {
	// A store that has been used: three open incidents.
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+data+"\n")
	d := startDaemon(t, cfg, freeAddr(t))
	for _, svc := range []string{"api", "checkout", "cart"} {
		if code, err := post(context.Background(), d.url("/webhook"), "", stormBody(svc, 50, "20%")); err != nil || code != 200 {
			t.Fatalf("post: %d %v", code, err)
		}
	}
	waitProcessed(t, d)
	if err := d.kill(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	good := map[string][]byte{}
	for _, f := range []string{"state.db", "inbox.db"} {
		b, err := os.ReadFile(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		good[f] = b
	}
	garble := func(b []byte, at int) []byte {
		out := bytes.Clone(b)
		for i := at; i < len(out) && i < at+8*4096; i++ {
			out[i] = byte(i*131 + 7)
		}
		return out
	}
	tests := []struct {
		name string
		file string
		data func() []byte // nil: remove the file
		want []string
	}{
		{"state.db pages garbled", "state.db", func() []byte { return garble(good["state.db"], 3*4096) }, []string{"state.db", "damaged", "backup", "move it aside"}},
		{"state.db truncated", "state.db", func() []byte { return good["state.db"][:len(good["state.db"])/3] }, []string{"state.db", "backup"}},
		{"state.db meta pages garbled", "state.db", func() []byte { return garble(good["state.db"], 0) }, []string{"state.db", "damaged"}},
		{"state.db empty beside a used inbox.db", "state.db", func() []byte { return []byte{} }, []string{"state.db is empty", "inbox.db", "backup"}},
		{"state.db missing beside a used inbox.db", "state.db", nil, []string{"state.db is missing", "inbox.db"}},
		{"inbox.db pages garbled", "inbox.db", func() []byte { return garble(good["inbox.db"], 2*4096) }, []string{"inbox.db", "damaged", "not yet processed"}},
		{"not a database at all", "inbox.db", func() []byte { return bytes.Repeat([]byte("not bbolt "), 1000) }, []string{"inbox.db", "damaged"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			for f, b := range good {
				if err := os.WriteFile(filepath.Join(store, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(store, tc.file)
			if tc.data == nil {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, tc.data(), 0o600); err != nil {
				t.Fatal(err)
			}
			c := writeFile(t, filepath.Join(store, "c.yml"), "store:\n  path: "+store+"\n")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, amtriageBin, "serve", "--config", c, "--listen", freeAddr(t))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("serve ended with %v, want exit status 1\n%s", err, stderr.String())
			}
			out := stderr.String()
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Fatalf("a panic instead of an error:\n%s", tail(out, 3000))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not say %q:\n%s", w, out)
				}
			}
			if tc.file == "state.db" && tc.data != nil {
				if b, _ := os.ReadFile(path); len(b) != len(tc.data()) {
					t.Errorf("serve changed the damaged file (%d bytes, was %d)", len(b), len(tc.data()))
				}
			}
		})
	}
}
