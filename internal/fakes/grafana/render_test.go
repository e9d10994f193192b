package grafana

import (
	"bytes"
	"image/png"
	"io"
	"net/http"
	"testing"
)

func get(t *testing.T, url, tok string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestRenderPanel(t *testing.T) {
	s := New(token)
	defer s.Close()
	const path = "/render/d-solo/abc123/?panelId=4&from=1000&to=2000&width=600&height=300"
	tests := []struct {
		name     string
		path     string
		tok      string
		pad      int
		fault    int
		wantCode int
		wantPNG  bool
	}{
		{name: "valid token", path: path, tok: token, wantCode: 200, wantPNG: true},
		{name: "padded to a size", path: path, tok: token, pad: 10000, wantCode: 200, wantPNG: true},
		{name: "no token", path: path, wantCode: 401},
		{name: "wrong token", path: path, tok: "glsa_other", wantCode: 401},
		{name: "no panel", path: "/render/d-solo/abc123/?from=1", tok: token, wantCode: 400},
		{name: "fault", path: path, tok: token, fault: 500, wantCode: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetRenderSize(tt.pad)
			if tt.fault != 0 {
				s.FailNext(1, tt.fault)
			}
			code, ctype, body := get(t, s.URL+tt.path, tt.tok)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", code, tt.wantCode, body)
			}
			if !tt.wantPNG {
				if ctype == "image/png" {
					t.Fatalf("an error answered image/png")
				}
				return
			}
			if ctype != "image/png" {
				t.Fatalf("Content-Type %q", ctype)
			}
			if _, err := png.Decode(bytes.NewReader(body)); err != nil {
				t.Fatalf("not a valid PNG: %v", err)
			}
			if len(body) < tt.pad {
				t.Fatalf("%d bytes, want at least %d", len(body), tt.pad)
			}
		})
	}
	r := s.Renders()
	if len(r) != 2 || r[0] != (Render{DashboardUID: "abc123", PanelID: 4, From: 1000, To: 2000, Width: 600, Height: 300}) {
		t.Fatalf("renders %+v", r)
	}
}
