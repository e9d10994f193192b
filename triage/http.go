package triage

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/webhook"
)

// API serves the daemon's HTTP interface.
type API struct {
	Committer *Committer
	Pipeline  *Pipeline
	Store     store.Store
	// StoreHealth, when set, says whether the store can be reached (a
	// database): /readyz is ready only if it can.
	StoreHealth func(ctx context.Context) error
	Receivers   []string // names of the configured receivers, for replays
	OnReplay    func()   // wakes the receivers after an event is replayed
	replayMu    sync.Mutex
	Metrics     *Metrics
	Registry    *prometheus.Registry
	Log         *slog.Logger
	Auth        rules.AuthConfig
	// Reload applies the configuration file again (POST /-/reload); nil:
	// reloading is not available.
	Reload       func(ctx context.Context) error
	MaxBodyBytes int64
	// Inflight bounds the bytes of webhook bodies being read, decoded and
	// committed at once, so concurrent storms cannot exhaust memory; nil: no
	// bound. It is charged as bodies arrive.
	Inflight *ByteBudget
	// MinBodyRate (bytes/s; 0: none) cuts bodies slower than it once
	// BodyGrace (default 10s) has passed, or silent for BodyGrace, with 408.
	MinBodyRate int64
	BodyGrace   time.Duration
	// web is the HTML pages (triage/web.go), replaced on reload; nil:
	// none are served.
	web atomic.Pointer[webPages]

	draining atomic.Bool
	// reloaded replaces Auth and Receivers once a reload has applied.
	reloadedAuth atomic.Pointer[rules.AuthConfig]
	pdSecret     atomic.Pointer[string] // pagerduty.webhook_secret_file (empty: the endpoint is off)
	slSecret     atomic.Pointer[string] // slack.signing_secret_file (empty: the endpoint is off)
	actionsSet   atomic.Pointer[actionSettings]
	// ReplyClient answers Slack users (response_url); replyOpts, in tests,
	// let it reach the Slack fake.
	ReplyClient *http.Client
	replyOpts   []slackin.ReplyOption
	// Webhooks being answered: the drain waits for them to be stored.
	inflightMu   sync.Mutex
	inflightN    int
	inflightIdle chan struct{} // closed when inflightN drops to 0
}

// ByteBudget is a non-blocking counting semaphore over bytes.
type ByteBudget struct {
	mu          sync.Mutex
	used, limit int64
}

// NewByteBudget returns a budget of limit bytes.
func NewByteBudget(limit int64) *ByteBudget { return &ByteBudget{limit: limit} }

// TryAcquire takes n bytes if they are free.
func (b *ByteBudget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// Used is how many bytes are taken.
func (b *ByteBudget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Release returns n bytes.
func (b *ByteBudget) Release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// SetDraining makes /readyz and new webhooks answer 503 during shutdown.
func (a *API) SetDraining() { a.draining.Store(true) }

// begin counts a webhook in, unless the drain has begun.
func (a *API) begin() bool {
	a.inflightMu.Lock()
	defer a.inflightMu.Unlock()
	if a.draining.Load() {
		return false
	}
	a.inflightN++
	return true
}

func (a *API) end() {
	a.inflightMu.Lock()
	defer a.inflightMu.Unlock()
	a.inflightN--
	if a.inflightN == 0 && a.inflightIdle != nil {
		close(a.inflightIdle)
		a.inflightIdle = nil
	}
}

// WaitWebhooks waits until the webhooks that began before the drain have
// been answered, or ctx ends. Call it after SetDraining.
func (a *API) WaitWebhooks(ctx context.Context) error {
	a.inflightMu.Lock()
	if a.inflightN == 0 {
		a.inflightMu.Unlock()
		return nil
	}
	if a.inflightIdle == nil {
		a.inflightIdle = make(chan struct{})
	}
	idle := a.inflightIdle
	a.inflightMu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler routes the daemon's endpoints. With auth configured every one of
// them but /healthz and /readyz requires it, as Prometheus' exporter-toolkit
// does: incidents carry labels, reasons and log lines, metrics the
// services' names.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhook", a.webhook) // authenticates itself, to count 401s as webhook answers
	// Verified by their signatures, not our auth (their senders cannot carry it).
	mux.HandleFunc("POST /pagerduty/webhook", a.pagerdutyWebhook)
	mux.HandleFunc("POST /slack/interactions", a.slackInteractions)
	mux.HandleFunc("/healthz", getOnly(a, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.HandleFunc("/readyz", getOnly(a, a.readyz))
	mux.Handle("GET /api/incidents", a.authed(http.HandlerFunc(a.incidents)))
	mux.Handle("GET /api/incidents/{id}", a.authed(http.HandlerFunc(a.incidentByID)))
	mux.Handle("GET /api/incidents/{id}/postmortem", a.authed(http.HandlerFunc(a.postmortemAnswer)))
	mux.Handle("GET /api/deadletters", a.authed(http.HandlerFunc(a.deadLetters)))
	a.evidenceRoutes(mux)
	a.webRoutes(mux)
	mux.Handle("POST /api/deadletters/{id}/replay", a.authed(http.HandlerFunc(a.replayDeadLetter)))
	mux.Handle("POST /-/reload", a.authed(http.HandlerFunc(a.reload)))
	mux.Handle("GET /metrics", a.authed(promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{Registry: a.Registry})))
	mux.Handle("/", a.authed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethod(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
			a.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+": "+allow)
			return
		}
		a.fail(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})))
	return mux
}

