package silence

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// stub is a local Alertmanager stand-in that records each request and
// answers with the handler's reply.
type stub struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newStub(t *testing.T, h http.HandlerFunc) *stub {
	t.Helper()
	s := &stub{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stub) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func testSilence() Silence {
	start := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	return Silence{
		Matchers:  []Matcher{exact("alertname", "HighErrorRate"), exact("service", "api")},
		StartsAt:  start,
		EndsAt:    start.Add(time.Hour),
		CreatedBy: CreatedBy,
		Comment:   "Silenced from Slack by <@U024BE7LH> " + Marker("api-0a1b2c3d4e5f"),
	}
}

// TestErrorAnswers: each failing answer Alertmanager (or a proxy in front
// of it) can give becomes an *Error with the right retryability and the
// reason it gave.
func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name       string
		op         string // create, get, expire, list
		status     int
		header     map[string]string
		body       string
		maxBody    int64
		retryable  bool
		notFound   bool
		tooLarge   bool
		wantText   string // in err.Error()
		retryAfter time.Duration
	}{
		{name: "400 with Alertmanager's reason", op: "create", status: 400,
			body:     `"Failed to create silence: start time must be before end time"` + "\n",
			wantText: "create silence: HTTP 400: Failed to create silence: start time must be before end time"},
		{name: "422 from the API's schema check", op: "create", status: 422,
			body:     `{"code":612,"message":"matchers in body should have at least 1 items"}`,
			wantText: "HTTP 422: matchers in body should have at least 1 items"},
		{name: "401 from an auth proxy", op: "create", status: 401, body: "Unauthorized\n",
			wantText: "HTTP 401: Unauthorized"},
		{name: "500 is retryable", op: "create", status: 500, body: `"failed to persist"`,
			retryable: true, wantText: "HTTP 500: failed to persist"},
		{name: "502 from a proxy, HTML", op: "create", status: 502, body: "<html>Bad Gateway</html>",
			retryable: true, wantText: "HTTP 502: <html>Bad Gateway</html>"},
		{name: "503 with Retry-After", op: "list", status: 503, header: map[string]string{"Retry-After": "7"},
			retryable: true, retryAfter: 7 * time.Second, wantText: "list silences: HTTP 503"},
		{name: "429 with Retry-After", op: "create", status: 429, header: map[string]string{"Retry-After": "30"},
			retryable: true, retryAfter: 30 * time.Second, wantText: "HTTP 429"},
		{name: "408 from a proxy is retryable", op: "expire", status: 408,
			retryable: true, wantText: "expire silence 11111111-0000-4000-8000-000000000001: HTTP 408"},
		{name: "get of an unknown id is 404", op: "get", status: 404,
			notFound: true, wantText: "HTTP 404"},
		{name: "0.25 answers expire of an unknown id with 500", op: "expire", status: 500, body: `"silence not found"`,
			notFound: true, wantText: "HTTP 500: silence not found"},
		{name: "expire's other 500s are retryable", op: "expire", status: 500, body: `"write snapshot: disk full"`,
			retryable: true, wantText: "disk full"},
		{name: "a huge error text is clipped", op: "create", status: 500, body: huge,
			retryable: true, wantText: "HTTP 500: xxx"},
		{name: "200 that is not JSON", op: "create", status: 200, body: "<html>login</html>",
			wantText: `decode answer "<html>login</html>"`},
		{name: "200 without an id", op: "create", status: 200, body: `{}`,
			wantText: "answer has no silenceID"},
		{name: "oversized listing", op: "list", status: 200, maxBody: 1 << 10,
			body: "[" + strings.Repeat(`{"id":"x"},`, 200) + `{"id":"y"}]`, tooLarge: true,
			wantText: "answer larger than 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			c := newClient(t, Config{URL: s.srv.URL, MaxBody: tc.maxBody})
			err := call(c, tc.op)
			if err == nil {
				t.Fatal("no error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if e.StatusCode != tc.status {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, tc.status)
			}
			if Retryable(err) != tc.retryable {
				t.Errorf("Retryable(%v) = %t, want %t", err, Retryable(err), tc.retryable)
			}
			if e.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tc.retryAfter)
			}
			if errors.Is(err, ErrNotFound) != tc.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %t, want %t", err, !tc.notFound, tc.notFound)
			}
			if errors.Is(err, ErrBodyTooLarge) != tc.tooLarge {
				t.Errorf("errors.Is(%v, ErrBodyTooLarge) = %t, want %t", err, !tc.tooLarge, tc.tooLarge)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", clipped(err.Error()), tc.wantText)
			}
			if n := len(err.Error()); n > 2<<10 {
				t.Errorf("error text is %d bytes: not bounded", n)
			}
		})
	}
}

