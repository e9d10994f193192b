package alertmanager

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/silence"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"

	"github.com/amtriage/amtriage/internal/amtest"
)

// reports records the outcomes the receiver reports, failing the first
// fail calls as a broken inbox would.
type reports struct {
	mu   sync.Mutex
	got  []*actions.Action
	fail int
}

func (r *reports) report(_ context.Context, a *actions.Action) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("inbox unavailable")
	}
	// The daemon stores it only if it validates.
	if err := a.Validate(); err != nil {
		return err
	}
	r.got = append(r.got, a)
	return nil
}

func (r *reports) all() []*actions.Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*actions.Action(nil), r.got...)
}

const incidentID = "api-0a1b2c3d4e5f"

var clock = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func alert(labels map[string]string) incident.Alert {
	return incident.Alert{Labels: labels, Status: incident.Firing}
}

// silenceEvent is a Silence 1h request on incident api-… with two alerts.
func silenceEvent(at time.Time) *incident.Event {
	return &incident.Event{
		Kind: incident.SilenceRequested, At: at,
		Incident: incident.Incident{ID: incidentID, Service: "api", Title: "INCIDENT: api - 5xx above 50% since 09:58 UTC"},
		Alerts: []incident.Alert{
			alert(map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "critical", "instance": "a"}),
			alert(map[string]string{"alertname": "HighErrorRate", "service": "api", "severity": "critical", "instance": "b"}),
		},
		Act: &incident.EventAct{Key: "slack:T1:U024BE7LH:silence_1h:1700000000.000100", By: "<@U024BE7LH>", ByName: "ana",
			ResponseURL: "https://hooks.slack.com/actions/T1/1/abc", SilenceFor: time.Hour},
	}
}

func unsilenceEvent(at time.Time, id string) *incident.Event {
	ev := silenceEvent(at)
	ev.Kind = incident.UnsilenceRequested
	ev.Act = &incident.EventAct{Key: "slack:T1:U024BE7LH:unsilence:1700000100.000100", By: "<@U024BE7LH>", SilenceID: id}
	return ev
}

