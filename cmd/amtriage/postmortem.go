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

	"github.com/amtriage/amtriage/rules"
)

// postmortemTimeout bounds the one request `amtriage postmortem` makes.
const postmortemTimeout = 30 * time.Second

// postmortemCmd prints an incident's post-mortem (Markdown) from a running
// daemon: GET /api/incidents/{id}/postmortem.
func postmortemCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("postmortem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "the daemon's base URL, e.g. http://127.0.0.1:9095")
	tokenFile := fs.String("token-file", "", "file with the API's bearer token (default: $"+rules.EnvBearerToken+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: amtriage postmortem --url URL [--token-file FILE] INCIDENT-ID")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	u, err := url.Parse(*base)
	if fs.NArg() != 1 || *base == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fs.Usage()
		return 2
	}
	token := strings.TrimRight(os.Getenv(rules.EnvBearerToken), " \t\r\n")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "amtriage postmortem: reading the token file: %v\n", err)
			return 1
		}
		token = strings.TrimRight(string(b), " \t\r\n")
	}
	ctx, cancel := context.WithTimeout(ctx, postmortemTimeout)
	defer cancel()
	endpoint := strings.TrimRight(*base, "/") + "/api/incidents/" + url.PathEscape(fs.Arg(0)) + "/postmortem"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage postmortem: %v\n", err)
		return 1
	}
	req.Header.Set("Accept", "text/markdown")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "amtriage postmortem: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		fmt.Fprintf(stderr, "amtriage postmortem: %s: HTTP %d: %s\n", endpoint, resp.StatusCode, msg)
		return 1
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintf(stderr, "amtriage postmortem: reading the answer: %v\n", err)
		return 1
	}
	return 0
}
