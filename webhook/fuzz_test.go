package webhook

import (
	"errors"
	"os"
	"testing"

	"github.com/amtriage/amtriage/internal/payloads"
)

// FuzzDecodeMessage checks DecodeMessage's contract on arbitrary bodies: it
// never panics, everything it accepts is a well-formed version-4 message whose
// alerts can be identified, and everything it rejects is an *InputError (so
// the HTTP layer answers 400, never 500).
func FuzzDecodeMessage(f *testing.F) {
	for _, file := range payloads.Files(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`{"version":"4"}`,
		`{"version":"4","alerts":[]}`,
		`{"version":"4","alerts":[null]}`,
		`{"version":"3","alerts":[]}`,
		`{"version":"4","status":"bogus","alerts":[]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-11-23T19:22:45Z"}]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":["a"],"startsAt":"2026-11-23T19:22:45Z"}]}`,
		`{"version":"4","alerts":[{"status":"resolved","labels":{},"startsAt":"yesterday"}]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{}}]}`,
		`{"version":"4","alerts":[{"status":"firing","startsAt":"0001-01-01T00:00:00Z"}]}`,
		`{"version":"4","truncatedAlerts":-1}`,
		`{"version":"4"} trailing`,
		`{"version":"4",`,
		"\xff\xfe{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeMessage(body)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %q is not an *InputError", err, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			if m != nil {
				t.Fatal("message returned along with an error")
			}
			return
		}
		if m == nil {
			t.Fatal("nil message without an error")
		}
		if m.Version != "4" {
			t.Fatalf("accepted version %q", m.Version)
		}
		for i, a := range m.Alerts {
			if a.Status != "firing" && a.Status != "resolved" {
				t.Fatalf("alert %d: accepted status %q", i, a.Status)
			}
			if a.StartsAt.IsZero() {
				t.Fatalf("alert %d: accepted zero startsAt", i)
			}
			if a.Fingerprint == "" {
				t.Fatalf("alert %d: empty fingerprint", i)
			}
			if OccurrenceKey(&m.Alerts[i]) == "" {
				t.Fatalf("alert %d: empty occurrence key", i)
			}
		}
	})
}
