package testutil

import (
	"net"
	"testing"
)

// FreeAddr returns a 127.0.0.1 host:port nothing listens on (just now): a
// server to start there, or a refused connection to provoke.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
