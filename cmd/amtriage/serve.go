package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default: the embedded default config)")
	listen := fs.String("listen", "", "override the config's listen address")
	logLevel := fs.String("log.level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "amtriage: --log.level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	procs := triage.ReserveProcForSyncs()
	// SIGHUP reloads, as for Prometheus and Alertmanager; caught from the
	// start so that an early one does not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// load is the one validation (check-config's), at start and on reloads.
	load := func() (*rules.Config, error) {
		cfg, err := loadConfig(*configPath)
		if err != nil {
			return nil, err
		}
		if *listen != "" {
			cfg.Listen = *listen
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		printConfigErrors(stderr, *configPath, err)
		return 1
	}
	if cfg.Auth.BearerToken == "" && cfg.Auth.BasicAuth.Password == "" && !loopback(cfg.Listen) {
		log.Warn("no webhook authentication on a non-loopback address: anyone who can reach it can post alerts; set auth.bearer_token_file or $AMTRIAGE_BEARER_TOKEN", "listen", cfg.Listen)
	}
	// Incident events go to stdout, one JSON line each; the daemon's own logs to stderr.
	events := slog.New(slog.NewJSONHandler(stdout, nil)).With("notifier", "log")
	if cfg.Store.Postgres == nil { // a bbolt store: its files are checked first
		if err := checkStoreIsolated(ctx, cfg.Store.Path); err != nil {
			log.Error("starting amtriage", "err", err)
			return 1
		}
	}
	hooks := &daemonHooks{}
	sources := &sourceBuilder{log: log}
	d, err := triage.NewDaemon(cfg, triage.Options{
		Log: log,
		Receivers: func(state notify.ReceiverState) ([]notify.Notifier, error) {
			return buildNotifiers(cfg, log, events, state, hooks)
		},
		Enrichment: sources.start(cfg),
		Load:       load,
		Rebuild: func(cfg *rules.Config, state notify.ReceiverState) ([]notify.Notifier, *triage.Enrichment, error) {
			ns, err := buildNotifiers(cfg, log, events, state, hooks)
			if err != nil {
				return nil, nil, err
			}
			e, err := sources.rebuild(cfg)
			return ns, e, err
		},
	})
	if err != nil {
		log.Error("starting amtriage", "err", err)
		return 1
	}
	hooks.peak = func(id string) (severity.Level, bool) {
		inc, ok := d.Pipeline().Incident(id)
		return inc.PeakSeverity, ok
	}
	hooks.report = d.AppendAction
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		d.Close()
		log.Error("listening", "addr", cfg.Listen, "err", err)
		return 1
	}
	log.Info("starting", "version", versionString(), "gomaxprocs", procs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration", "config", *configPath)
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				_ = d.Reload(rctx) // logs the outcome; the metrics tell it too
				cancel()
			}
		}
	}()
	if err := d.Serve(ctx, ln); err != nil {
		log.Error("serving", "err", err)
		return 1
	}
	return 0
}

// loopback reports whether addr only accepts connections from this host.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
