// Package probe is the "probe" signal source: one HTTP GET of a service
// profile's health_url tells whether users can reach the service (up), or
// how it is unreachable: the port refuses connections (down), it answers
// 5xx (crashed), or it does not answer within the deadline (hung). Anything
// else (DNS failure, TLS error, 3xx/4xx, a redirect to another host) proves
// nothing about the service and leaves the signal unknown.
//
// Probes go only to URLs written in the configuration (a profile's
// health_url, and the health_url of the profiles it depends on), never to a
// URL taken from an alert: alerts come from outside and would otherwise make
// amtriage a request forwarder into the cluster (SSRF). For the same reason a
// probe does not follow a redirect to another host.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
)

// SourceName is the probe's Source name, in signals and metrics.
const SourceName = "probe"

// Defaults and limits.
const (
	DefaultTimeout = 2 * time.Second
	// UserAgent identifies probes in the services' access logs.
	UserAgent = "amtriage-probe"
	// MaxBodyBytes is the most of a response body a probe reads.
	MaxBodyBytes = 4 << 10
	// MaxRedirects is how many same-host redirects a probe follows.
	MaxRedirects = 3
	// maxHeaderBytes bounds the response headers (net/http's default is 1 MiB).
	maxHeaderBytes = 64 << 10
)

// Outcome is what one probe found.
type Outcome string

// The outcomes. Up, Down, Crashed and Hung are known answers to "can users
// reach the service"; Error is not.
const (
	Up      Outcome = "up"      // 2xx
	Down    Outcome = "down"    // connection refused
	Crashed Outcome = "crashed" // 5xx
	Hung    Outcome = "hung"    // no response, headers or body within the deadline
	Error   Outcome = "error"   // DNS, TLS, 3xx/4xx, refused redirect, bad URL: unknown
)

// errOtherHost is CheckRedirect's refusal of a redirect to another host.
var errOtherHost = errors.New("redirect to another host refused")

// Result is one probe's outcome.
type Result struct {
	Outcome Outcome
	// Detail says what was seen: "HTTP 200", "connection refused",
	// "no answer within 2s", "redirect to another host refused"…
	Detail string
	// Status is the HTTP status code; 0 when no response came.
	Status int
	// Duration is how long the probe took, body read included.
	Duration time.Duration
	// URL is the probed URL with any password redacted, for notes.
	URL string
}

// Reachable turns the outcome into the reachable signal: up → known true;
// down, crashed, hung → known false; error → unknown.
func (r Result) Reachable() (known, value bool) {
	switch r.Outcome {
	case Up:
		return true, true
	case Down, Crashed, Hung:
		return true, false
	default:
		return false, false
	}
}

// Note is the one-line explanation used in signals, e.g.
// "GET http://api:8080/health: connection refused (down)".
func (r Result) Note() string {
	return fmt.Sprintf("GET %s: %s (%s)", r.URL, r.Detail, r.Outcome)
}

// Options configure a Prober. Zero values take the defaults.
type Options struct {
	// Timeout is a whole probe's deadline (connect, TLS, headers and body);
	// past it the service is hung. Default 2s (rules.ProbesConfig.Timeout).
	Timeout time.Duration
	// Metrics times each probe actually sent (source "probe", by outcome);
	// nil: none.
	Metrics *signal.Metrics
	// Client replaces the probe's own HTTP client, for tests. Its
	// CheckRedirect is replaced by the probe's same-host policy.
	Client *http.Client
}

// Prober sends health probes. It is safe for concurrent use.
type Prober struct {
	timeout time.Duration
	metrics *signal.Metrics
	client  *http.Client
}

// New returns a Prober.
//
// Probes use a plain net/http client, not go-retryablehttp, although every
// other outbound HTTP call goes through it: a probe measures one attempt. A
// retry would turn "refused" or "hung" into a slower, luckier answer and
// hide the very outage the probe is there to see; re-evaluation of the
// incident is what probes again later.
func New(opts Options) *Prober {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	var c http.Client
	if opts.Client != nil {
		c = *opts.Client
	} else {
		c.Transport = newTransport(opts.Timeout)
	}
	c.CheckRedirect = checkRedirect
	return &Prober{timeout: opts.Timeout, metrics: opts.Metrics, client: &c}
}

// newTransport dials afresh for every probe (no keep-alive pool: a pooled
// connection would not show a refused port, and a probe runs rarely), goes
// straight to the service (no proxy from the environment: the probe measures
// the service, not a proxy), and bounds each phase within the deadline.
func newTransport(timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: timeout, KeepAlive: -1}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
}

// checkRedirect follows a redirect only to the same scheme and host (port
// included: another port is another server), at most MaxRedirects times.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return errOtherHost
	}
	if len(via) > MaxRedirects {
		return fmt.Errorf("more than %d redirects", MaxRedirects)
	}
	return nil
}

// Probe sends one GET to rawURL, which must come from the configuration
// (a profile's health_url), never from an alert. The result is memoised in
// ev by URL, so a storm of alerts probes each URL once per evaluation (and
// profiles sharing a health_url share the probe); a nil ev memoises
// nothing. Cancelling ctx gives outcome error, not hung.
func (p *Prober) Probe(ctx context.Context, ev *signal.Evaluation, rawURL string) Result {
	r, _ := signal.Memo(ev, "probe\x00"+rawURL, func() (Result, error) {
		return p.probe(ctx, rawURL), nil
	})
	return r
}

