package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"

	"github.com/amtriage/amtriage/internal/testutil"
)

const testTimeout = 200 * time.Millisecond

// server starts a loopback test server.
func server(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// refusedURL is a URL on a port of 127.0.0.1 that nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	return "http://" + testutil.FreeAddr(t) + "/health"
}

func TestProbeOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(release <-chan struct{}) http.HandlerFunc
		path      string
		refused   bool
		want      Outcome
		status    int
		known     bool
		reachable bool
		detail    string
	}{
		{name: "200 up", handler: status(200), want: Up, status: 200, known: true, reachable: true, detail: "HTTP 200"},
		{name: "204 up", handler: status(204), want: Up, status: 204, known: true, reachable: true},
		{name: "refused down", refused: true, want: Down, known: true, detail: "connection refused"},
		{name: "500 crashed", handler: status(500), want: Crashed, status: 500, known: true, detail: "HTTP 500"},
		{name: "503 crashed", handler: status(503), want: Crashed, status: 503, known: true, detail: "HTTP 503"},
		{name: "404 error", handler: status(404), want: Error, status: 404, detail: "HTTP 404"},
		{name: "401 error", handler: status(401), want: Error, status: 401},
		{name: "304 error", handler: status(304), want: Error, status: 304},
		{name: "no headers hung", handler: hang(false), want: Hung, known: true, detail: "no answer within 200ms"},
		{name: "stalled body hung", handler: hang(true), want: Hung, status: 200, known: true, detail: "no answer within 200ms"},
		{name: "endless body up", handler: endless, want: Up, status: 200, known: true, reachable: true},
		{name: "same-host redirect up", handler: redirectTo("/healthz"), want: Up, status: 200, known: true, reachable: true},
		{name: "redirect loop error", handler: redirectLoop, want: Error, detail: "more than 3 redirects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u string
			if tt.refused {
				u = refusedURL(t)
			} else {
				// Hanging handlers wait for release, closed only after
				// the probe returned: the probe must give up on its own.
				release := make(chan struct{})
				srv := server(t, tt.handler(release))
				t.Cleanup(func() { close(release) }) // before srv.Close
				u = srv.URL + "/health"
			}
			p := New(Options{Timeout: testTimeout})
			r := p.Probe(context.Background(), signal.NewEvaluation(time.Now()), u)
			if r.Outcome != tt.want || r.Status != tt.status {
				t.Fatalf("Probe = %+v; want outcome %s, status %d", r, tt.want, tt.status)
			}
			if tt.detail != "" && r.Detail != tt.detail {
				t.Errorf("Detail = %q; want %q", r.Detail, tt.detail)
			}
			if known, v := r.Reachable(); known != tt.known || v != tt.reachable {
				t.Errorf("Reachable = %v, %v; want %v, %v", known, v, tt.known, tt.reachable)
			}
		})
	}
}

func status(code int) func(<-chan struct{}) http.HandlerFunc {
	return func(<-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.UserAgent() != UserAgent || r.URL.Path != "/health" {
				http.Error(w, "unexpected request", http.StatusTeapot)
				return
			}
			w.WriteHeader(code)
			if code != 204 && code != 304 {
				io.WriteString(w, "body\n")
			}
		}
	}
}

// hang answers nothing (or only the headers) until released or the client
// goes away.
func hang(headers bool) func(<-chan struct{}) http.HandlerFunc {
	return func(release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if headers {
				w.WriteHeader(200)
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}
}

func endless(<-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		buf := []byte(strings.Repeat("x", 1024))
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}
}

func redirectTo(target string) func(<-chan struct{}) http.HandlerFunc {
	return func(<-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/health":
				http.Redirect(w, r, target, http.StatusFound)
			case "/healthz":
				if r.UserAgent() != UserAgent {
					w.WriteHeader(http.StatusTeapot)
				}
			default:
				w.WriteHeader(404)
			}
		}
	}
}

func redirectLoop(<-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
	}
}

// countingTransport counts the response body bytes the client read.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func TestEndlessBodyReadIsCapped(t *testing.T) {
	srv := server(t, endless(nil))
	ct := &countingTransport{base: newTransport(testTimeout)}
	p := New(Options{Timeout: testTimeout, Client: &http.Client{Transport: ct}})
	r := p.Probe(context.Background(), nil, srv.URL+"/health")
	if r.Outcome != Up {
		t.Fatalf("Probe = %+v; want up", r)
	}
	if n := ct.n.Load(); n > MaxBodyBytes || n == 0 {
		t.Fatalf("read %d body bytes; want 1..%d", n, MaxBodyBytes)
	}
}

