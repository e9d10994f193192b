package boltstore

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/store"
)

// A store a running amtriage holds is refused, not read: bbolt's lock.
func TestOpenExportRefusesAStoreInUse(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	_, err := OpenExport(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "stop amtriage first") {
		t.Fatalf("OpenExport of a store held open: %v, want ErrInUse", err)
	}
	s.Close()
	e, err := OpenExport(dir)
	if err != nil {
		t.Fatalf("OpenExport once it is closed: %v", err)
	}
	e.Close()
}

func TestOpenExportRefusesWhatIsNoStore(t *testing.T) {
	_, err := OpenExport(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "holds no amtriage store") {
		t.Fatalf("OpenExport of an empty directory: %v", err)
	}
}

// Reading a store to copy it changes none of its bytes (OpenStore would:
// it marks the schema and aligns the inbox).
func TestExportWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.AppendInbox(inboxEntries(time.Now(), "a", "b")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := readFiles(t, dir)
	e, err := OpenExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	if err := e.Inbox(0, func(en store.InboxEntry) error { seqs = append(seqs, en.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if p, a := e.Sequences(); p != 0 || a != 2 || len(seqs) != 2 {
		t.Errorf("sequences %d, %d and entries %v; want 0, 2 and [1 2]", p, a, seqs)
	}
	e.Close()
	if after := readFiles(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Error("OpenExport changed the store's files")
	}
}

func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{InboxFile, StateFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// A panic in the caller's function is the caller's, not a damaged file: a
// file said to be damaged may be thrown away.
func TestExportDoesNotBlameTheFileForTheCallersPanic(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if err := s.AppendInbox(inboxEntries(time.Now(), "a")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	e, err := OpenExport(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	defer func() {
		if r := recover(); r != "caller's bug" {
			t.Errorf("recovered %v, want the caller's own panic", r)
		}
	}()
	err = e.Inbox(0, func(store.InboxEntry) error { panic("caller's bug") })
	t.Errorf("Inbox returned %v instead of panicking", err)
}
