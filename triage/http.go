package triage

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/amtriage/amtriage/rules"
)

// API serves the daemon's HTTP interface.
type API struct {
	Committer    *Committer
	Pipeline     *Pipeline
	Metrics      *Metrics
	Registry     *prometheus.Registry
	Log          *slog.Logger
	Auth         rules.AuthConfig
	MaxBodyBytes int64
	// Inflight bounds the bytes of webhook bodies being read, decoded and
	// committed at once, so concurrent storms cannot exhaust memory; nil: no bound.
	Inflight *ByteBudget

	draining atomic.Bool
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

// Release returns n bytes.
func (b *ByteBudget) Release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// SetDraining makes /readyz and new webhooks answer 503 during shutdown.
func (a *API) SetDraining() { a.draining.Store(true) }

// Handler routes the daemon's endpoints.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhook", a.webhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /api/incidents", a.incidents)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry, promhttp.HandlerOpts{Registry: a.Registry}))
	return mux
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
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: POST an Alertmanager webhook payload")
		return http.StatusMethodNotAllowed
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="amtriage"`)
		a.fail(w, http.StatusUnauthorized, "missing or invalid credentials")
		return http.StatusUnauthorized
	}
	if a.draining.Load() {
		a.fail(w, http.StatusServiceUnavailable, "shutting down; retry")
		return http.StatusServiceUnavailable
	}
	if r.ContentLength > a.MaxBodyBytes {
		return a.tooLarge(w)
	}
	if a.Inflight != nil {
		// Reserve what the body may take before reading it: the declared
		// length, or the maximum when the sender streams it.
		reserve := r.ContentLength
		if reserve < 0 {
			reserve = a.MaxBodyBytes
		}
		if !a.Inflight.TryAcquire(reserve) {
			a.fail(w, http.StatusServiceUnavailable, "overloaded: too many webhook bytes in flight; retry")
			return http.StatusServiceUnavailable
		}
		defer a.Inflight.Release(reserve)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return a.tooLarge(w)
		}
		a.fail(w, http.StatusBadRequest, "reading body: "+err.Error())
		return http.StatusBadRequest
	}
	msg, err := DecodeMessage(body)
	if err != nil {
		a.fail(w, http.StatusBadRequest, err.Error())
		return http.StatusBadRequest
	}
	if len(msg.Alerts) > 0 {
		if err := a.Committer.Append(r.Context(), body, msg, time.Now().UTC()); err != nil {
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
	firing := len(msg.Alerts.Firing())
	a.Metrics.AlertsReceived.WithLabelValues("firing").Add(float64(firing))
	a.Metrics.AlertsReceived.WithLabelValues("resolved").Add(float64(len(msg.Alerts) - firing))
	writeJSON(w, http.StatusOK, map[string]any{"status": "stored", "alerts": len(msg.Alerts)})
	return http.StatusOK
}

func (a *API) tooLarge(w http.ResponseWriter) int {
	a.fail(w, http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(a.MaxBodyBytes, 10)+" bytes (intake.max_body_bytes)")
	return http.StatusRequestEntityTooLarge
}

// authorized checks the bearer token or basic auth in constant time. Hashing
// first makes the comparison independent of the secret's length too.
func (a *API) authorized(r *http.Request) bool {
	token, user, pass := a.Auth.BearerToken, a.Auth.BasicAuth.Username, a.Auth.BasicAuth.Password
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
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "inbox_pending": a.Pipeline.Pending()})
}

func (a *API) incidents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"incidents": a.Pipeline.OpenIncidents()})
}