func call(c *Client, op string) error {
	ctx := context.Background()
	switch op {
	case "create":
		_, err := c.Create(ctx, testSilence())
		return err
	case "get":
		_, err := c.Get(ctx, "11111111-0000-4000-8000-000000000001")
		return err
	case "expire":
		return c.Expire(ctx, "11111111-0000-4000-8000-000000000001")
	case "list":
		_, err := c.List(ctx)
		return err
	}
	panic("unknown op " + op)
}

func clipped(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// TestHangingAlertmanager: the caller's deadline ends a call to an
// Alertmanager that never answers, as a retryable error.
func TestHangingAlertmanager(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before s.srv.Close, which waits for the handler
	c := newClient(t, Config{URL: s.srv.URL})
	for _, op := range []string{"create", "get", "expire", "list"} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		var err error
		switch op {
		case "create":
			_, err = c.Create(ctx, testSilence())
		case "get":
			_, err = c.Get(ctx, "x")
		case "expire":
			err = c.Expire(ctx, "x")
		case "list":
			_, err = c.FindActive(ctx, CreatedBy, Marker("api-1"))
		}
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !Retryable(err) {
			t.Errorf("%s against a hung Alertmanager: %v; want a retryable deadline error", op, err)
		}
	}
}

// TestUnreachable: nothing listening is retryable (Alertmanager restarting).
func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newClient(t, Config{URL: "http://" + addr})
	_, err = c.Create(context.Background(), testSilence())
	var e *Error
	if !errors.As(err, &e) || !e.Retryable || e.StatusCode != 0 {
		t.Fatalf("Create to a closed port: %v; want a retryable *Error without status", err)
	}
}

// TestRequests: what goes on the wire: method, path under the URL's prefix,
// the auth header of the http_config, and the silence's JSON.
func TestRequests(t *testing.T) {
	t.Parallel()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("am:s3cret"))
	for _, tc := range []struct {
		name     string
		prefix   string
		cfg      Config
		wantAuth string
	}{
		{name: "no auth"},
		{name: "bearer token", cfg: Config{BearerToken: "tok-1"}, wantAuth: "Bearer tok-1"},
		{name: "basic auth", cfg: Config{BasicAuth: &BasicAuth{Username: "am", Password: "s3cret"}}, wantAuth: basic},
		{name: "path prefix with a trailing slash", prefix: "/alertmanager/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodPost:
					io.WriteString(w, `{"silenceID":"11111111-0000-4000-8000-000000000001"}`)
				case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/silences"):
					io.WriteString(w, `[]`)
				case r.Method == http.MethodGet:
					io.WriteString(w, `{"id":"11111111-0000-4000-8000-000000000001","status":{"state":"active"},"matchers":[],"createdBy":"amtriage","comment":"c","startsAt":"2026-12-01T03:00:00Z","endsAt":"2026-12-01T04:00:00Z","updatedAt":"2026-12-01T03:00:00Z"}`)
				}
			})
			cfg := tc.cfg
			cfg.URL = s.srv.URL + tc.prefix
			c := newClient(t, cfg)
			ctx := context.Background()
			id, err := c.Create(ctx, testSilence())
			if err != nil || id != "11111111-0000-4000-8000-000000000001" {
				t.Fatalf("Create = %q, %v", id, err)
			}
			if _, err := c.Get(ctx, id); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if err := c.Expire(ctx, id); err != nil {
				t.Fatalf("Expire: %v", err)
			}
			if _, err := c.FindActive(ctx, CreatedBy, Marker("api-1")); err != nil {
				t.Fatalf("FindActive: %v", err)
			}
			p := strings.TrimRight(tc.prefix, "/")
			want := []struct{ method, path string }{
				{"POST", p + "/api/v2/silences"},
				{"GET", p + "/api/v2/silence/" + id},
				{"DELETE", p + "/api/v2/silence/" + id},
				{"GET", p + "/api/v2/silences"},
			}
			reqs := s.requests()
			if len(reqs) != len(want) {
				t.Fatalf("%d requests, want %d", len(reqs), len(want))
			}
			for i, r := range reqs {
				if r.Method != want[i].method || r.Path != want[i].path {
					t.Errorf("request %d: %s %s, want %s %s", i, r.Method, r.Path, want[i].method, want[i].path)
				}
				if got := r.Header.Get("Authorization"); got != tc.wantAuth {
					t.Errorf("request %d: Authorization %q, want %q", i, got, tc.wantAuth)
				}
			}
			if ct := reqs[0].Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("POST Content-Type %q", ct)
			}
			var posted map[string]any
			if err := json.Unmarshal(reqs[0].Body, &posted); err != nil {
				t.Fatalf("posted body %s: %v", reqs[0].Body, err)
			}
			for _, k := range []string{"id", "status", "updatedAt"} {
				if _, ok := posted[k]; ok {
					t.Errorf("posted body has %q: %s", k, reqs[0].Body)
				}
			}
			if posted["createdBy"] != "amtriage" || posted["startsAt"] != "2026-12-01T03:00:00Z" || posted["endsAt"] != "2026-12-01T04:00:00Z" ||
				!strings.Contains(posted["comment"].(string), "[amtriage incident api-0a1b2c3d4e5f]") {
				t.Errorf("posted body %s", reqs[0].Body)
			}
			ms, _ := posted["matchers"].([]any)
			if len(ms) != 2 {
				t.Fatalf("posted matchers %v", posted["matchers"])
			}
			m0 := ms[0].(map[string]any)
			if m0["name"] != "alertname" || m0["value"] != "HighErrorRate" || m0["isRegex"] != false || m0["isEqual"] != true {
				t.Errorf("posted matcher %v", m0)
			}
			if u := c.SilenceURL(id); u != s.srv.URL+p+"/#/silences/"+id {
				t.Errorf("SilenceURL = %s", u)
			}
		})
	}
}

