package grafana

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

const token = "glsa_test_token"

func do(t *testing.T, s *Server, method, path, tok string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

func TestAuthRequired(t *testing.T) {
	s := New(token)
	defer s.Close()
	for _, tok := range []string{"", "wrong"} {
		st, out, _ := do(t, s, "POST", "/api/annotations", tok, map[string]any{"time": 1, "text": "x"})
		if st != 401 || out["message"] != "Unauthorized" {
			t.Errorf("token %q: got %d %v, want 401 Unauthorized", tok, st, out)
		}
	}
	if n := len(s.Annotations()); n != 0 {
		t.Errorf("stored %d annotations without auth", n)
	}
	if r := s.Requests(); len(r) != 2 || r[0].Authorized {
		t.Errorf("requests = %+v", r)
	}
}

func TestPostValidation(t *testing.T) {
	s := New(token)
	defer s.Close()
	for name, b := range map[string]map[string]any{
		"empty text":     {"time": 1000, "text": ""},
		"missing text":   {"time": 1000},
		"missing time":   {"text": "x"},
		"inverted range": {"time": 2000, "timeEnd": 1000, "text": "x"},
	} {
		st, out, _ := do(t, s, "POST", "/api/annotations", token, b)
		if st != 400 || out["message"] != "Failed to save annotation" {
			t.Errorf("%s: got %d %v", name, st, out)
		}
	}
	req, _ := http.NewRequest("POST", s.URL+"/api/annotations", bytes.NewReader([]byte("{")))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("malformed JSON: %d", resp.StatusCode)
	}
	if n := len(s.Annotations()); n != 0 {
		t.Errorf("stored %d invalid annotations", n)
	}
}

func TestPostPatchGet(t *testing.T) {
	s := New(token)
	defer s.Close()
	st, out, _ := do(t, s, "POST", "/api/annotations", token, map[string]any{
		"dashboardUID": "abc", "panelId": 3, "time": 1000, "tags": []string{"a", "b", "a"}, "text": "hello",
		"data": map[string]any{"k": "v"},
	})
	if st != 200 || out["message"] != "Annotation added" {
		t.Fatalf("post: %d %v", st, out)
	}
	id := int64(out["id"].(float64))
	a, ok := s.Annotation(id)
	if !ok || a.DashboardUID != "abc" || a.PanelID != 3 || a.Time != 1000 || a.TimeEnd != 1000 ||
		!slices.Equal(a.Tags, []string{"a", "b"}) || a.Text != "hello" || a.IsRegion() || string(a.Data) != `{"k":"v"}` {
		t.Fatalf("stored %+v", a)
	}

	// Zero values are ignored; absent tags are kept.
	st, out, _ = do(t, s, "PATCH", "/api/annotations/1", token, map[string]any{"timeEnd": 5000})
	if st != 200 || out["message"] != "Annotation patched" {
		t.Fatalf("patch: %d %v", st, out)
	}
	a, _ = s.Annotation(id)
	if a.Time != 1000 || a.TimeEnd != 5000 || a.Text != "hello" || !slices.Equal(a.Tags, []string{"a", "b"}) || !a.IsRegion() {
		t.Fatalf("after patch %+v", a)
	}
	// Present tags replace, even when empty.
	do(t, s, "PATCH", "/api/annotations/1", token, map[string]any{"tags": []string{}, "text": "bye"})
	a, _ = s.Annotation(id)
	if len(a.Tags) != 0 || a.Text != "bye" || a.Patches != 2 {
		t.Fatalf("after 2nd patch %+v", a)
	}
	// timeEnd before time is refused.
	if st, _, _ = do(t, s, "PATCH", "/api/annotations/1", token, map[string]any{"time": 9000}); st != 400 {
		t.Errorf("inverted patch: %d", st)
	}

	st, out, _ = do(t, s, "GET", "/api/annotations/1", token, nil)
	if st != 200 || out["text"] != "bye" || out["timeEnd"].(float64) != 5000 {
		t.Errorf("get: %d %v", st, out)
	}
	if st, _, _ = do(t, s, "PATCH", "/api/annotations/42", token, map[string]any{"text": "x"}); st != 404 {
		t.Errorf("patch unknown: %d", st)
	}
	if st, _, _ = do(t, s, "GET", "/api/annotations/42", token, nil); st != 404 {
		t.Errorf("get unknown: %d", st)
	}
	if st, _, _ = do(t, s, "DELETE", "/api/annotations/1", token, nil); st != 200 {
		t.Errorf("delete: %d", st)
	}
	if st, _, _ = do(t, s, "PATCH", "/api/annotations/1", token, map[string]any{"text": "x"}); st != 404 {
		t.Errorf("patch deleted: %d", st)
	}
}