func (p *Prober) probe(ctx context.Context, rawURL string) Result {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The raw text may hold credentials: don't repeat it.
		return Result{Outcome: Error, Detail: "invalid health_url", URL: "<invalid URL>"}
	}
	res := Result{URL: u.Redacted()}
	if u.Scheme != "http" && u.Scheme != "https" {
		res.Outcome, res.Detail = Error, fmt.Sprintf("unsupported scheme %q", u.Scheme)
		return res
	}
	if u.Host == "" {
		res.Outcome, res.Detail = Error, "health_url has no host"
		return res
	}

	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, u.String(), nil)
	if err != nil {
		res.Outcome, res.Detail = Error, "invalid health_url"
		return res
	}
	req.Header.Set("User-Agent", UserAgent)

	resp, err := p.client.Do(req)
	if err == nil {
		res.Status = resp.StatusCode
		// Read a little of the body, only so that a kept-alive connection
		// could be reused and a stalled body counts as hung; never more
		// than MaxBodyBytes of an endless one.
		_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes))
		resp.Body.Close()
		if rerr != nil && p.timedOut(ctx, pctx, rerr) {
			err = rerr
		}
	}
	res.Duration = time.Since(start)
	if err != nil {
		res.Outcome, res.Detail = p.classify(ctx, pctx, err)
	} else {
		res.Outcome, res.Detail = fromStatus(res.Status)
	}
	p.metrics.Observe(SourceName, string(res.Outcome), res.Duration)
	return res
}

func fromStatus(code int) (Outcome, string) {
	detail := fmt.Sprintf("HTTP %d", code)
	switch {
	case code >= 200 && code < 300:
		return Up, detail
	case code >= 500 && code < 600:
		return Crashed, detail
	default:
		return Error, detail
	}
}

// timedOut reports whether err is the probe's own deadline (not the
// caller's cancellation).
func (p *Prober) timedOut(ctx, pctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classify maps a failed request to an outcome and detail. ctx is the
// caller's context, pctx the probe's (with the deadline).
func (p *Prober) classify(ctx, pctx context.Context, err error) (Outcome, string) {
	if cerr := ctx.Err(); cerr != nil {
		return Error, "probe cancelled: " + cerr.Error()
	}
	if errors.Is(err, errOtherHost) {
		return Error, errOtherHost.Error()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return Down, "connection refused"
	}
	// A slow or failing resolver says nothing about the service.
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return Error, "DNS: " + dnsErr.Error()
	}
	if p.timedOut(ctx, pctx, err) {
		return Hung, fmt.Sprintf("no answer within %s", p.timeout)
	}
	// The url.Error around err repeats the URL; the note already has it.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &recErr) {
		return Error, "TLS: " + err.Error()
	}
	return Error, err.Error()
}

// Name is the source name, "probe".
func (p *Prober) Name() string { return SourceName }

// Signals probes svc's health_url (from the configuration; the alert is
// deliberately not consulted for a URL) and sets Reachable. A profile
// without health_url gives no signals. The error is always nil: a probe
// that proves nothing leaves Reachable unknown with the reason in its Note.
func (p *Prober) Signals(ctx context.Context, ev *signal.Evaluation, _ *template.Alert, svc *rules.Service) (severity.Signals, error) {
	var s severity.Signals
	if svc == nil || svc.HealthURL == "" {
		return s, nil
	}
	r := p.Probe(ctx, ev, svc.HealthURL)
	known, value := r.Reachable()
	s.Reachable = severity.Bool{Known: known, Value: value, Source: SourceName, Note: r.Note()}
	return s, nil
}

// Dependencies probes, concurrently, the health_url of each profile named
// in svc.DependsOn and returns their outcomes in that order, for the
// diagnosis (a dependency down points at infrastructure). Probes are
// memoised in ev like Probe's. A name with no profile, or a profile without
// health_url, is reported with outcome error and not probed.
func (p *Prober) Dependencies(ctx context.Context, ev *signal.Evaluation, cfg *rules.Config, svc *rules.Service) []diagnosis.Probe {
	if svc == nil || len(svc.DependsOn) == 0 {
		return nil
	}
	out := make([]diagnosis.Probe, len(svc.DependsOn))
	var wg sync.WaitGroup
	var panicked atomic.Value
	for i, name := range svc.DependsOn {
		out[i].Target = name
		dep := lookup(cfg, name)
		switch {
		case dep == nil:
			out[i].Outcome, out[i].Detail = string(Error), fmt.Sprintf("no service profile named %q", name)
			continue
		case dep.HealthURL == "":
			out[i].Outcome, out[i].Detail = string(Error), "profile has no health_url; not probed"
			continue
		}
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					panicked.Store(fmt.Sprint(r))
				}
			}()
			r := p.Probe(ctx, ev, dep.HealthURL)
			out[i].Outcome = string(r.Outcome)
			out[i].Detail = fmt.Sprintf("GET %s: %s", r.URL, r.Detail)
		})
	}
	wg.Wait()
	if r := panicked.Load(); r != nil {
		panic(r) // on the caller's goroutine, where the pipeline recovers it
	}
	return out
}

func lookup(cfg *rules.Config, name string) *rules.Service {
	if cfg == nil {
		return nil
	}
	for i := range cfg.Services {
		if cfg.Services[i].Name == name {
			return &cfg.Services[i]
		}
	}
	return nil
}

var _ signal.Source = (*Prober)(nil)