// allowedMethod is the method a path of the API takes, or "" if no route
// has it: the catch-all route answers 405 rather than 404 for those.
func allowedMethod(path string) string {
	switch {
	case path == "/api/incidents", path == "/api/deadletters", path == "/metrics":
		return http.MethodGet
	case strings.HasPrefix(path, "/api/incidents/") && (strings.Count(path, "/") == 3 || strings.HasSuffix(path, "/postmortem")):
		return http.MethodGet
	case path == "/-/reload", path == "/pagerduty/webhook", path == "/slack/interactions":
		return http.MethodPost
	case strings.HasPrefix(path, "/api/deadletters/") && strings.HasSuffix(path, "/replay"):
		return http.MethodPost
	case strings.HasPrefix(path, "/api/incidents/") && strings.HasSuffix(path, "/postmortem"),
		strings.HasPrefix(path, "/api/incidents/") && (strings.HasSuffix(path, "/evidence") || strings.Contains(path, "/evidence/panels/")):
		return http.MethodGet
	}
	return ""
}

// getOnly answers 405 to anything but GET and HEAD, without credentials:
// the probes are open, and the catch-all route would otherwise take them.
func getOnly(a *API, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			a.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		h(w, r)
	}
}

// authed answers 401 unless the request carries the configured credentials.
func (a *API) authed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.deny(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// deny answers 401 and returns true unless r carries the configured
// credentials. The answer invites a browser to ask for basic auth when it
// is configured.
func (a *API) deny(w http.ResponseWriter, r *http.Request) bool {
	if a.authorized(r) {
		return false
	}
	auth := a.auth()
	if auth.BasicAuth.Password != "" {
		w.Header().Add("WWW-Authenticate", `Basic realm="amtriage", charset="UTF-8"`)
	}
	if auth.BearerToken != "" {
		w.Header().Add("WWW-Authenticate", `Bearer realm="amtriage"`)
	}
	a.fail(w, http.StatusUnauthorized, "missing or invalid credentials")
	return true
}

type errorBody struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers with a short reason: Alertmanager copies the body into its log.
func (a *API) fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Status: "error", Error: msg})
}

func (a *API) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := a.serveWebhook(w, r)
	a.Metrics.WebhookRequests.WithLabelValues(strconv.Itoa(code)).Inc()
	a.Metrics.WebhookDuration.Observe(time.Since(start).Seconds())
}

