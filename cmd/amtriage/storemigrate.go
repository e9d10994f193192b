package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtriage/amtriage/store/boltstore"
	"github.com/amtriage/amtriage/store/pgstore"
)

const storeUsage = `usage: amtriage store migrate --from DIR [--config FILE]

Copies the bbolt store in DIR (store.path) into the PostgreSQL that the
configuration's store.postgres names (dsn_file, or $AMTRIAGE_POSTGRES_DSN):
incidents with their alerts, tombstones, heartbeats, what receivers remember
(Slack messages, Grafana annotations), the queued outbox events with their
attempts, dead letters, evidence, and the notifications acknowledged but not
yet processed. Nothing is lost, nothing is sent twice.

Stop amtriage first: DIR is opened read-only and refused while a process
holds it. The database must hold no amtriage state, and no amtriage may hold
its leader lease. The copy is one transaction, under the lease: all of it or
nothing. DIR is left as it was.

Exit status: 0 copied, 1 refused or failed, 2 usage.

Flags:
`

// storeCmd is `amtriage store SUBCOMMAND`.
func storeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "migrate" {
		return storeMigrate(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, storeUsage)
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "amtriage store: unknown subcommand %q\n", args[0])
	}
	fmt.Fprint(stderr, strings.SplitAfter(storeUsage, "\n")[0])
	return 2
}

// storeMigrate is `amtriage store migrate`: see storeUsage.
func storeMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the bbolt store's directory (store.path)")
	cfgPath := fs.String("config", "", "the configuration naming store.postgres (the embedded default without it)")
	usage := func(w io.Writer) {
		fmt.Fprint(w, storeUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fs.Usage = func() {} // printed below: to stdout when asked for
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		usage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "amtriage store migrate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *from == "" {
		fmt.Fprintln(stderr, "amtriage store migrate: --from DIR is required: the directory of the bbolt store to copy (store.path)")
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		printConfigErrors(stderr, configName(*cfgPath), err)
		return 1
	}
	if cfg.Store.Postgres == nil {
		fmt.Fprintf(stderr, "amtriage store migrate: %s does not set store.postgres: there is no PostgreSQL to copy into "+
			"(set store.postgres with dsn_file, or $AMTRIAGE_POSTGRES_DSN)\n", configName(*cfgPath))
		return 1
	}
	dsn := string(cfg.Store.Postgres.DSN)
	target := pgstore.DescribeDSN(dsn)

	src, err := boltstore.OpenExport(*from)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage store migrate: %v\n", err)
		return 1
	}
	defer src.Close()

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	pool, err := pgstore.Connect(cctx, dsn, pgstore.WithApplicationSuffix("migrate"), pgstore.WithMaxConns(2))
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "amtriage store migrate: %v\n", err) // Connect names the server, never the password
		return 1
	}
	defer pool.Close()
	counts, err := pgstore.Import(ctx, pool, src)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage store migrate: postgres %s: %v\n", target, pgstore.ScrubError(dsn, err))
		return 1
	}
	printCounts(stdout, *from, target, counts)
	return 0
}

func configName(path string) string {
	if path == "" {
		return "the default configuration"
	}
	return path
}

// printCounts says what was copied, kind by kind, and where to.
func printCounts(w io.Writer, from, target string, c *pgstore.ImportCounts) {
	fmt.Fprintf(w, "copied the bbolt store in %s into PostgreSQL %s:\n", from, target)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(what string, n int, detail string) {
		if detail != "" {
			detail = " (" + detail + ")"
		}
		fmt.Fprintf(tw, "  %s\t%d%s\n", what, n, detail)
	}
	row("incidents", c.Incidents, "")
	row("alerts", c.Alerts, "")
	row("tombstones", c.Tombstones, "")
	row("heartbeats", c.Heartbeats, "")
	row("receiver state", sum(c.ReceiverStates), perReceiver(c.ReceiverStates))
	row("outbox events", sum(c.Outbox), perReceiver(c.Outbox))
	row("dead letters", c.DeadLetters, "")
	row("evidence", c.Evidence, fmt.Sprintf("%d PNGs", c.EvidencePNGs))
	row("inbox entries", c.Inbox, fmt.Sprintf("not yet processed; processed up to %d, the next is %d", c.LastProcessed, c.NextInboxSeq))
	tw.Flush()
	fmt.Fprintf(w, "Start amtriage with store.postgres now; do not start it on %s again (its state lives in PostgreSQL). Keep %s until the new one runs well.\n", from, from)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func perReceiver(m map[string]int) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, m[r]))
	}
	return strings.Join(parts, ", ")
}
