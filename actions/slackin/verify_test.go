package slackin

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	testSecret = []byte("8f742231b10e8888abcd99yyyzzz85a5")
	testNow    = time.Unix(1700000000, 0)
	testBody   = []byte("payload=%7B%22type%22%3A%22block_actions%22%7D")
)

func signedHeader(secret []byte, ts int64, body []byte) http.Header {
	s := strconv.FormatInt(ts, 10)
	h := http.Header{}
	h.Set(HeaderTimestamp, s)
	h.Set(HeaderSignature, Sign(secret, s, body))
	return h
}

func TestVerify(t *testing.T) {
	now := testNow.Unix()
	good := signedHeader(testSecret, now, testBody)
	with := func(mod func(h http.Header)) http.Header {
		h := good.Clone()
		mod(h)
		return h
	}
	tests := []struct {
		name   string
		secret []byte
		header http.Header
		body   []byte
		want   Reason // "" accepts
	}{
		{"valid", testSecret, good, testBody, ""},
		{"valid 5 minutes old", testSecret, signedHeader(testSecret, now-300, testBody), testBody, ""},
		{"valid 5 minutes ahead", testSecret, signedHeader(testSecret, now+300, testBody), testBody, ""},
		{"valid empty body", testSecret, signedHeader(testSecret, now, nil), nil, ""},
		{"no signature header", testSecret, with(func(h http.Header) { h.Del(HeaderSignature) }), testBody, ReasonMissing},
		{"empty signature header", testSecret, with(func(h http.Header) { h.Set(HeaderSignature, "") }), testBody, ReasonMissing},
		{"no timestamp header", testSecret, with(func(h http.Header) { h.Del(HeaderTimestamp) }), testBody, ReasonMissing},
		{"no headers", testSecret, http.Header{}, testBody, ReasonMissing},
		{"timestamp not a number", testSecret, with(func(h http.Header) { h.Set(HeaderTimestamp, "yesterday") }), testBody, ReasonMalformed},
		{"timestamp with sign", testSecret, with(func(h http.Header) { h.Set(HeaderTimestamp, "+1700000000") }), testBody, ReasonMalformed},
		{"timestamp with fraction", testSecret, with(func(h http.Header) { h.Set(HeaderTimestamp, "1700000000.5") }), testBody, ReasonMalformed},
		{"timestamp overflowing", testSecret, with(func(h http.Header) { h.Set(HeaderTimestamp, strings.Repeat("9", 40)) }), testBody, ReasonMalformed},
		{"signature without v0", testSecret, with(func(h http.Header) { h.Set(HeaderSignature, strings.TrimPrefix(h.Get(HeaderSignature), "v0=")) }), testBody, ReasonMalformed},
		{"signature v1", testSecret, with(func(h http.Header) { h.Set(HeaderSignature, "v1="+strings.TrimPrefix(h.Get(HeaderSignature), "v0=")) }), testBody, ReasonMalformed},
		{"signature uppercase hex", testSecret, with(func(h http.Header) { h.Set(HeaderSignature, "v0="+strings.ToUpper(h.Get(HeaderSignature)[3:])) }), testBody, ReasonMalformed},
		{"signature truncated", testSecret, with(func(h http.Header) { h.Set(HeaderSignature, h.Get(HeaderSignature)[:40]) }), testBody, ReasonMalformed},
		{"two signatures", testSecret, with(func(h http.Header) { h.Add(HeaderSignature, h.Get(HeaderSignature)) }), testBody, ReasonMalformed},
		{"stale", testSecret, signedHeader(testSecret, now-301, testBody), testBody, ReasonStale},
		{"future", testSecret, signedHeader(testSecret, now+301, testBody), testBody, ReasonStale},
		{"epoch zero", testSecret, signedHeader(testSecret, 0, testBody), testBody, ReasonStale},
		{"wrong secret", testSecret, signedHeader([]byte("another-secret"), now, testBody), testBody, ReasonSignature},
		{"body changed", testSecret, good, append([]byte(nil), append(testBody, '&')...), ReasonSignature},
		{"replayed with a new timestamp", testSecret, with(func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(now+1, 10)) }), testBody, ReasonSignature},
		{"secret with its newline", append(append([]byte(nil), testSecret...), '\n'), good, testBody, ReasonSignature},
		{"no secret configured", nil, good, testBody, ReasonNoSecret},
		{"empty-key signature, no secret", nil, signedHeader(nil, now, testBody), testBody, ReasonNoSecret},
	}
	sentinel := map[Reason]error{ReasonMissing: ErrMissing, ReasonMalformed: ErrMalformed, ReasonStale: ErrStale,
		ReasonSignature: ErrSignature, ReasonNoSecret: ErrNoSecret}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, testNow)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v, want nil", err)
				}
				return
			}
			if got := ReasonOf(err); got != string(tt.want) {
				t.Fatalf("Verify: %v (reason %q), want reason %q", err, got, tt.want)
			}
			if !errors.Is(err, sentinel[tt.want]) {
				t.Errorf("errors.Is(%v, Err%s) is false", err, tt.want)
			}
			for r, s := range sentinel {
				if r != tt.want && errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) is true", err, s)
				}
			}
			if strings.Contains(err.Error(), Sign(tt.secret, tt.header.Get(HeaderTimestamp), tt.body)[3:]) {
				t.Errorf("error %q reveals the expected signature", err)
			}
		})
	}
}