func TestList(t *testing.T) {
	s := New(token)
	defer s.Close()
	do(t, s, "POST", "/api/annotations", token, map[string]any{"time": 1, "text": "1", "tags": []string{"x", "y"}})
	do(t, s, "POST", "/api/annotations", token, map[string]any{"time": 2, "text": "2", "tags": []string{"x"}})
	req, _ := http.NewRequest("GET", s.URL+"/api/annotations?tags=x&tags=y", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Annotation
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Text != "1" {
		t.Errorf("list = %+v", out)
	}
}

func TestFaults(t *testing.T) {
	s := New(token)
	defer s.Close()
	s.FailNext(2, 500)
	s.Fail(Fault{Status: 429, RetryAfter: 7})
	body := map[string]any{"time": 1, "text": "x"}
	for i, want := range []int{500, 500, 429, 200} {
		st, _, h := do(t, s, "POST", "/api/annotations", token, body)
		if st != want {
			t.Errorf("request %d: %d, want %d", i, st, want)
		}
		if want == 429 && h.Get("Retry-After") != "7" {
			t.Errorf("Retry-After = %q", h.Get("Retry-After"))
		}
	}
	if n := len(s.Annotations()); n != 1 {
		t.Errorf("annotations = %d, want 1", n)
	}

	s.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/api/annotations", bytes.NewReader([]byte(`{"time":1,"text":"x"}`)))
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("hung request answered")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("hang outlived the context by far")
	}
	reqs := s.Requests()
	if last := reqs[len(reqs)-1]; !last.Fault || last.Status != 0 {
		t.Errorf("hung request recorded as %+v", last)
	}
}

func TestHangReleasedByClose(t *testing.T) {
	s := New(token)
	s.HangNext(1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", s.URL+"/api/annotations/1", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for len(s.Requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
}

func TestConcurrent(t *testing.T) {
	s := New(token)
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.URL+"/api/annotations", bytes.NewReader([]byte(`{"text":"x","time":`+strconv.Itoa(i+1)+`}`)))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			_ = s.Annotations()
			_ = s.Requests()
		})
	}
	wg.Wait()
	as := s.Annotations()
	if len(as) != 20 {
		t.Fatalf("annotations = %d", len(as))
	}
	for i, a := range as {
		if a.ID != int64(i+1) {
			t.Fatalf("ids not unique/sequential: %+v", as)
		}
	}
}

// A lost answer: the POST is performed, the connection closed unanswered.
func TestLostAnswer(t *testing.T) {
	s := New(token)
	defer s.Close()
	s.Fail(Fault{Lost: true})
	b, _ := json.Marshal(map[string]any{"time": 1, "text": "x", "tags": []string{"a"}})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/annotations", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answer arrived: %d", resp.StatusCode)
	}
	if n := len(s.Annotations()); n != 1 {
		t.Fatalf("%d annotations, want the POST performed", n)
	}
	if r := s.Requests(); len(r) != 1 || !r[0].Fault || r[0].Status != http.StatusOK {
		t.Fatalf("requests = %+v", r)
	}
}