func (a *API) serveWebhook(w http.ResponseWriter, r *http.Request) int {
	if a.deny(w, r) {
		return http.StatusUnauthorized
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: POST an Alertmanager webhook payload")
		return http.StatusMethodNotAllowed
	}
	if !a.begin() {
		a.fail(w, http.StatusServiceUnavailable, "shutting down; retry")
		return http.StatusServiceUnavailable
	}
	defer a.end()
	if r.ContentLength > a.MaxBodyBytes {
		return a.tooLarge(w)
	}
	br := &bodyReader{a: a}
	defer br.release()
	body, code, msg := br.read(w, r)
	if code != 0 {
		if code == http.StatusRequestTimeout || code == http.StatusServiceUnavailable {
			w.Header().Set("Connection", "close") // the rest of the body is not read
		}
		a.fail(w, code, msg)
		return code
	}
	// Small bodies are decoded whole, and the message handed to the
	// pipeline; larger ones are validated one alert at a time and read
	// again in parts when processed, so a storm is never all in memory. A
	// decoded message takes several times its body: that is charged too,
	// and without room the body is validated one alert at a time instead.
	var decoded *webhook.Message
	var count, firing int
	if len(body) <= wholeDecodeBytes && br.charge(decodeFactor*int64(len(body))) {
		m, err := webhook.DecodeMessage(body)
		if err != nil {
			a.fail(w, http.StatusBadRequest, err.Error())
			return http.StatusBadRequest
		}
		decoded, count, firing = m, len(m.Alerts), len(m.Alerts.Firing())
	} else {
		n, err := webhook.ParseNotification(body)
		if err != nil {
			a.fail(w, http.StatusBadRequest, err.Error())
			return http.StatusBadRequest
		}
		count, firing = n.Count, n.Firing
	}
	if count > 0 {
		if err := a.Committer.Append(r.Context(), body, decoded, time.Now().UTC()); err != nil {
			switch {
			case errors.Is(err, ErrOverloaded), errors.Is(err, ErrClosed):
				a.fail(w, http.StatusServiceUnavailable, err.Error()+"; retry")
			default:
				a.Log.Error("storing webhook", "err", err)
				a.fail(w, http.StatusServiceUnavailable, "could not store the notification; retry")
			}
			return http.StatusServiceUnavailable
		}
	}
	a.Metrics.AlertsReceived.WithLabelValues("firing").Add(float64(firing))
	a.Metrics.AlertsReceived.WithLabelValues("resolved").Add(float64(count - firing))
	writeJSON(w, http.StatusOK, map[string]any{"status": "stored", "alerts": count})
	return http.StatusOK
}

// decodeFactor is what a decoded message takes per byte of its body, at
// most (measured: 3× for a storm of large alerts, 8× for small ones).
const decodeFactor = 8

// Reading bodies: the first buffer of a body whose length is not declared;
// the time a body may take before the minimum rate applies, which is also
// the longest it may go without sending anything.
const (
	firstBodyBuffer = 4 << 10
	bodyGrace       = 10 * time.Second
)

// bodyReader reads one webhook body, charging the in-flight budget for the
// memory the body takes as it grows (a declared Content-Length reserves
// nothing), and cutting a body that arrives slower than MinBodyRate once the
// grace period has passed, or that sends nothing for bodyIdle (408), or that
// would exceed the budget (503).
type bodyReader struct {
	a       *API
	charged int64
	limit   int64 // 0: a.MaxBodyBytes
}

// charge takes n bytes of the budget for this request, if they are free.
func (b *bodyReader) charge(n int64) bool {
	if b.a.Inflight != nil && !b.a.Inflight.TryAcquire(n) {
		return false
	}
	b.charged += n
	return true
}

// release returns what this request was charged.
func (b *bodyReader) release() {
	if b.a.Inflight != nil && b.charged > 0 {
		b.a.Inflight.Release(b.charged)
	}
	b.charged = 0
}

// grow gives buf room for to bytes, charging the difference.
func (b *bodyReader) grow(buf []byte, to int) ([]byte, bool) {
	if !b.charge(int64(to - cap(buf))) {
		return buf, false
	}
	next := make([]byte, len(buf), to)
	copy(next, buf)
	return next, true
}

