package triage

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/rules"
)

// namedRecorder records events under a given receiver name; down makes it
// fail (retryably), as a receiver whose endpoint or credentials are wrong.
type namedRecorder struct {
	name     string
	down     bool
	attempts atomic.Int32
	mu       sync.Mutex
	events   []incident.Event
}

func (r *namedRecorder) Name() string { return r.name }

func (r *namedRecorder) Notify(_ context.Context, ev *incident.Event) (bool, error) {
	r.attempts.Add(1)
	if r.down {
		return true, errors.New("receiver down")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, *ev)
	return false, nil
}

func (r *namedRecorder) Events() []incident.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]incident.Event(nil), r.events...)
}

// reloadable is a serving daemon whose Load returns next (or loadErr) and
// whose Rebuild returns receivers.
type reloadable struct {
	*harness
	mu        sync.Mutex
	next      *rules.Config
	loadErr   error
	receivers []notify.Notifier
}

func (r *reloadable) set(cfg *rules.Config, err error, receivers ...notify.Notifier) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next, r.loadErr, r.receivers = cfg, err, receivers
}

func newReloadable(t *testing.T, cfg *rules.Config, receivers ...notify.Notifier) *reloadable {
	r := &reloadable{}
	r.harness = servingHarness(t, cfg, func(o *Options) {
		o.Notifiers = append(o.Notifiers, receivers...)
		o.Load = func() (*rules.Config, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.next, r.loadErr
		}
		o.Rebuild = func(*rules.Config, notify.ReceiverState) ([]notify.Notifier, *Enrichment, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.receivers, nil, nil
		}
	})
	return r
}

// reloadedConfig is a configuration file's text, parsed, on the running
// daemon's store and credentials (which a reload cannot change).
func reloadedConfig(t *testing.T, running *rules.Config, yaml string) *rules.Config {
	t.Helper()
	c, err := rules.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c.Store, c.Auth = running.Store, running.Auth
	return c
}

func TestReloadEndpointNeedsAuthAndPOST(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	r := newReloadable(t, cfg)
	r.set(reloadedConfig(t, cfg, "listen: 127.0.0.1:9095\n"), nil, r.rec)
	if res := r.do(http.MethodPost, "/-/reload", nil, ""); res.code != http.StatusUnauthorized {
		t.Errorf("POST /-/reload without credentials = %d, want 401", res.code)
	}
	if res := r.do(http.MethodPost, "/-/reload", nil, "Bearer wrong"); res.code != http.StatusUnauthorized {
		t.Errorf("POST /-/reload with a wrong token = %d, want 401", res.code)
	}
	if res := r.do(http.MethodGet, "/-/reload", nil, r.authHeader()); res.code != http.StatusMethodNotAllowed || res.header.Get("Allow") != http.MethodPost {
		t.Errorf("GET /-/reload = %d Allow %q, want 405 Allow POST", res.code, res.header.Get("Allow"))
	}
	if res := r.do(http.MethodPost, "/-/reload", nil, r.authHeader()); res.code != http.StatusOK {
		t.Errorf("POST /-/reload = %d %s, want 200", res.code, res.body)
	}
}

