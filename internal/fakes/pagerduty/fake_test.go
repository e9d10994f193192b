package pagerduty

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const key = "0123456789abcdef0123456789abcdef"

func post(t *testing.T, s *Server, body any) (*http.Response, map[string]any) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(s.URL+"/v2/enqueue", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func trigger(dedup string) map[string]any {
	return map[string]any{
		"routing_key":  key,
		"event_action": "trigger",
		"dedup_key":    dedup,
		"payload":      map[string]any{"summary": "down", "source": "api", "severity": "critical"},
	}
}

func TestValidation(t *testing.T) {
	mod := func(f func(m map[string]any)) map[string]any {
		m := trigger("k")
		f(m)
		return m
	}
	payload := func(m map[string]any) map[string]any { return m["payload"].(map[string]any) }
	cases := []struct {
		name   string
		body   any
		status int
		errSub string
	}{
		{"valid trigger", trigger("k"), 202, ""},
		{"missing summary", mod(func(m map[string]any) { delete(payload(m), "summary") }), 400, "payload.summary"},
		{"long summary", mod(func(m map[string]any) { payload(m)["summary"] = strings.Repeat("é", 1025) }), 400, "payload.summary"},
		{"summary 1024 runes ok", mod(func(m map[string]any) { payload(m)["summary"] = strings.Repeat("é", 1024) }), 202, ""},
		{"missing source", mod(func(m map[string]any) { payload(m)["source"] = "" }), 400, "payload.source"},
		{"bad severity", mod(func(m map[string]any) { payload(m)["severity"] = "high" }), 400, "payload.severity"},
		{"missing payload", mod(func(m map[string]any) { delete(m, "payload") }), 400, "payload"},
		{"missing routing key", mod(func(m map[string]any) { delete(m, "routing_key") }), 400, "routing_key"},
		{"short routing key", mod(func(m map[string]any) { m["routing_key"] = "abc" }), 400, "routing_key"},
		{"bad action", mod(func(m map[string]any) { m["event_action"] = "open" }), 400, "event_action"},
		{"long dedup key", mod(func(m map[string]any) { m["dedup_key"] = strings.Repeat("k", 256) }), 400, "dedup_key"},
		{"link without href", mod(func(m map[string]any) { m["links"] = []any{map[string]any{"text": "x"}} }), 400, "links[0].href"},
		{"bad timestamp", mod(func(m map[string]any) { payload(m)["timestamp"] = "yesterday" }), 400, "timestamp"},
		{"not json", "{nope", 400, "Invalid JSON"},
		{"too large", mod(func(m map[string]any) {
			payload(m)["custom_details"] = map[string]any{"x": strings.Repeat("a", MaxBodyBytes)}
		}), 400, "too large"},
		{"resolve needs no payload", map[string]any{"routing_key": key, "event_action": "resolve", "dedup_key": "k"}, 202, ""},
		{"resolve needs dedup key", map[string]any{"routing_key": key, "event_action": "resolve"}, 400, "dedup_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			defer s.Close()
			resp, out := post(t, s, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, out)
			}
			if tc.status == 202 {
				if out["status"] != "success" || out["message"] != "Event processed" || out["dedup_key"] == "" {
					t.Errorf("body %v", out)
				}
				if len(s.Events()) != 1 {
					t.Errorf("events %d, want 1", len(s.Events()))
				}
				return
			}
			if out["status"] != "invalid event" || out["message"] != "Event object is invalid" {
				t.Errorf("body %v", out)
			}
			errs, _ := json.Marshal(out["errors"])
			if !strings.Contains(string(errs), tc.errSub) {
				t.Errorf("errors %s, want one about %q", errs, tc.errSub)
			}
			if len(s.Events()) != 0 {
				t.Errorf("invalid event recorded")
			}
		})
	}
}

func TestMethodAndPath(t *testing.T) {
	s := New()
	defer s.Close()
	resp, err := http.Get(s.URL + "/v2/enqueue")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	resp, err = http.Post(s.URL+"/v2/other", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("wrong path: %d", resp.StatusCode)
	}
}