// nextSize is the buffer after one of size: doubling while small, then a
// quarter more at a time, so what a body is charged is at most 25% more
// than what it sent once it is large; never past the declared length.
func nextSize(size, limit, declared int) int {
	to := 2 * size
	if size >= 1<<20 {
		to = size + size/4
	}
	to = min(to, limit+1)
	if declared >= 0 {
		to = min(to, declared)
	}
	return to
}

// read returns the body, or the status and message to answer with.
func (b *bodyReader) read(w http.ResponseWriter, r *http.Request) (body []byte, code int, msg string) {
	a := b.a
	const overloaded = "overloaded: too many webhook bytes in flight; retry"
	limit := int(cmp.Or(b.limit, a.MaxBodyBytes))
	declared := int(r.ContentLength) // -1 when streamed
	first := firstBodyBuffer
	if declared >= 0 {
		first = max(min(first, declared), 1)
	}
	buf, ok := b.grow(nil, min(first, limit+1))
	if !ok {
		return nil, http.StatusServiceUnavailable, overloaded
	}
	rc := http.NewResponseController(w)
	start := time.Now()
	grace := cmp.Or(a.BodyGrace, bodyGrace)
	for {
		if declared >= 0 && len(buf) == declared {
			break // net/http ends the body at its Content-Length
		}
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", limit)
			}
			if buf, ok = b.grow(buf, nextSize(cap(buf), limit, declared)); !ok {
				return nil, http.StatusServiceUnavailable, overloaded
			}
		}
		idle := false
		if rate := a.MinBodyRate; rate > 0 {
			// As Apache's mod_reqtimeout: the deadline moves on by a second
			// for every MinBodyRate bytes received; and a body may not go
			// silent for longer than the grace, which a burst would
			// otherwise buy.
			byRate := start.Add(grace + time.Duration(float64(len(buf))/float64(rate)*float64(time.Second)))
			byIdle := time.Now().Add(grace)
			deadline := byRate
			if byIdle.Before(byRate) {
				deadline, idle = byIdle, true
			}
			_ = rc.SetReadDeadline(deadline)
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, os.ErrDeadlineExceeded) {
				took := time.Since(start).Round(time.Millisecond)
				a.Log.Warn("webhook body too slow; cut", "remote", r.RemoteAddr, "received", len(buf), "after", took)
				if idle {
					return nil, http.StatusRequestTimeout, fmt.Sprintf("body stalled: nothing received for %s after %d bytes (intake.min_body_rate)", grace, len(buf))
				}
				return nil, http.StatusRequestTimeout, fmt.Sprintf("body too slow: %d bytes in %s, below %d bytes/s (intake.min_body_rate)", len(buf), took, a.MinBodyRate)
			}
			return nil, http.StatusBadRequest, "reading body: " + err.Error()
		}
	}
	if len(buf) > limit {
		if b.limit > 0 {
			return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", b.limit)
		}
		return nil, http.StatusRequestEntityTooLarge, a.tooLargeMsg()
	}
	return buf, 0, ""
}

func (a *API) tooLarge(w http.ResponseWriter) int {
	a.fail(w, http.StatusRequestEntityTooLarge, a.tooLargeMsg())
	return http.StatusRequestEntityTooLarge
}

func (a *API) tooLargeMsg() string {
	return "body exceeds " + strconv.FormatInt(a.MaxBodyBytes, 10) + " bytes (intake.max_body_bytes)"
}

// auth is the credentials in force: Auth, or what the last reload set.
func (a *API) auth() rules.AuthConfig {
	if p := a.reloadedAuth.Load(); p != nil {
		return *p
	}
	return a.Auth
}

func (a *API) setAuth(c rules.AuthConfig) { a.reloadedAuth.Store(&c) }

// pagerdutySecret is pagerduty.webhook_secret_file's secret, as last loaded.
func (a *API) pagerdutySecret() []byte {
	if p := a.pdSecret.Load(); p != nil {
		return []byte(*p)
	}
	return nil
}

func (a *API) setPagerDutySecret(s string) { a.pdSecret.Store(&s) }

