package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// postmortemCmd is `amtriage postmortem --url URL ID`: GET
// /api/incidents/{ID}/postmortem from a running daemon and print it. The
// bearer token, when the API asks for one, comes from --token-file or
// $AMTRIAGE_BEARER_TOKEN, never from the command line.
func postmortemCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("postmortem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:9095", "the daemon's URL")
	tokenFile := fs.String("token-file", "", "file holding the API's bearer token (default $AMTRIAGE_BEARER_TOKEN)")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: amtriage postmortem --url URL [--token-file FILE] ID") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		fs.Usage()
		return 2
	}
	token := os.Getenv("AMTRIAGE_BEARER_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "amtriage: reading the token: %v\n", err)
			return 1
		}
		token = strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	target := strings.TrimRight(*base, "/") + "/api/incidents/" + url.PathEscape(fs.Arg(0)) + "/postmortem"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage: %v\n", err)
		return 2
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage: GET %s: %v\n", target, err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		fmt.Fprintf(stderr, "amtriage: reading the answer: %v\n", err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		fmt.Fprintf(stderr, "amtriage: GET %s: %s: %s\n", target, resp.Status, msg)
		return 1
	}
	_, _ = stdout.Write(body)
	return 0
}
