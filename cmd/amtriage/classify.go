package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/webhook"
)

// classification is one line of `amtriage classify` output.
type classification struct {
	Fingerprint string            `json:"fingerprint"`
	Alertname   string            `json:"alertname"`
	Service     string            `json:"service"`
	Status      string            `json:"status"`
	Severity    severity.Level    `json:"severity"`
	Rule        int               `json:"rule"`
	Reasons     []string          `json:"reasons"`
	Signals     severity.Signals  `json:"signals"`
	Labels      map[string]string `json:"labels"`
	// Diagnosis of a firing alert, when Kubernetes or probes are configured.
	Diagnosis *diagnosis.Diagnosis `json:"diagnosis,omitempty"`
}

// classifySyncTimeout bounds the wait for Kubernetes caches in a one-shot run.
const classifySyncTimeout = 15 * time.Second

func classify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("classify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default: the embedded default config)")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: amtriage classify [--config FILE] [PAYLOAD.json | -]") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		printConfigErrors(stderr, *configPath, err)
		return 1
	}
	in, name := stdin, "stdin"
	if p := fs.Arg(0); p != "" && p != "-" {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(stderr, "amtriage classify: %v\n", err)
			return 1
		}
		defer f.Close()
		in, name = f, p
	}
	body, err := io.ReadAll(in)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage classify: reading %s: %v\n", name, err)
		return 1
	}
	msg, err := webhook.DecodeMessage(body)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage classify: %s: %v\n", name, err)
		return 1
	}
	// The sources the configuration names are used, as serve would; the
	// others are skipped. Logs go to stderr, results to stdout.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := newSignalSources(cfg, log, prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintf(stderr, "amtriage classify: %v\n", err)
		return 1
	}
	if e.Run != nil {
		runCtx, stop := context.WithCancel(ctx)
		if e.cluster != nil {
			e.cluster.Start(runCtx) // before waiting: Run starts it on its own goroutine (Start is idempotent)
		}
		done := make(chan struct{})
		go func() { e.Run(runCtx); close(done) }()
		defer func() { stop(); <-done }()
		if e.cluster != nil {
			wctx, cancel := context.WithTimeout(ctx, classifySyncTimeout)
			if err := e.cluster.WaitForSync(wctx); err != nil {
				fmt.Fprintf(stderr, "amtriage classify: %v; the snapshot will be partial\n", err)
			}
			cancel()
		}
	}
	t := &triage.Triager{Config: cfg, Sources: e.Sources}
	ev := signal.NewEvaluation(time.Now())
	enc := json.NewEncoder(stdout)
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		r := t.Classify(ctx, ev, a, nil)
		if r.Service == "" { // as serve groups it: by its Alertmanager group
			r.Service, _ = triage.GroupUnit(msg, a)
		}
		out := classification{
			Fingerprint: a.Fingerprint, Alertname: a.Labels["alertname"], Service: r.Service, Status: a.Status,
			Severity: r.Decision.Severity, Rule: r.Decision.Rule, Reasons: r.Decision.Reasons,
			Signals: r.Decision.Signals, Labels: a.Labels,
		}
		if a.Status == "firing" && (r.Profile != nil || e.cluster != nil) {
			out.Diagnosis = e.enricher.Diagnose(ctx, ev, a, r.Profile, r.Decision)
		}
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "amtriage classify: %v\n", err)
			return 1
		}
	}
	return 0
}