// slackSecret is slack.signing_secret_file's secret, as last loaded.
func (a *API) slackSecret() []byte {
	if p := a.slSecret.Load(); p != nil {
		return []byte(*p)
	}
	return nil
}

func (a *API) setSlackSecret(s string) { a.slSecret.Store(&s) }

// setReceivers is the receivers a dead letter may be replayed to, after a
// reload; under replayMu, which replays hold while they read it.
func (a *API) setReceivers(names []string) {
	a.replayMu.Lock()
	a.Receivers = names
	a.replayMu.Unlock()
}

// reload answers POST /-/reload like Prometheus: 200 once the file is
// applied, 500 with every problem when it is refused (the running
// configuration stays).
func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	if a.Reload == nil {
		a.fail(w, http.StatusServiceUnavailable, "reloading is not available")
		return
	}
	if err := a.Reload(r.Context()); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": "error", "error": "configuration refused; the running one stays", "errors": errorLines(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// authorized checks the bearer token or basic auth in constant time. Hashing
// first makes the comparison independent of the secret's length too.
func (a *API) authorized(r *http.Request) bool {
	auth := a.auth()
	token, user, pass := auth.BearerToken, auth.BasicAuth.Username, auth.BasicAuth.Password
	if token == "" && pass == "" {
		return true
	}
	if token != "" {
		const prefix = "Bearer "
		h := r.Header.Get("Authorization")
		if len(h) > len(prefix) && equalFold(h[:len(prefix)], prefix) && secretEqual(h[len(prefix):], string(token)) {
			return true
		}
	}
	if pass != "" {
		u, p, ok := r.BasicAuth()
		if ok && secretEqual(u, user) && secretEqual(p, string(pass)) {
			return true
		}
	}
	return false
}

func secretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		a.fail(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	leader := a.Pipeline.Leading()
	if a.StoreHealth != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := a.StoreHealth(ctx)
		cancel()
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "error", "error": "the store cannot be reached: " + err.Error(), "leader": leader})
			return
		}
	}
	if why := a.Pipeline.Stuck(); why != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "error", "error": why, "inbox_pending": a.Pipeline.Pending(), "leader": leader})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "inbox_pending": a.Pipeline.Pending(), "leader": leader})
}

// API answers are bounded: ?limit= (default 100, at most maxLimit) items.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// limitParam reads ?limit=; ok is false once it has answered 400.
func (a *API) limitParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a whole number from 1 to %d", v, maxLimit))
		return 0, false
	}
	return n, true
}

func (a *API) incidents(w http.ResponseWriter, r *http.Request) {
	limit, ok := a.limitParam(w, r)
	if !ok {
		return
	}
	state := r.URL.Query().Get("state")
	switch {
	case state == "":
		state = incident.StateOpen // what the endpoint always listed
	case state != "all" && !slices.Contains(incident.States, state):
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("state: %q is not one of %s, all", state, strings.Join(incident.States, ", ")))
		return
	}
	incs, total := a.Pipeline.IncidentsPage(state, limit)
	// Bounded in bytes too: 1,000 incidents of 50 alerts of up to 256 KiB
	// of labels and annotations each would be gigabytes.
	var b bytes.Buffer
	b.WriteString(`{"incidents":[`)
	shown := 0
	for _, v := range incs {
		enc, err := json.Marshal(v)
		if err != nil {
			a.Log.Error("encoding an incident", "id", v.ID, "err", err)
			continue
		}
		if shown > 0 && b.Len()+len(enc) > maxResponseBytes {
			break
		}
		if shown > 0 {
			b.WriteByte(',')
		}
		b.Write(enc)
		shown++
	}
	fmt.Fprintf(&b, `],"total":%d,"truncated":%t}`+"\n", total, shown < total)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

