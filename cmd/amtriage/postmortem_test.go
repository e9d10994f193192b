package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPostmortemCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"status":"error","error":"missing or invalid credentials"}`))
		case r.URL.Path == "/api/incidents/api-1/postmortem":
			_, _ = w.Write([]byte("# Post-mortem: INCIDENT: api\n"))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"status":"error","error":"no incident \"nope\""}`))
		}
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       []string
		code       int
		out, inErr string
	}{
		{[]string{"--url", srv.URL, "--token-file", tok, "api-1"}, 0, "# Post-mortem: INCIDENT: api\n", ""},
		{[]string{"--url", srv.URL, "--token-file", tok, "nope"}, 1, "", `404 Not Found: no incident "nope"`},
		{[]string{"--url", srv.URL, "api-1"}, 1, "", "401 Unauthorized: missing or invalid credentials"},
		{[]string{"--url", srv.URL}, 2, "", "usage: amtriage postmortem"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"postmortem"}, tt.args...), nil, &out, &errOut)
		if code != tt.code || out.String() != tt.out || !strings.Contains(errOut.String(), tt.inErr) {
			t.Errorf("%q: code %d out %q err %q", tt.args, code, out.String(), errOut.String())
		}
	}
}
