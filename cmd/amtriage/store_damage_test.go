package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math/rand/v2"
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
		// The inbox holds nothing after processing but its meta pages: garble those.
		{"inbox.db garbled", "inbox.db", func() []byte { return garble(good["inbox.db"], 0) }, []string{"inbox.db", "damaged", "not yet processed"}},
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

// Damage nobody chose: a few random bytes of a used state.db flipped, many
// times over. Whatever bbolt meets (some of it in goroutines of its own,
// where a fault ends the process), serve either starts or says which file
// is damaged, with exit status 1; never a goroutine dump.
func TestRandomDamageNeverPanics(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "amtriage.yml"), "store:\n  path: "+data+"\n")
	d := startDaemon(t, cfg, freeAddr(t))
	for _, svc := range []string{"api", "checkout", "cart", "search", "pay"} {
		if code, err := post(context.Background(), d.url("/webhook"), "", stormBody(svc, 200, "20%")); err != nil || code != 200 {
			t.Fatalf("post: %d %v", code, err)
		}
	}
	waitProcessed(t, d)
	if err := d.kill(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(data, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := os.ReadFile(filepath.Join(data, "inbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	outcomes := map[string]int{}
	for run := 0; run < 40; run++ {
		damaged := bytes.Clone(good)
		for range 1 + rng.IntN(16) {
			damaged[rng.IntN(min(len(damaged), 256<<10))] ^= byte(1 + rng.IntN(255))
		}
		store := t.TempDir()
		writeFile(t, filepath.Join(store, "state.db"), string(damaged))
		writeFile(t, filepath.Join(store, "inbox.db"), string(inbox))
		c := writeFile(t, filepath.Join(store, "c.yml"), "store:\n  path: "+store+"\n")
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		cmd := exec.CommandContext(ctx, amtriageBin, "serve", "--config", c, "--listen", freeAddr(t))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		out := stderr.String()
		var ee *exec.ExitError
		switch {
		case strings.Contains(out, "goroutine "):
			t.Fatalf("run %d: a crash instead of an error:\n%s", run, tail(out, 2000))
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			if !strings.Contains(out, "state.db") || !strings.Contains(out, "damaged") {
				t.Errorf("run %d: exit 1 without naming the damaged file:\n%s", run, tail(out, 1000))
			}
			outcomes["refused"]++
		case ctx.Err() != nil:
			outcomes["started"]++ // the damage was in pages nothing reads
		default:
			t.Errorf("run %d: serve ended with %v\n%s", run, err, tail(out, 1000))
		}
	}
	t.Logf("outcomes: %v", outcomes)
	if outcomes["refused"] == 0 {
		t.Error("no damage was detected: the test damages nothing that is read")
	}
}

// testdata/damaged-store holds a state.db with 16 random bytes flipped
// whose damage bbolt meets in a goroutine of its own, where the fault ends
// the process (fatal error: fault): read in-process, no recover can catch
// it. serve checks the store in a child process first, so it still exits 1
// naming the file.
func TestDamageThatFaultsInsideBboltIsAClearError(t *testing.T) {
	store := t.TempDir()
	for _, f := range []string{"state.db", "inbox.db"} {
		gz, err := os.Open(filepath.Join("testdata", "damaged-store", f+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(gz)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		gz.Close()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(store, f), string(b))
	}
	c := writeFile(t, filepath.Join(store, "c.yml"), "store:\n  path: "+store+"\n")
	cmd := exec.Command(amtriageBin, "serve", "--config", c, "--listen", freeAddr(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	out := stderr.String()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Contains(out, "fatal error") || strings.Contains(out, "goroutine ") {
		t.Fatalf("serve ended with %v, want exit 1 and an error:\n%s", err, tail(out, 2000))
	}
	if !strings.Contains(out, filepath.Join(store, "state.db")) || !strings.Contains(out, "damaged") {
		t.Errorf("the error does not name the damaged file:\n%s", out)
	}
	// The same check, offline.
	var so, se bytes.Buffer
	check := exec.Command(amtriageBin, "check-store", store)
	check.Stdout, check.Stderr = &so, &se
	if err := check.Run(); err == nil {
		t.Errorf("check-store passed a damaged store:\n%s", so.String())
	}
	if out, err := exec.Command(amtriageBin, "check-store", t.TempDir()).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("check-store of an empty directory: %v %s", err, out)
	}
}