func TestAlertState(t *testing.T) {
	s := New()
	defer s.Close()
	post(t, s, trigger("inc-1"))
	tr := trigger("inc-1")
	tr["payload"].(map[string]any)["severity"] = "error"
	post(t, s, tr)
	if a, _ := s.Alert("inc-1"); a.Status != Triggered || a.Triggers != 2 || a.Severity != "error" {
		t.Fatalf("alert %+v", a)
	}
	// A resolve with another routing key is dropped.
	other := strings.Repeat("z", 32)
	post(t, s, map[string]any{"routing_key": other, "event_action": "resolve", "dedup_key": "inc-1"})
	if len(s.OpenAlerts()) != 1 {
		t.Fatal("resolve with another key closed the alert")
	}
	if ev := s.Events(); !ev[len(ev)-1].Dropped {
		t.Error("foreign resolve not marked dropped")
	}
	post(t, s, map[string]any{"routing_key": key, "event_action": "acknowledge", "dedup_key": "inc-1"})
	if a, _ := s.Alert("inc-1"); a.Status != Acknowledged {
		t.Fatalf("after ack %+v", a)
	}
	post(t, s, map[string]any{"routing_key": key, "event_action": "resolve", "dedup_key": "inc-1"})
	if len(s.OpenAlerts()) != 0 {
		t.Fatal("alert still open")
	}
	// A new trigger after the resolve opens a new alert.
	post(t, s, trigger("inc-1"))
	if n := len(s.Alerts()); n != 2 || len(s.OpenAlerts()) != 1 {
		t.Fatalf("alerts %d open %d", n, len(s.OpenAlerts()))
	}
	if n := len(s.Triggers("inc-1")); n != 3 {
		t.Errorf("triggers %d", n)
	}
	if n := len(s.Resolves("inc-1")); n != 2 {
		t.Errorf("resolves %d", n)
	}
	// A trigger without dedup key gets one.
	m := trigger("")
	delete(m, "dedup_key")
	_, out := post(t, s, m)
	if k, _ := out["dedup_key"].(string); len(k) == 0 {
		t.Errorf("no generated dedup key: %v", out)
	}
}

func TestRateLimit(t *testing.T) {
	s := New()
	defer s.Close()
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	s.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	s.SetRateLimit(3, time.Minute)
	for i := range 3 {
		if resp, _ := post(t, s, trigger("k")); resp.StatusCode != 202 {
			t.Fatalf("event %d: %d", i, resp.StatusCode)
		}
	}
	resp, out := post(t, s, trigger("k"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("4th: %d Retry-After %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), out)
	}
	// Another routing key has its own budget.
	m := trigger("k")
	m["routing_key"] = strings.Repeat("y", 32)
	if resp, _ := post(t, s, m); resp.StatusCode != 202 {
		t.Fatalf("other key: %d", resp.StatusCode)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if resp, _ := post(t, s, trigger("k")); resp.StatusCode != 202 {
		t.Fatalf("after the window: %d", resp.StatusCode)
	}
	if n := len(s.Events()); n != 5 {
		t.Errorf("accepted %d, want 5", n)
	}
}

func TestFaults(t *testing.T) {
	s := New()
	defer s.Close()
	s.Fail(Fault{Status: 500, Times: 2})
	s.Fail(Fault{Status: 429, RetryAfter: 7})
	for _, want := range []int{500, 500, 429, 202} {
		resp, _ := post(t, s, trigger("k"))
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d", resp.StatusCode, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") != "7" {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	if n := len(s.Events()); n != 1 {
		t.Errorf("events %d", n)
	}
	if c := s.Calls(); len(c) != 4 || !c[0].Fault || c[3].Fault {
		t.Errorf("calls %+v", c)
	}

	s.Fail(Fault{Hang: true})
	client := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := client.Post(s.URL+"/v2/enqueue", "application/json", strings.NewReader("{}"))
	if err == nil {
		t.Fatal("hung request answered")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hang lasted %v", d)
	}
}

// TestHangFor: every request in the window hangs until its client gives up;
// after it, requests are answered.
func TestHangFor(t *testing.T) {
	s := New()
	defer s.Close()
	s.HangFor(time.Hour)
	client := &http.Client{Timeout: 100 * time.Millisecond}
	for i := range 2 {
		if _, err := client.Post(s.URL+"/v2/enqueue", "application/json", strings.NewReader("{}")); err == nil {
			t.Fatalf("request %d answered during the hang", i)
		}
	}
	s.HangFor(0)
	if resp, _ := post(t, s, trigger("k")); resp.StatusCode != 202 {
		t.Fatalf("after the hang: %d", resp.StatusCode)
	}
	if c := s.Calls(); len(c) != 3 || !c[0].Fault || !c[1].Fault || c[2].Fault {
		t.Errorf("calls %+v", c)
	}
}