func newNotifier(t *testing.T, url string, r *reports, now func() time.Time) *Notifier {
	t.Helper()
	c, err := silence.New(silence.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Client: c, Report: r.report, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTakes(t *testing.T) {
	n := newNotifier(t, "http://127.0.0.1:9", &reports{}, nil)
	for _, tc := range []struct {
		kind incident.EventKind
		want bool
	}{
		{incident.SilenceRequested, true},
		{incident.UnsilenceRequested, true},
		{incident.RollbackRequested, false},
		{incident.ActionRefused, false},
		{incident.Silenced, false},
		{incident.Opened, false},
		{incident.ResolvedEvent, false},
	} {
		if got := notify.Takes(n, tc.kind); got != tc.want {
			t.Errorf("Takes(%s) = %t, want %t", tc.kind, got, tc.want)
		}
	}
	if retry, err := n.Notify(context.Background(), &incident.Event{Kind: incident.Opened}); !errors.Is(err, notify.ErrSkipped) || retry {
		t.Errorf("Notify(opened) = %t, %v; want ErrSkipped", retry, err)
	}
}

func TestNew(t *testing.T) {
	c, err := silence.New(silence.Config{URL: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	report := func(context.Context, *actions.Action) error { return nil }
	for name, cfg := range map[string]Config{
		"no client": {Report: report},
		"no report": {Client: c},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestOnAlertmanager: against the real Alertmanager, a Silence request
// makes one silence with the incident's common labels, our creator and a
// comment naming who and which incident; a redelivery (after a failed
// Report) finds it instead of making another; Unsilence expires it, and a
// repeated or unknown Unsilence is done.
func TestOnAlertmanager(t *testing.T) {
	t.Parallel()
	am := amtest.Start(t, amtest.Config{WebhookURL: "http://127.0.0.1:9/unused"})
	r := &reports{fail: 1}
	now := time.Now().UTC().Truncate(time.Millisecond)
	n := newNotifier(t, am.URL(), r, func() time.Time { return now })
	c, _ := silence.New(silence.Config{URL: am.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ev := silenceEvent(now)
	if retry, err := n.Notify(ctx, ev); !retry || err == nil || !strings.Contains(err.Error(), "inbox unavailable") {
		t.Fatalf("Notify with the inbox failing = %t, %v; want a retry", retry, err)
	}
	now = now.Add(30 * time.Second) // the outbox's retry
	if retry, err := n.Notify(ctx, ev); retry || err != nil {
		t.Fatalf("Notify retried = %t, %v", retry, err)
	}
	got := r.all()
	if len(got) != 1 {
		t.Fatalf("%d outcomes reported, want 1", len(got))
	}
	a, o := got[0], got[0].Outcome
	if a.Key != "result:"+ev.Act.Key || a.Kind != actions.Result || a.Incident != incidentID || a.By.Source != "amtriage" ||
		a.ResponseURL != ev.Act.ResponseURL || o.For != actions.Silence || o.RequestKey != ev.Act.Key || o.Error != "" {
		t.Fatalf("reported %+v outcome %+v", a, o)
	}
	if o.SilenceID == "" || o.SilenceURL != am.URL()+"/#/silences/"+o.SilenceID {
		t.Errorf("silence id %q url %q", o.SilenceID, o.SilenceURL)
	}
	// The silence was made on the first attempt; the second found it and
	// reports its end, not a new one.
	if want := now.Add(-30 * time.Second).Add(time.Hour); !o.Until.Equal(want) {
		t.Errorf("until %s, want %s (the first attempt's)", o.Until, want)
	}
	all, err := c.List(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("Alertmanager lists %d silences (%v), want 1", len(all), err)
	}
	s := all[0]
	var ms []string
	for _, m := range s.Matchers {
		ms = append(ms, m.String())
	}
	wantComment := "Silenced from Slack by ana (<@U024BE7LH>) for incident " + incidentID + ": " + ev.Incident.Title + " " + silence.Marker(incidentID)
	if s.ID != o.SilenceID || s.State() != silence.StateActive || s.CreatedBy != "amtriage" || s.Comment != wantComment ||
		strings.Join(ms, ",") != `alertname="HighErrorRate",service="api",severity="critical"` {
		t.Errorf("Alertmanager has %+v (matchers %v), comment want %q", s, ms, wantComment)
	}

	// Unsilence, then again (a redelivery), then a silence unknown to
	// Alertmanager: all done.
	for i, id := range []string{o.SilenceID, o.SilenceID, "00000000-0000-4000-8000-000000000000"} {
		if retry, err := n.Notify(ctx, unsilenceEvent(now, id)); retry || err != nil {
			t.Fatalf("unsilence %d (%s) = %t, %v", i, id, retry, err)
		}
		last := r.all()[len(r.all())-1]
		if u := last.Outcome; u.For != actions.Unsilence || u.SilenceID != id || u.Error != "" || last.Key != "result:slack:T1:U024BE7LH:unsilence:1700000100.000100" {
			t.Errorf("unsilence %d reported %+v outcome %+v", i, last, u)
		}
	}
	if s, err := c.Get(ctx, o.SilenceID); err != nil || s.State() != silence.StateExpired {
		t.Errorf("after Unsilence: %+v, %v; want expired", s, err)
	}
}

// TestFailures: which failures are retried and which are told the user,
// against a fake Alertmanager answering each call as configured.
func TestFailures(t *testing.T) {
	t.Parallel()
	type answer struct {
		status int
		body   string
		header map[string]string
	}
	ok := answer{status: 200}
	tests := []struct {
		name               string
		ev                 func() *incident.Event
		list, post, delete answer
		// down: nothing listens at the URL.
		down bool
		// late: the request was made this long before now.
		late time.Duration

		wantRetry    bool
		wantErr      string // in the returned error
		wantAfter    time.Duration
		wantReported string // in the reported Outcome.Error; "-": no report
		wantCalls    int
	}{
		{name: "5xx is retried", ev: func() *incident.Event { return silenceEvent(clock) },
			list: answer{status: 503, body: `"maintenance"`}, wantRetry: true, wantErr: "HTTP 503", wantReported: "-", wantCalls: 1},
		{name: "429 with Retry-After", ev: func() *incident.Event { return silenceEvent(clock) },
			list: ok, post: answer{status: 429, header: map[string]string{"Retry-After": "7"}},
			wantRetry: true, wantErr: "HTTP 429", wantAfter: 7 * time.Second, wantReported: "-", wantCalls: 2},
		{name: "unreachable is retried", ev: func() *incident.Event { return silenceEvent(clock) },
			down: true, wantRetry: true, wantErr: "list silences", wantReported: "-"},
		{name: "still failing after GiveUpAfter is told", ev: func() *incident.Event { return silenceEvent(clock) },
			list: answer{status: 502}, late: DefaultGiveUpAfter, wantReported: "given up 15m0s after the request: making the silence: alertmanager: list silences: HTTP 502", wantCalls: 1},
		{name: "400 is told", ev: func() *incident.Event { return silenceEvent(clock) },
			list: ok, post: answer{status: 400, body: `"bad matcher"`}, wantReported: "HTTP 400: bad matcher", wantCalls: 2},
		{name: "401 is told", ev: func() *incident.Event { return silenceEvent(clock) },
			list: answer{status: 401, body: "Unauthorized"}, wantReported: "HTTP 401", wantCalls: 1},
		{name: "no alerts", ev: func() *incident.Event { e := silenceEvent(clock); e.Alerts = nil; return e },
			wantReported: "no alerts to silence"},
		{name: "alerts of two services", ev: func() *incident.Event {
			e := silenceEvent(clock)
			e.Alerts[1].Labels = map[string]string{"alertname": "HighErrorRate", "service": "web"}
			return e
		}, wantReported: "cannot silence incident " + incidentID + ": the alerts differ in service (api, web)"},
		{name: "all the incident's alerts span two services, beyond the event's", ev: func() *incident.Event {
			e := silenceEvent(clock) // its alerts agree: the book's view of all of them does not
			e.Act.Labels = map[string]string{"alertname": "HighErrorRate"}
			e.Act.Varying = map[string][]string{"service": {"api", "web"}}
			return e
		}, wantReported: "cannot silence incident " + incidentID + ": the alerts differ in service (api, web)"},
		{name: "request without its act", ev: func() *incident.Event { e := silenceEvent(clock); e.Act = nil; return e },
			wantErr: "carries no request", wantReported: "-"},
		{name: "unsilence of an unknown silence is done", ev: func() *incident.Event { return unsilenceEvent(clock, "gone") },
			delete: answer{status: 404}, wantReported: "", wantCalls: 1},
		{name: "unsilence on 0.25's 500 not found is done", ev: func() *incident.Event { return unsilenceEvent(clock, "gone") },
			delete: answer{status: 500, body: `"silence not found"`}, wantReported: "", wantCalls: 1},
		{name: "unsilence 500 is retried", ev: func() *incident.Event { return unsilenceEvent(clock, "x") },
			delete: answer{status: 500, body: `"boom"`}, wantRetry: true, wantErr: "HTTP 500", wantReported: "-", wantCalls: 1},
		{name: "unsilence 403 is told", ev: func() *incident.Event { return unsilenceEvent(clock, "x") },
			delete: answer{status: 403}, wantReported: "expiring silence x: alertmanager: expire silence x: HTTP 403", wantCalls: 1},
		{name: "unsilence without an id", ev: func() *incident.Event { return unsilenceEvent(clock, "") },
			wantReported: "no silence to expire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			calls := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				mu.Lock()
				calls++
				mu.Unlock()
				var a answer
				switch {
				case req.Method == http.MethodGet && req.URL.Path == "/api/v2/silences":
					a = tc.list
					if a.status == 200 {
						a.body = "[]"
					}
				case req.Method == http.MethodPost && req.URL.Path == "/api/v2/silences":
					a = tc.post
				case req.Method == http.MethodDelete && strings.HasPrefix(req.URL.Path, "/api/v2/silence/"):
					a = tc.delete
				}
				if a.status == 0 {
					t.Errorf("unexpected %s %s", req.Method, req.URL.Path)
					a.status = 418
				}
				for k, v := range a.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(a.status)
				w.Write([]byte(a.body))
			}))
			url := srv.URL
			if tc.down {
				srv.Close()
			} else {
				t.Cleanup(srv.Close)
			}
			r := &reports{}
			n := newNotifier(t, url, r, func() time.Time { return clock.Add(tc.late) })
			retry, err := n.Notify(context.Background(), tc.ev())
			if retry != tc.wantRetry {
				t.Errorf("retry = %t, want %t (err %v)", retry, tc.wantRetry, err)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
			var ra *notify.RetryAfterError
			if got := errors.As(err, &ra); got != (tc.wantAfter > 0) || got && ra.After != tc.wantAfter {
				t.Errorf("err = %#v, want a RetryAfterError of %s: %t", err, tc.wantAfter, tc.wantAfter > 0)
			}
			got := r.all()
			switch {
			case tc.wantReported == "-":
				if len(got) != 0 {
					t.Errorf("reported %+v, want nothing yet", got[0].Outcome)
				}
			case len(got) != 1:
				t.Errorf("%d outcomes reported, want 1", len(got))
			case tc.wantReported == "" && got[0].Outcome.Error != "",
				!strings.Contains(got[0].Outcome.Error, tc.wantReported):
				t.Errorf("reported error %q, want %q", got[0].Outcome.Error, tc.wantReported)
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != tc.wantCalls {
				t.Errorf("%d calls to Alertmanager, want %d", calls, tc.wantCalls)
			}
		})
	}
}

// TestReportLimits: what is reported fits an inbox entry, however long
// the request's key, the title or Alertmanager's error.
func TestReportLimits(t *testing.T) {
	long := strings.Repeat("k", actions.MaxKeyBytes)
	if k := actions.ResultKey(long); len(k) > actions.MaxKeyBytes || k == actions.ResultKey(long+"x") || k != actions.ResultKey(long) {
		t.Errorf("ResultKey of a %d-byte key: %q (%d bytes), want a stable key within %d", len(long), k, len(k), actions.MaxKeyBytes)
	}
	if k := actions.ResultKey("slack:a"); k != "result:slack:a" {
		t.Errorf("actions.ResultKey(slack:a) = %q", k)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`"` + strings.Repeat("é", 2000) + `"`))
	}))
	t.Cleanup(srv.Close)
	r := &reports{}
	n := newNotifier(t, srv.URL, r, func() time.Time { return clock })
	ev := silenceEvent(clock)
	ev.Act.Key = long
	ev.Act.ResponseURL = "https://hooks.slack.com/" + strings.Repeat("x", actions.MaxFieldBytes)
	if retry, err := n.Notify(context.Background(), ev); retry || err != nil {
		t.Fatalf("Notify = %t, %v", retry, err)
	}
	got := r.all() // reports validates each outcome
	if len(got) != 1 || got[0].Outcome.Error == "" || got[0].ResponseURL != "" || got[0].Outcome.RequestKey != long {
		t.Fatalf("reported %+v", got)
	}
}
