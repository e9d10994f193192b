package slackin

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// FuzzVerify: Verify never panics, and accepts only the exact signature of
// the exact timestamp and body, with a fresh timestamp.
func FuzzVerify(f *testing.F) {
	now := testNow.Unix()
	f.Add(testSecret, strconv.FormatInt(now, 10), Sign(testSecret, strconv.FormatInt(now, 10), testBody), testBody, int64(0))
	f.Add(testSecret, "1699999000", Sign(testSecret, "1699999000", testBody), testBody, int64(700))
	f.Add([]byte("k"), "+1700000000", "v0=00", []byte(""), int64(-301))
	f.Add([]byte{}, "", "", []byte("payload="), int64(1<<62))
	f.Fuzz(func(t *testing.T, secret []byte, ts, sig string, body []byte, offset int64) {
		h := http.Header{}
		h[HeaderTimestamp] = []string{ts}
		h[HeaderSignature] = []string{sig}
		at := time.Unix(now, 0).Add(time.Duration(offset) * time.Second)
		err := Verify(secret, h, body, at)
		if err == nil {
			if len(secret) == 0 || sig != Sign(secret, ts, body) {
				t.Fatalf("accepted %q for ts %q", sig, ts)
			}
			sec, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil || sec-at.Unix() > 300 || at.Unix()-sec > 300 {
				t.Fatalf("accepted timestamp %q at %d", ts, at.Unix())
			}
			// Any change to the body is refused.
			if Verify(secret, h, append(append([]byte(nil), body...), 'x'), at) == nil {
				t.Fatal("accepted a changed body")
			}
		} else if ReasonOf(err) == "other" {
			t.Fatalf("untyped error %v", err)
		}
		// The correctly signed request verifies whenever the timestamp is fresh and well formed.
		if len(secret) > 0 {
			good := http.Header{}
			good[HeaderTimestamp] = []string{ts}
			good[HeaderSignature] = []string{Sign(secret, ts, body)}
			sec, ok := parseTimestamp(ts)
			d := at.Unix() - sec
			if err := Verify(secret, good, body, at); ok && d <= 300 && d >= -300 && err != nil {
				t.Fatalf("refused the exact signature: %v", err)
			}
		}
	})
}

// FuzzDecodeInteraction: decoding never panics, and what it accepts is a
// known action on a valid incident id within Slack's limits.
func FuzzDecodeInteraction(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(form(string(b)))
	}
	f.Add([]byte("payload="))
	f.Add([]byte("payload=%7B%7D&payload=x"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := DecodeInteraction(body)
		if err != nil {
			return
		}
		if in.Type != TypeBlockActions || in.UserID == "" || in.MessageTS == "" || len(in.Actions) == 0 {
			t.Fatalf("accepted %+v", in)
		}
		for _, a := range in.Actions {
			if !a.ID.Known() || len(a.ID) > MaxActionID || len(a.RawValue) > MaxValue || a.ActionTS == "" {
				t.Fatalf("accepted action %+v", a)
			}
			if !ValidIncidentID(a.Value.Incident) || len(a.Value.Incident) > MaxIncidentID {
				t.Fatalf("accepted incident %q", a.Value.Incident)
			}
			if (a.ID == ActRollback) != (a.Value.Rollback != nil) {
				t.Fatalf("rollback target %+v on %s", a.Value.Rollback, a.ID)
			}
			// The value re-encodes to one that decodes to the same thing.
			s, err := EncodeValue(a.ID, a.Value)
			if err != nil {
				t.Fatalf("accepted value does not re-encode: %v", err)
			}
			if v, err := DecodeValue(a.ID, s); err != nil || v.Incident != a.Value.Incident {
				t.Fatalf("re-encoded value %q: %+v %v", s, v, err)
			}
		}
	})
}