func TestCrossHostRedirectRefused(t *testing.T) {
	var other atomic.Int32
	second := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
	}))
	for _, target := range []string{
		second.URL + "/health",                                  // another port
		"https" + strings.TrimPrefix(second.URL, "http") + "/h", // another scheme
	} {
		first := server(t, redirectTo(target)(nil))
		p := New(Options{Timeout: testTimeout})
		r := p.Probe(context.Background(), nil, first.URL+"/health")
		if r.Outcome != Error || r.Detail != "redirect to another host refused" {
			t.Fatalf("redirect to %s: Probe = %+v; want error, redirect refused", target, r)
		}
		if known, _ := r.Reachable(); known {
			t.Fatal("a refused redirect must leave reachable unknown")
		}
	}
	if n := other.Load(); n != 0 {
		t.Fatalf("the other host received %d requests; want 0", n)
	}
}

func TestMemoOneRequestPerEvaluation(t *testing.T) {
	var hits atomic.Int32
	srv := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	m := signal.NewMetrics(nil)
	p := New(Options{Timeout: testTimeout, Metrics: m})
	ev := signal.NewEvaluation(time.Now())
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if r := p.Probe(context.Background(), ev, srv.URL+"/health"); r.Outcome != Up {
				t.Errorf("Probe = %+v; want up", r)
			}
		})
	}
	wg.Wait()
	if n := hits.Load(); n != 1 {
		t.Fatalf("server received %d requests for 100 probes in one evaluation; want 1", n)
	}
	if got := observations(t, m, "up"); got != 1 {
		t.Fatalf("metrics observed %d probes; want 1", got)
	}
	p.Probe(context.Background(), signal.NewEvaluation(time.Now()), srv.URL+"/health")
	if n := hits.Load(); n != 2 {
		t.Fatalf("a new evaluation must probe again; requests = %d", n)
	}
}

func observations(t *testing.T, m *signal.Metrics, outcome string) uint64 {
	t.Helper()
	var d dto.Metric
	if err := m.Requests.WithLabelValues(SourceName, outcome).(interface{ Write(*dto.Metric) error }).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}

func TestSignals(t *testing.T) {
	srv503 := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	srv404 := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }))
	srvOK := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "user" || pw != "s3cret" {
			w.WriteHeader(401)
		}
	}))
	withCreds := strings.Replace(srvOK.URL, "http://", "http://user:s3cret@", 1) + "/health"
	refused := refusedURL(t)

	tests := []struct {
		name string
		url  string
		want severity.Bool
	}{
		{name: "no health_url", url: "", want: severity.Bool{}},
		{name: "up, credentials redacted", url: withCreds, want: severity.Bool{Known: true, Value: true, Source: "probe",
			Note: "GET " + strings.Replace(srvOK.URL, "http://", "http://user:xxxxx@", 1) + "/health: HTTP 200 (up)"}},
		{name: "crashed", url: srv503.URL + "/health", want: severity.Bool{Known: true, Value: false, Source: "probe",
			Note: "GET " + srv503.URL + "/health: HTTP 503 (crashed)"}},
		{name: "down", url: refused, want: severity.Bool{Known: true, Value: false, Source: "probe",
			Note: "GET " + refused + ": connection refused (down)"}},
		{name: "404 unknown", url: srv404.URL + "/health", want: severity.Bool{Known: false, Source: "probe",
			Note: "GET " + srv404.URL + "/health: HTTP 404 (error)"}},
		{name: "unsupported scheme", url: "file:///etc/passwd", want: severity.Bool{Source: "probe",
			Note: `GET file:///etc/passwd: unsupported scheme "file" (error)`}},
		{name: "unparseable URL not echoed", url: "http://user:s3cret@[::1", want: severity.Bool{Source: "probe",
			Note: "GET <invalid URL>: invalid health_url (error)"}},
	}
	p := New(Options{Timeout: testTimeout})
	if p.Name() != "probe" {
		t.Fatalf("Name = %q", p.Name())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &rules.Service{Name: "api", HealthURL: tt.url}
			s, err := p.Signals(context.Background(), signal.NewEvaluation(time.Now()), nil, svc)
			if err != nil {
				t.Fatal(err)
			}
			if s.Reachable != tt.want {
				t.Fatalf("Reachable = %+v\nwant        %+v", s.Reachable, tt.want)
			}
			if strings.Contains(s.Reachable.Note, "s3cret") {
				t.Fatal("the note leaks the password")
			}
			if tt.url == "" && s != (severity.Signals{}) {
				t.Fatalf("no health_url must give empty signals, got %+v", s)
			}
		})
	}
}

