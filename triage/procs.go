package triage

import (
	"os"
	"runtime"
)

// ReserveProcForSyncs raises GOMAXPROCS by one unless the GOMAXPROCS
// environment variable sets it. Every bbolt commit ends in fdatasync, a
// system call that keeps its P for the whole disk flush; with exactly one P
// per core, a core then idles while acknowledgements wait to be decoded.
// One extra P measured +30–40% durable webhook throughput on 2 cores
// (BENCHMARKS.md). It returns the new value.
func ReserveProcForSyncs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}