// TestRefusedBeforeSending: a silence Alertmanager would refuse is refused
// here, not retryable, and nothing is sent.
func TestRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	c := newClient(t, Config{URL: s.srv.URL})
	for _, tc := range []struct {
		name   string
		modify func(*Silence)
		want   string
	}{
		{"no matchers", func(s *Silence) { s.Matchers = nil }, "at least one matcher"},
		{"a matcher without name", func(s *Silence) { s.Matchers[1].Name = "" }, "no label name"},
		{"no end", func(s *Silence) { s.EndsAt = time.Time{} }, "startsAt and endsAt are required"},
		{"ends before it starts", func(s *Silence) { s.EndsAt = s.StartsAt.Add(-time.Minute) }, "is not after startsAt"},
		{"ends as it starts", func(s *Silence) { s.EndsAt = s.StartsAt }, "is not after startsAt"},
		{"no creator", func(s *Silence) { s.CreatedBy = "" }, "createdBy is required"},
		{"no comment", func(s *Silence) { s.Comment = "" }, "comment is required"},
	} {
		sil := testSilence()
		tc.modify(&sil)
		_, err := c.Create(context.Background(), sil)
		if err == nil || Retryable(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Create error %v, want a permanent %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"get without id", func() error { _, err := c.Get(context.Background(), ""); return err }()},
		{"expire without id", c.Expire(context.Background(), "")},
		{"find without marker", func() error { _, err := c.FindActive(context.Background(), CreatedBy, ""); return err }()},
		{"find without creator", func() error { _, err := c.FindActive(context.Background(), "", "m"); return err }()},
	} {
		if tc.err == nil || Retryable(tc.err) {
			t.Errorf("%s: %v, want a permanent error", tc.name, tc.err)
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests sent for refused calls", n)
	}
}

