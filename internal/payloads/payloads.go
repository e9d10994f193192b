// Package payloads gives tests the webhook bodies a real Alertmanager sent
// (webhook/testdata/payloads) and ways to edit them.
package payloads

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Dir is the directory of the fixtures: bodies a real Alertmanager sent.
var Dir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "webhook", "testdata", "payloads")
}()

// Read returns one of the fixtures a real Alertmanager sent.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// Files lists every fixture; the test fails if there are none, so a
// moved directory cannot make the fixture tests pass vacuously.
func Files(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("expected at least 5 fixtures in %s, found %d", Dir, len(files))
	}
	return files
}

// Edit decodes a fixture into generic JSON, lets edit change it and
// re-encodes it: for building near-valid bodies from real ones.
func Edit(t testing.TB, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(Read(t, name), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FirstAlert is the first alert of a decoded body.
func FirstAlert(m map[string]any) map[string]any {
	return m["alerts"].([]any)[0].(map[string]any)
}

// MustTime parses an RFC 3339 time.
func MustTime(t testing.TB, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
