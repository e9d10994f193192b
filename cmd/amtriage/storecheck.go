package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/amtriage/amtriage/store/boltstore"
)

// checkStoreCmd is `amtriage check-store DIR`: read the store's files
// once and check them, without changing them. It prints each file before
// reading it, so whoever runs it knows which one a crash was in.
func checkStoreCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: amtriage check-store DIR") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dir := fs.Arg(0)
	err := boltstore.CheckStore(dir, func(path string) { fmt.Fprintf(stdout, "checking %s\n", path) })
	if err != nil {
		fmt.Fprintf(stderr, "amtriage: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", dir)
	return 0
}

// checkStoreIsolated runs check-store in a child process before serve opens
// the store: bbolt reads some pages in goroutines of its own, where a fault
// on a damaged page ends the process; the child's end tells which file.
func checkStoreIsolated(ctx context.Context, dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return nil // cannot isolate: OpenStore's own checks still run
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, "check-store", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return errors.New(strings.TrimPrefix(strings.TrimSpace(lastLine(stderr.String())), "amtriage: "))
	case errors.As(err, &exit):
		file := strings.TrimPrefix(lastLine(stdout.String()), "checking ")
		first := strings.TrimSpace(firstLine(stderr.String()))
		return fmt.Errorf("store file %s is damaged: reading it crashed bbolt (%s). Restore it from a backup, or move it aside to start without it", file, first)
	default:
		return nil // the check could not run: OpenStore's own checks still run
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
