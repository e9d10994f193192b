package pdin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// sign is written out here rather than shared with the fake, so a mistake in
// one is not mirrored by the other.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

func hdr(values ...string) http.Header {
	h := http.Header{}
	for _, v := range values {
		h.Add(SignatureHeader, v)
	}
	return h
}

func secrets(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

func TestVerify(t *testing.T) {
	body := []byte(`{"event":{"id":"e1","event_type":"incident.acknowledged"}}`)
	good := sign("old-secret", body)
	other := sign("new-secret", body)
	wrong := sign("someone-else", body)
	cases := []struct {
		name    string
		secrets [][]byte
		header  http.Header
		body    []byte
		want    Reason // "" = passes
	}{
		{"one secret, one signature", secrets("old-secret"), hdr(good), body, ""},
		{"rotation: two signatures, old secret", secrets("old-secret"), hdr(other + "," + good), body, ""},
		{"rotation: two signatures, new secret", secrets("new-secret"), hdr(good + "," + other), body, ""},
		{"two secrets, signature of the second", secrets("new-secret", "old-secret"), hdr(good), body, ""},
		{"spaces around entries", secrets("old-secret"), hdr(" " + wrong + " , " + good + " "), body, ""},
		{"unknown versions ignored", secrets("old-secret"), hdr("v2=abc," + good), body, ""},
		{"signature on a second header line", secrets("old-secret"), hdr(wrong, good), body, ""},
		{"uppercase hex", secrets("old-secret"), hdr("v1=" + strings.ToUpper(strings.TrimPrefix(good, "v1="))), body, ""},

		{"no secrets", nil, hdr(good), body, ReasonNoSecret},
		{"only an empty secret", secrets(""), hdr(sign("", body)), body, ReasonNoSecret},
		{"empty secret skipped, other used", secrets("", "x"), hdr(sign("", body)), body, ReasonMismatch},
		{"header missing", secrets("old-secret"), http.Header{}, body, ReasonMissing},
		{"header blank", secrets("old-secret"), hdr("  "), body, ReasonMissing},
		{"no v1 entry", secrets("old-secret"), hdr("v0=" + strings.TrimPrefix(good, "v1=")), body, ReasonMalformed},
		{"bare hex without v1=", secrets("old-secret"), hdr(strings.TrimPrefix(good, "v1=")), body, ReasonMalformed},
		{"not hex", secrets("old-secret"), hdr("v1=" + strings.Repeat("zz", 32)), body, ReasonMalformed},
		{"truncated", secrets("old-secret"), hdr(good[:len(good)-2]), body, ReasonMalformed},
		{"too long", secrets("old-secret"), hdr(good + "00"), body, ReasonMalformed},
		{"only commas", secrets("old-secret"), hdr(",,,"), body, ReasonMalformed},
		{"wrong secret", secrets("old-secret"), hdr(wrong), body, ReasonMismatch},
		{"rotation list, neither ours", secrets("old-secret"), hdr(wrong + "," + sign("x", body)), body, ReasonMismatch},
		{"body changed", secrets("old-secret"), hdr(good), append(bytes.Clone(body), ' '), ReasonMismatch},
		{"empty body", secrets("old-secret"), hdr(good), nil, ReasonMismatch},
		{"signature of another body", secrets("old-secret"), hdr(sign("old-secret", []byte("{}"))), body, ReasonMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secrets, tc.header, tc.body)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify passed, want %s", tc.want)
			}
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.want)
			}
			if !errors.Is(err, ErrUnverified) {
				t.Fatalf("errors.Is(%v, ErrUnverified) = false", err)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	body := []byte(`{"event":{"id":"e1"}}`)
	req := func(b io.Reader, sig string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/pagerduty/webhook", b)
		if sig != "" {
			r.Header.Set(SignatureHeader, sig)
		}
		return r
	}
	cases := []struct {
		name string
		r    *http.Request
		max  int64
		want Reason
	}{
		{"valid", req(bytes.NewReader(body), sign("s", body)), 0, ""},
		{"valid at the limit", req(bytes.NewReader(body), sign("s", body)), int64(len(body)), ""},
		{"one byte over the limit", req(bytes.NewReader(body), sign("s", body)), int64(len(body)) - 1, ReasonTooLarge},
		{"over the default limit", req(bytes.NewReader(make([]byte, DefaultMaxBytes+1)), sign("s", make([]byte, DefaultMaxBytes+1))), 0, ReasonTooLarge},
		{"missing header, body not read", req(iotest.ErrReader(errors.New("must not be read")), ""), 0, ReasonMissing},
		{"read error", req(iotest.ErrReader(errors.New("connection reset")), sign("s", body)), 0, ReasonRead},
		{"wrong signature", req(bytes.NewReader(body), sign("t", body)), 0, ReasonMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadRequest(tc.r, secrets("s"), tc.max)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ReadRequest = %v", err)
				}
				if !bytes.Equal(got, body) {
					t.Fatalf("body %q, want %q", got, body)
				}
				return
			}
			if r := ReasonOf(err); r != tc.want {
				t.Fatalf("reason %q (%v), want %q", r, err, tc.want)
			}
			if got != nil {
				t.Fatalf("refused request returned a body")
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"event":{"id":"e1"}}`)
	f.Add([]byte("s"), sign("s", body), body)
	f.Add([]byte("s"), sign("t", body)+","+sign("s", body), body)
	f.Add([]byte(""), "v1=", []byte{})
	f.Add([]byte("s"), ",v1=zz,,v2=00", body)
	f.Fuzz(func(t *testing.T, secret []byte, header string, body []byte) {
		h := hdr(header)
		err := Verify([][]byte{secret}, h, body)
		if err == nil {
			// Accepted only if the header really holds the body's HMAC.
			if len(secret) == 0 || !strings.Contains(strings.ToLower(header), sign(string(secret), body)) {
				t.Fatalf("accepted header %q for secret %q", header, secret)
			}
			return
		}
		if ReasonOf(err) == "" {
			t.Fatalf("error without a reason: %v", err)
		}
		// The correct signature appended always passes.
		if len(secret) > 0 {
			h.Set(SignatureHeader, header+","+sign(string(secret), body))
			if err := Verify([][]byte{secret}, h, body); err != nil {
				t.Fatalf("valid signature after %q refused: %v", header, err)
			}
		}
	})
}