// A valid file applies without dropping work: the open incident stays, the
// event queued for a receiver that stays is delivered by its new
// configuration, and new alerts are triaged with the new thresholds.
func TestReloadAppliesWithoutDroppingWork(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	before := &namedRecorder{name: "pager", down: true}
	r := newReloadable(t, cfg, before)
	if got := scalar(r.scrape(), "amtriage_config_last_reload_successful", nil); got != 1 {
		t.Errorf("amtriage_config_last_reload_successful at start = %v, want 1", got)
	}

	start := time.Now().Add(-time.Minute)
	r.mustPost(alertPayload("api", "firing", start), r.authHeader())
	r.waitFor("the first receiver to fail once", func() bool { return before.attempts.Load() > 0 })
	if n := len(r.d.Pipeline().OpenIncidents()); n != 1 {
		t.Fatalf("open incidents = %d, want 1", n)
	}

	after := &namedRecorder{name: "pager"}
	// The `severity` label fallback: critical is Sev 2 by default, Sev 3 now.
	r.set(reloadedConfig(t, cfg, "severity:\n  fallback: {critical: 3}\n"), nil, r.rec, after)
	if res := r.do(http.MethodPost, "/-/reload", nil, r.authHeader()); res.code != http.StatusOK {
		t.Fatalf("POST /-/reload = %d %s", res.code, res.body)
	}
	r.waitFor("the queued event delivered by the reloaded receiver", func() bool { return len(after.Events()) > 0 })
	if ev := after.Events()[0]; ev.Kind != incident.Opened || ev.Incident.Service != "api" || ev.Incident.Severity != 2 {
		t.Errorf("reloaded receiver got %s %s Sev %d, want the queued opened api Sev 2", ev.Kind, ev.Incident.Service, ev.Incident.Severity)
	}

	r.mustPost(alertPayload("web", "firing", start), r.authHeader())
	r.waitFor("the web incident", func() bool {
		for _, ev := range after.Events() {
			if ev.Incident.Service == "web" {
				return true
			}
		}
		return false
	})
	for _, ev := range after.Events() {
		if ev.Incident.Service == "web" && ev.Incident.Severity != 3 {
			t.Errorf("web incident Sev %d after the reload, want 3 (severity.fallback.critical: 3)", ev.Incident.Severity)
		}
	}
	if n := len(r.d.Pipeline().OpenIncidents()); n != 2 {
		t.Errorf("open incidents = %d, want 2 (none dropped by the reload)", n)
	}
	mfs := r.scrape()
	if got := scalar(mfs, "amtriage_config_last_reload_successful", nil); got != 1 {
		t.Errorf("amtriage_config_last_reload_successful = %v, want 1", got)
	}
	if got := scalar(mfs, "amtriage_config_last_reload_success_timestamp_seconds", nil); got < float64(start.Unix()) {
		t.Errorf("amtriage_config_last_reload_success_timestamp_seconds = %v, want about now", got)
	}
}

// An invalid file, or one changing what only a restart can, is refused: the
// answer lists the problems, the gauge says 0, the old configuration stays.
func TestReloadRefused(t *testing.T) {
	cfg := testConfig(t)
	r := newReloadable(t, cfg)
	other := reloadedConfig(t, cfg, "listen: 127.0.0.1:9095\n")
	other.Store.Path = t.TempDir()
	other.Intake.MaxPending = 10
	for name, tc := range map[string]struct {
		cfg  *rules.Config
		err  error
		want []string
	}{
		"invalid file": {nil, rules.Errors{&rules.KeyError{Line: 3, Key: "intake.max_pending", Err: errors.New("must be between 1 and 1000000, got 0")}},
			[]string{"line 3: intake.max_pending: must be between 1 and 1000000"}},
		"restart-only keys": {other, nil, []string{"store: cannot change on reload", "intake: cannot change on reload"}},
	} {
		t.Run(name, func(t *testing.T) {
			r.set(tc.cfg, tc.err, r.rec)
			res := r.do(http.MethodPost, "/-/reload", nil, "")
			if res.code != http.StatusInternalServerError {
				t.Fatalf("POST /-/reload = %d %s, want 500", res.code, res.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(res.body), w) {
					t.Errorf("answer %s lacks %q", res.body, w)
				}
			}
			if got := scalar(r.scrape(), "amtriage_config_last_reload_successful", nil); got != 0 {
				t.Errorf("amtriage_config_last_reload_successful = %v, want 0", got)
			}
			if r.d.Config() != cfg {
				t.Error("the running configuration changed")
			}
		})
	}
}

// A reload turns the status page on (and its services public) without a
// restart; it is served without auth, the board still behind it.
func TestReloadTurnsTheStatusPageOn(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.BearerToken = "s3cret"
	r := newReloadable(t, cfg)
	if res := r.do(http.MethodGet, "/status", nil, ""); res.code != http.StatusUnauthorized {
		t.Errorf("GET /status while off, no credentials: %d, want 401 (an API path)", res.code)
	}
	if res := r.do(http.MethodGet, "/status", nil, r.authHeader()); res.code != http.StatusNotFound {
		t.Errorf("GET /status while off: %d, want 404", res.code)
	}
	r.set(reloadedConfig(t, cfg, "status_page: {enabled: true}\nservices:\n  - name: api\n    match: ['service=\"api\"']\n    public: true\n"), nil, r.rec)
	if res := r.do(http.MethodPost, "/-/reload", nil, r.authHeader()); res.code != http.StatusOK {
		t.Fatalf("POST /-/reload = %d %s", res.code, res.body)
	}
	res := r.do(http.MethodGet, "/status", nil, "")
	if res.code != http.StatusOK || !strings.Contains(string(res.body), `data-service="api"`) {
		t.Errorf("GET /status after the reload: %d, want 200 listing api:\n%.400s", res.code, res.body)
	}
	if res := r.do(http.MethodGet, "/", nil, ""); res.code != http.StatusUnauthorized {
		t.Errorf("GET / without credentials: %d, want 401", res.code)
	}
}
