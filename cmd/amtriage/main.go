// Command amtriage receives Alertmanager webhooks, decides each problem's
// severity with the incident-response decision tree and notifies on-call.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `amtriage: incident triage for Alertmanager webhooks

Usage:
  amtriage serve [--config FILE]            run the daemon (embedded default config without --config)
  amtriage check-config FILE                validate a configuration file, listing every error
  amtriage check-store DIR                  read and check the store's files, changing nothing
  amtriage store migrate --from DIR [--config FILE]
                                            copy a stopped bbolt store into the PostgreSQL of store.postgres
  amtriage classify [--config FILE] [PAYLOAD.json | -]
                                            triage one webhook payload offline; one JSON object per alert
  amtriage postmortem --url URL [--token-file FILE] ID
                                            print an incident's post-mortem (Markdown) from a running daemon
  amtriage version                          print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without process globals, so tests can drive every subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "check-store":
		return checkStoreCmd(args[1:], stdout, stderr)
	case "store":
		return storeCmd(ctx, args[1:], stdout, stderr)
	case "classify":
		return classify(ctx, args[1:], stdin, stdout, stderr)
	case "postmortem":
		return postmortemCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "amtriage: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
