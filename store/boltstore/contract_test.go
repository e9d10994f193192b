package boltstore

import (
	"testing"

	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/storetest"
)

// backend opens stores in a fresh directory; reopen closes the last one
// and opens the directory again.
func backend(t testing.TB) (store.Store, func() store.Store) {
	dir := t.TempDir()
	open := func() *Store {
		t.Helper()
		s, err := OpenStore(dir)
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		t.Cleanup(func() { s.Close() }) // a second Close is harmless
		return s
	}
	cur := open()
	return cur, func() store.Store {
		t.Helper()
		if err := cur.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		cur = open()
		return cur
	}
}

func TestContract(t *testing.T) { storetest.Run(t, backend) }

func BenchmarkLoadState(b *testing.B) { storetest.BenchmarkLoadState(b, backend) }