// incidentByID answers one incident with its whole timeline.
func (a *API) incidentByID(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, ok := a.Pipeline.IncidentDetail(id)
	if !ok {
		a.fail(w, http.StatusNotFound, fmt.Sprintf("no incident %q (unknown, or pruned after incidents.retention)", id))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// maxResponseBytes bounds an API answer: past it, what is left is counted
// in total, and truncated says so.
const maxResponseBytes = 8 << 20

func (a *API) deadLetters(w http.ResponseWriter, r *http.Request) {
	limit, ok := a.limitParam(w, r)
	if !ok {
		return
	}
	list, total, err := a.Store.DeadLetters(limit)
	if list == nil {
		list = []*store.DeadLetter{}
	}
	if err != nil {
		a.Log.Error("listing dead letters", "err", err)
		a.fail(w, http.StatusInternalServerError, "could not read the dead letters")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": list, "total": total, "truncated": total > len(list)})
}

// replayDeadLetter puts a dead letter back. A notification goes into the
// inbox again, processed as of its original arrival; it is never taken to
// list its whole group, as newer notifications may have brought alerts it
// does not know. An event is not sent as it was: its receiver is told the
// incident as it is now (opened while it fires, resolved once it has), at
// the end of its queue, so an old trigger cannot page for an incident that
// has resolved since. Replays are one at a time: a second replay of the same
// dead letter finds it gone.
func (a *API) replayDeadLetter(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		a.fail(w, http.StatusServiceUnavailable, "shutting down; retry")
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		a.fail(w, http.StatusBadRequest, fmt.Sprintf("id: %q is not a dead letter id (GET /api/deadletters lists them)", r.PathValue("id")))
		return
	}
	a.replayMu.Lock()
	defer a.replayMu.Unlock()
	d, err := a.Store.ReadDeadLetter(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.fail(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", id))
		return
	case err != nil:
		a.Log.Error("reading a dead letter", "id", id, "err", err)
		a.fail(w, http.StatusInternalServerError, fmt.Sprintf("dead letter %d cannot be read", id))
		return
	}
	switch d.Kind {
	case store.DeadNotification:
		// Into the inbox first, then out of the dead letters: a crash in
		// between replays it twice, which processing takes as a redelivery.
		entry := store.InboxEntry{ReceivedAt: d.ReceivedAt, Body: d.Payload, Replayed: true}
		if err := a.Committer.AppendEntry(r.Context(), entry, nil); err != nil {
			a.fail(w, http.StatusServiceUnavailable, "could not store the notification: "+err.Error()+"; retry")
			return
		}
		if err := a.Store.RemoveDeadLetter(id); err != nil && !errors.Is(err, store.ErrNotFound) {
			a.Log.Error("removing a replayed dead letter", "id", id, "err", err)
		}
	case store.DeadEvent:
		if !a.Pipeline.Leading() {
			// The event is made from the incident as it stands, which only
			// the leader's book knows for sure.
			a.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("dead letter %d is an event: this replica is a standby and the leader replays events; retry (another replica may answer)", id))
			return
		}
		if !slices.Contains(a.Receivers, d.Queue) {
			a.fail(w, http.StatusConflict, fmt.Sprintf("dead letter %d is for receiver %q, which is not configured", id, d.Queue))
			return
		}
		ev, ok := a.Pipeline.CurrentEvent(d.Incident, time.Now().UTC())
		if !ok {
			a.fail(w, http.StatusConflict, fmt.Sprintf("dead letter %d is about incident %q, which is no longer kept (pruned after incidents.retention): nothing to bring %s up to date with", id, d.Incident, d.Queue))
			return
		}
		if err := a.Store.ReplayEvent(id, &ev); err != nil {
			a.Log.Error("replaying a dead letter", "id", id, "err", err)
			a.fail(w, http.StatusInternalServerError, fmt.Sprintf("dead letter %d could not be replayed", id))
			return
		}
		if a.OnReplay != nil {
			a.OnReplay()
		}
	default:
		a.fail(w, http.StatusConflict, fmt.Sprintf("dead letter %d cannot be replayed: %s", id, d.Error))
		return
	}
	a.Log.Info("dead letter replayed", "id", id, "kind", d.Kind, "queue", d.Queue)
	writeJSON(w, http.StatusOK, map[string]any{"status": "replayed", "id": id, "kind": d.Kind, "queue": d.Queue})
}