// TestFindActive: from a listing as Alertmanager 0.25 gives it, only the
// live silences by amtriage whose comment has the exact marker are found,
// the one ending last first.
func TestFindActive(t *testing.T) {
	t.Parallel()
	listing, err := os.ReadFile("testdata/silences.json")
	if err != nil {
		t.Fatal(err)
	}
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) { w.Write(listing) })
	c := newClient(t, Config{URL: s.srv.URL})
	for _, tc := range []struct {
		name, createdBy, marker string
		want                    []string // id suffixes
	}{
		{"amtriage's live silences for the incident", CreatedBy, Marker("api-0a1b2c3d4e5f"), []string{"03", "01"}},
		{"a longer id with the same prefix is another incident", CreatedBy, Marker("api-0a1b2c3d4e5f0"), []string{"05"}},
		{"a prefix of the id is not it", CreatedBy, Marker("api-0a1b2c3d4e5"), nil},
		{"another creator's copy of the marker", "alice", Marker("api-0a1b2c3d4e5f"), []string{"04"}},
		{"no silence for the incident", CreatedBy, Marker("web-ffffffffffff"), nil},
	} {
		got, err := c.FindActive(context.Background(), tc.createdBy, tc.marker)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID[len(s.ID)-2:])
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: found %v, want %v", tc.name, ids, tc.want)
		}
	}
	all, err := c.List(context.Background())
	if err != nil || len(all) != 6 {
		t.Fatalf("List: %d silences, %v", len(all), err)
	}
	if all[0].State() != StateActive || all[1].State() != StateExpired || len(all[0].Matchers) != 2 || !all[0].Matchers[0].Equal() ||
		!all[5].Matchers[0].Equal() || all[0].UpdatedAt.IsZero() {
		t.Errorf("decoded %+v", all[:2])
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string // "" for ok
	}{
		{Config{URL: "http://127.0.0.1:9093"}, ""},
		{Config{URL: "https://am.example/prefix/", BearerToken: "t"}, ""},
		{Config{URL: ""}, "want an absolute http(s) URL"},
		{Config{URL: "127.0.0.1:9093"}, "alertmanager url"},
		{Config{URL: "ftp://am"}, "want an absolute http(s) URL"},
		{Config{URL: "http://am/?x=1"}, "no query"},
		{Config{URL: "http://am", BearerToken: "t", BasicAuth: &BasicAuth{Username: "u"}}, "mutually exclusive"},
	} {
		_, err := New(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%+v): %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestEnsureGuards: Ensure posts only after a listing that shows no live
// silence for the marker; a failed listing or a comment without the marker
// posts nothing.
func TestEnsureGuards(t *testing.T) {
	t.Parallel()
	listing, err := os.ReadFile("testdata/silences.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		listFails bool
		marker    string
		comment   string
		wantID    string
		created   bool
		retryable bool
		wantErr   string
		wantPosts int
	}{
		{name: "found: no post", marker: Marker("api-0a1b2c3d4e5f"), wantID: "11111111-0000-4000-8000-000000000003"},
		{name: "none found: posted", marker: Marker("web-ffffffffffff"), wantID: "22222222-0000-4000-8000-000000000001", created: true, wantPosts: 1},
		{name: "listing fails: no post, retried later", listFails: true, marker: Marker("web-ffffffffffff"), retryable: true, wantErr: "list silences: HTTP 503"},
		{name: "comment without the marker", marker: Marker("web-ffffffffffff"), comment: "no marker", wantErr: "lacks the marker"},
		{name: "empty marker", marker: "", wantErr: "lacks the marker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.Method == http.MethodGet && tc.listFails:
					w.WriteHeader(http.StatusServiceUnavailable)
				case r.Method == http.MethodGet:
					w.Write(listing)
				case r.Method == http.MethodPost:
					io.WriteString(w, `{"silenceID":"22222222-0000-4000-8000-000000000001"}`)
				}
			})
			c := newClient(t, Config{URL: s.srv.URL})
			sil := testSilence()
			sil.Comment = "Silenced from Slack " + tc.marker
			if tc.comment != "" {
				sil.Comment = tc.comment
			}
			id, created, err := c.Ensure(context.Background(), sil, tc.marker)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || Retryable(err) != tc.retryable {
					t.Fatalf("Ensure error %v, want %q (retryable %t)", err, tc.wantErr, tc.retryable)
				}
			} else if err != nil || id != tc.wantID || created != tc.created {
				t.Fatalf("Ensure = %q, %t, %v; want %q, %t", id, created, err, tc.wantID, tc.created)
			}
			posts := 0
			for _, r := range s.requests() {
				if r.Method == http.MethodPost {
					posts++
				}
			}
			if posts != tc.wantPosts {
				t.Fatalf("%d POSTs, want %d", posts, tc.wantPosts)
			}
		})
	}
}
