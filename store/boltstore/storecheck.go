package boltstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openFile opens one of the store's bbolt files after reading all of it
// once, read-only, where a panic can be recovered: bbolt panics on a
// damaged page (some of it in goroutines of its own, as it rebuilds the
// freelist), and a truncated file faults when its pages are touched. Either
// would end the daemon with a goroutine dump instead of saying which file is
// damaged and what to do.
func openFile(path string, opts *bolt.Options) (*bolt.DB, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		if err := readAll(path); err != nil {
			return nil, err
		}
	}
	var db *bolt.DB
	err := guarded(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	var corrupt *CorruptError
	if err != nil && !errors.As(err, &corrupt) {
		err = describeOpenError(path, err)
	}
	return db, err
}

func describeOpenError(path string, err error) error {
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("open %s: another process holds it (is another amtriage using %s?)", path, filepath.Dir(path))
	}
	return &CorruptError{Path: path, Err: err}
}

// CorruptError is a store file that cannot be read.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	what := "the incident state (open incidents, dead letters, what receivers remember)"
	if filepath.Base(e.Path) == InboxFile {
		what = "the notifications acknowledged but not yet processed"
	}
	return fmt.Sprintf("store file %s is damaged or not an amtriage store (%v). Restore it from a backup; "+
		"or move it aside to start without %s.", e.Path, e.Err, what)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// guarded runs f, turning a panic or a memory fault (a truncated file's
// pages) into a CorruptError naming path.
func guarded(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptError{Path: path, Err: fmt.Errorf("%v", r)}
		}
	}()
	return f()
}

// readAll walks every bucket, key and value of a bbolt file read-only,
// touching each page, and turns a panic or a fault into an error.
func readAll(path string) error {
	return guarded(path, func() error { return walkFile(path) })
}

func walkFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return describeOpenError(path, err)
	}
	defer db.Close()
	var sink byte
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nested := b.Bucket(k); nested != nil {
					return walk(nested)
				}
				return nil
			}
			for i := 0; i < len(v); i += 4096 {
				sink ^= v[i]
			}
			if len(v) > 0 {
				sink ^= v[len(v)-1]
			}
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(b) }); err != nil {
			return err
		}
		// Then bbolt's own check of the pages and the freelist, which the
		// walk above made safe: every page it reads has been read once.
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		return first
	})
	_ = sink
	if err != nil {
		return &CorruptError{Path: path, Err: err}
	}
	return nil
}

// refuseLostState refuses a missing or empty state.db beside an inbox.db
// that has been used: starting empty would forget every open incident and
// leave the inbox's processed entries looking unprocessed.
func refuseLostState(dir string, inboxSeq uint64) error {
	path := filepath.Join(dir, StateFile)
	fi, err := os.Stat(path)
	switch {
	case inboxSeq == 0:
		return nil
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("store: %s is missing but %s beside it has been used (%d notifications): the incident state is lost. "+
			"Restore %s from a backup; to start anew on purpose, move both files aside", path, InboxFile, inboxSeq, StateFile)
	case err != nil:
		return fmt.Errorf("store: %w", err)
	case fi.Size() == 0:
		return fmt.Errorf("store: %s is empty but %s beside it has been used (%d notifications): the incident state is lost. "+
			"Restore %s from a backup; to start anew on purpose, move both files aside", path, InboxFile, inboxSeq, StateFile)
	}
	return nil
}

// CheckStore reads every file of the store under dir once, read-only, and
// runs bbolt's own consistency check on it, telling checking which file it
// is about to read. A damaged file is a *CorruptError. It may still crash
// on some damage (bbolt reads pages in goroutines of its own, where a fault
// cannot be recovered): `amtriage serve` runs it in a child process first.
func CheckStore(dir string, checking func(path string)) error {
	for _, name := range []string{InboxFile, StateFile} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			continue // missing or new: OpenStore decides
		}
		if checking != nil {
			checking(path)
		}
		if err := readAll(path); err != nil {
			return err
		}
	}
	return nil
}
