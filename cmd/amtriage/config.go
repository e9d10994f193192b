package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store/pgstore"
	"github.com/amtriage/amtriage/triage/prom"
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
	cfg, err := loadConfig(path)
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

// loadConfig is the one validation: check-config runs it, and so does serve
// at start and on every reload. It reads --config (the embedded default
// when empty) with rules.Load, then builds and throws away what serve
// builds from it, so that nothing serve would refuse passes check-config.
func loadConfig(path string) (*rules.Config, error) {
	var cfg *rules.Config
	var err error
	if path == "" {
		// The default has no *_file keys; $AMTRIAGE_* secrets still apply.
		cfg, err = rules.LoadDefault(os.Getenv)
	} else {
		cfg, err = rules.Load(path)
	}
	if err != nil {
		return nil, err
	}
	if err := tryBuild(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// storeDirUsable reports a store path serve could not open: an existing
// file that is no directory, or one under a file (serve creates missing
// directories).
func storeDirUsable(path string) error {
	if path == "" {
		return nil
	}
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			return fmt.Errorf("%s is not a directory", p)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return err
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// tryBuild builds every receiver, the Prometheus source and the TLS
// certificate the configuration asks for, without starting anything.
func tryBuild(cfg *rules.Config) error {
	var errs rules.Errors
	quiet := slog.New(slog.DiscardHandler)
	if _, err := buildNotifiers(cfg, quiet, quiet, noState{}, nil); err != nil {
		errs = append(errs, &rules.KeyError{Key: "receivers", Err: err})
	}
	if cfg.Prometheus.URL != "" {
		if _, err := prom.New(cfg.Prometheus, prom.Options{Log: quiet}); err != nil {
			errs = append(errs, &rules.KeyError{Key: "prometheus.url", Err: err})
		}
	}
	if pg := cfg.Store.Postgres; pg == nil { // with PostgreSQL store.path is not used
		if err := storeDirUsable(cfg.Store.Path); err != nil {
			errs = append(errs, &rules.KeyError{Key: "store.path", Err: err})
		}
	} else if err := pgstore.CheckDSN(string(pg.DSN)); err != nil {
		errs = append(errs, &rules.KeyError{Key: "store.postgres.dsn", Err: err})
	}
	if k := cfg.Kubernetes; k.Enabled && k.Kubeconfig != "" {
		if _, err := os.Stat(k.Kubeconfig); err != nil {
			errs = append(errs, &rules.KeyError{Key: "kubernetes.kubeconfig", Err: err})
		}
	}
	if cfg.TLS.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			errs = append(errs, &rules.KeyError{Key: "tls", Err: fmt.Errorf("loading the certificate: %w", err)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// noState is the receiver state of a trial build: nothing is delivered.
type noState struct{}

func (noState) LoadReceiverState(string, string, any) (bool, error) { return false, nil }
func (noState) SaveReceiverState(string, string, any) error         { return nil }