func TestReasonOf(t *testing.T) {
	for err, want := range map[error]string{nil: "", errors.New("x"): "other", ErrTooLarge: "too_large"} {
		if got := ReasonOf(err); got != want {
			t.Errorf("ReasonOf(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	tests := []struct {
		name, content, want string
		wantErr             bool
	}{
		{"bare", "s3cret", "s3cret", false},
		{"one newline trimmed", "s3cret\n", "s3cret", false},
		{"crlf trimmed", "s3cret\r\n", "s3cret", false},
		{"only one newline trimmed", "s3cret\n\n", "s3cret\n", false},
		{"spaces kept", " s3cret ", " s3cret ", false},
		{"empty", "", "", true},
		{"just a newline", "\n", "", true},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strconv.Itoa(i))
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSecretFile(p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ReadSecretFile: %v, want error %v", err, tt.wantErr)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if err != nil && tt.content != "" && tt.content != "\n" && strings.Contains(err.Error(), tt.content) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	if _, err := ReadSecretFile(filepath.Join(dir, "absent")); err == nil {
		t.Error("ReadSecretFile of a missing file: no error")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestReadRequest(t *testing.T) {
	big := append([]byte("payload="), []byte(strings.Repeat("a", 2000))...)
	req := func(body []byte, h http.Header, length int64) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "http://x/slack/interactions", strings.NewReader(string(body)))
		r.Header = h
		r.ContentLength = length
		return r
	}
	tests := []struct {
		name     string
		r        *http.Request
		maxBytes int64
		want     Reason
	}{
		{"valid", req(testBody, signedHeader(testSecret, testNow.Unix(), testBody), int64(len(testBody))), 1024, ""},
		{"valid at exactly the bound", req(testBody, signedHeader(testSecret, testNow.Unix(), testBody), -1), int64(len(testBody)), ""},
		{"valid default bound", req(big, signedHeader(testSecret, testNow.Unix(), big), -1), 0, ""},
		{"declared too large", req(big, signedHeader(testSecret, testNow.Unix(), big), int64(len(big))), 1024, ReasonTooLarge},
		{"chunked too large", req(big, signedHeader(testSecret, testNow.Unix(), big), -1), 1024, ReasonTooLarge},
		{"one byte over", req(testBody, signedHeader(testSecret, testNow.Unix(), testBody), -1), int64(len(testBody)) - 1, ReasonTooLarge},
		{"unsigned", req(testBody, http.Header{}, -1), 1024, ReasonMissing},
		{"wrong signature", req(testBody, signedHeader([]byte("x"), testNow.Unix(), testBody), -1), 1024, ReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := ReadRequest(tt.r, testSecret, testNow, tt.maxBytes)
			if got := ReasonOf(err); got != string(tt.want) {
				t.Fatalf("ReadRequest: %v, want reason %q", err, tt.want)
			}
			if err == nil && len(body) == 0 {
				t.Error("verified, but no body returned")
			}
			if err != nil && body != nil {
				t.Error("refused, but a body returned")
			}
		})
	}
	r := req(testBody, signedHeader(testSecret, testNow.Unix(), testBody), -1)
	r.Body = struct {
		failingReader
		closer
	}{}
	if _, err := ReadRequest(r, testSecret, testNow, 1024); ReasonOf(err) != string(ReasonRead) {
		t.Errorf("a failing body: %v, want reason read", err)
	}
	if _, err := ReadRequest(req(testBody, signedHeader(nil, testNow.Unix(), testBody), -1), nil, testNow, 1024); !errors.Is(err, ErrNoSecret) {
		t.Errorf("no secret: %v, want ErrNoSecret", err)
	}
}

type closer struct{}

func (closer) Close() error { return nil }
