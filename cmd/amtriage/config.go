package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/amtriage/amtriage/rules"
)

func checkConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: amtriage check-config FILE") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	cfg, err := rules.Load(path)
	if err != nil {
		printConfigErrors(stderr, path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d service profiles)\n", path, len(cfg.Services))
	return 0
}

// printConfigErrors lists every problem on its own line, prefixed with the file.
func printConfigErrors(w io.Writer, path string, err error) {
	var list rules.Errors
	if errors.As(err, &list) {
		fmt.Fprintf(w, "%s: %d error(s):\n", path, len(list))
		for _, e := range list {
			fmt.Fprintf(w, "  %v\n", e)
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}

// loadConfig reads --config, or the embedded default when it is empty.
func loadConfig(path string) (*rules.Config, error) {
	if path == "" {
		// The default has no *_file keys; $AMTRIAGE_* secrets still apply.
		cfg := rules.Default()
		if err := rules.ResolveSecrets(cfg, ".", os.Getenv); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	return rules.Load(path)
}