func TestDependencies(t *testing.T) {
	var dbHits atomic.Int32
	db := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { dbHits.Add(1) }))
	queue := refusedURL(t)
	cfg := &rules.Config{Services: []rules.Service{
		{Name: "api", HealthURL: "http://api.invalid/health", DependsOn: []string{"db", "queue", "ghost", "cache"}},
		{Name: "db", HealthURL: db.URL + "/health"},
		{Name: "queue", HealthURL: queue},
		{Name: "cache"},
	}}
	p := New(Options{Timeout: testTimeout})
	ev := signal.NewEvaluation(time.Now())
	got := p.Dependencies(context.Background(), ev, cfg, &cfg.Services[0])
	want := []diagnosis.Probe{
		{Target: "db", Outcome: "up", Detail: "GET " + db.URL + "/health: HTTP 200"},
		{Target: "queue", Outcome: "down", Detail: "GET " + queue + ": connection refused"},
		{Target: "ghost", Outcome: "error", Detail: `no service profile named "ghost"`},
		{Target: "cache", Outcome: "error", Detail: "profile has no health_url; not probed"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Dependencies =\n%+v\nwant\n%+v", got, want)
	}
	// Memoised with the evaluation: another alert of the storm asks again.
	p.Dependencies(context.Background(), ev, cfg, &cfg.Services[0])
	if n := dbHits.Load(); n != 1 {
		t.Fatalf("db probed %d times in one evaluation; want 1", n)
	}
	if d := p.Dependencies(context.Background(), ev, cfg, &cfg.Services[1]); d != nil {
		t.Fatalf("no depends_on must give nil, got %+v", d)
	}
}

func TestCancelledIsNotHung(t *testing.T) {
	srv := server(t, hang(false)(make(chan struct{})))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := New(Options{Timeout: testTimeout}).Probe(ctx, nil, srv.URL)
	if r.Outcome != Error || !strings.HasPrefix(r.Detail, "probe cancelled") {
		t.Fatalf("Probe = %+v; want error, probe cancelled", r)
	}
}

func TestClassify(t *testing.T) {
	p := New(Options{Timeout: testTimeout})
	bg := context.Background()
	expired, cancel := context.WithDeadline(bg, time.Unix(0, 0))
	defer cancel()
	opErr := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	tests := []struct {
		name string
		pctx context.Context
		err  error
		want Outcome
		// detail is a prefix of the wanted detail.
		detail string
	}{
		{"refused", bg, opErr(os.NewSyscallError("connect", syscall.ECONNREFUSED)), Down, "connection refused"},
		{"dns", bg, opErr(&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}), Error, "DNS: lookup x: no such host"},
		{"dns timeout", expired, opErr(&net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}), Error, "DNS: lookup x: i/o timeout"},
		{"deadline", expired, &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, Hung, "no answer within 200ms"},
		{"net timeout", bg, opErr(timeoutErr{}), Hung, "no answer within 200ms"},
		{"tls", bg, &url.Error{Op: "Get", URL: "http://x", Err: &tlsVerify}, Error, "TLS: tls: failed to verify certificate"},
		{"reset", bg, opErr(os.NewSyscallError("read", syscall.ECONNRESET)), Error, "dial tcp: read: connection reset by peer"},
		{"other host", bg, &url.Error{Op: "Get", URL: "http://x", Err: errOtherHost}, Error, "redirect to another host refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, detail := p.classify(bg, tt.pctx, tt.err)
			if got != tt.want || !strings.HasPrefix(detail, tt.detail) {
				t.Fatalf("classify = %s (%s); want %s (%s…)", got, detail, tt.want, tt.detail)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var tlsVerify = tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
