package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage"
	"github.com/amtriage/amtriage/triage/signal"
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
}

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
	msg, err := triage.DecodeMessage(body)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage classify: %s: %v\n", name, err)
		return 1
	}
	// Offline: no Prometheus, probes or Kubernetes, only what the payload and profiles say.
	t := &triage.Triager{Config: cfg}
	ev := signal.NewEvaluation(time.Now())
	enc := json.NewEncoder(stdout)
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		r := t.Classify(ctx, ev, a, nil)
		if err := enc.Encode(classification{
			Fingerprint: a.Fingerprint, Alertname: a.Labels["alertname"], Service: r.Service, Status: a.Status,
			Severity: r.Decision.Severity, Rule: r.Decision.Rule, Reasons: r.Decision.Reasons,
			Signals: r.Decision.Signals, Labels: a.Labels,
		}); err != nil {
			fmt.Fprintf(stderr, "amtriage classify: %v\n", err)
			return 1
		}
	}
	return 0
}
