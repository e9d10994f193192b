// Package slackin takes Slack interactions in: it verifies a request's
// signature, reads it within a size bound, decodes the block_actions payload
// into amtriage's actions, builds the buttons those actions come from, and
// answers the clicking user through response_url. (notify/slack is the other
// direction: messages out.) It performs no action itself: the caller queues
// the decoded Action for the leader.
package slackin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

// The request headers Slack signs with.
const (
	HeaderSignature = "X-Slack-Signature"
	HeaderTimestamp = "X-Slack-Request-Timestamp"
)

// MaxSkew is how far a request's timestamp may be from now, either side:
// Slack's documented replay window.
const MaxSkew = 5 * time.Minute

// Reason is why a request was refused, fit for a metric label.
type Reason string

// The reasons Verify and ReadRequest refuse a request.
const (
	ReasonMissing   Reason = "missing"   // a signing header is absent or empty
	ReasonMalformed Reason = "malformed" // a header is not in Slack's format
	ReasonStale     Reason = "stale"     // the timestamp is over MaxSkew from now, past or future
	ReasonSignature Reason = "signature" // well-formed, fresh, but not signed with our secret
	ReasonNoSecret  Reason = "no_secret" // no signing secret configured: nothing can verify
	ReasonTooLarge  Reason = "too_large" // the body is over the caller's bound
	ReasonRead      Reason = "read"      // the body could not be read
)

// VerifyError is a refused request. errors.Is matches it against the
// sentinels below by Reason.
type VerifyError struct {
	Reason Reason
	Detail string // never contains the secret or the expected signature
}

func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return "slack request refused: " + string(e.Reason)
	}
	return "slack request refused: " + string(e.Reason) + ": " + e.Detail
}

// Is reports whether target is a *VerifyError with the same Reason.
func (e *VerifyError) Is(target error) bool {
	t, ok := target.(*VerifyError)
	return ok && t.Reason == e.Reason
}

// Sentinels for errors.Is.
var (
	ErrMissing   = &VerifyError{Reason: ReasonMissing}
	ErrMalformed = &VerifyError{Reason: ReasonMalformed}
	ErrStale     = &VerifyError{Reason: ReasonStale}
	ErrSignature = &VerifyError{Reason: ReasonSignature}
	ErrNoSecret  = &VerifyError{Reason: ReasonNoSecret}
	ErrTooLarge  = &VerifyError{Reason: ReasonTooLarge}
	ErrRead      = &VerifyError{Reason: ReasonRead}
)

// ReasonOf is err's Reason as a metric label, "" for nil and "other" for an
// error that is not a *VerifyError.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return string(ve.Reason)
	}
	return "other"
}

func refuse(r Reason, format string, args ...any) error {
	return &VerifyError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Verify checks a request's signature the way Slack signs it: X-Slack-Signature
// is "v0=" and the lowercase hex HMAC-SHA256, keyed with the signing secret,
// of "v0:" + X-Slack-Request-Timestamp + ":" + the raw body; the timestamp
// (integer epoch seconds) must be within MaxSkew of now. The comparison is in
// constant time. The timestamp is signed, so a captured body replayed with a
// fresh timestamp fails as ReasonSignature and one replayed as captured fails
// as ReasonStale once the window has passed.
func Verify(secret []byte, header http.Header, body []byte, now time.Time) error {
	if len(secret) == 0 {
		return refuse(ReasonNoSecret, "no signing secret configured")
	}
	ts, err := single(header, HeaderTimestamp)
	if err != nil {
		return err
	}
	sig, err := single(header, HeaderSignature)
	if err != nil {
		return err
	}
	sec, ok := parseTimestamp(ts)
	if !ok {
		return refuse(ReasonMalformed, "%s is not integer epoch seconds", HeaderTimestamp)
	}
	if !wellFormedSignature(sig) {
		return refuse(ReasonMalformed, `%s is not "v0=" and 64 lowercase hex digits`, HeaderSignature)
	}
	// Compare in seconds: converting a huge timestamp to time.Time would overflow.
	skew := now.Unix() - sec
	limit := int64(MaxSkew / time.Second)
	switch {
	case skew > limit:
		return refuse(ReasonStale, "timestamp %ds old (limit %ds)", skew, limit)
	case skew < -limit:
		return refuse(ReasonStale, "timestamp %ds in the future (limit %ds)", -skew, limit)
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return refuse(ReasonSignature, "signature does not match")
	}
	return nil
}

// Sign is the X-Slack-Signature value for a timestamp header value and body.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v0:" + timestamp + ":"))
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// single is the one value of a header; two values are ambiguous (which one
// was signed?), so they are malformed.
func single(h http.Header, key string) (string, error) {
	vs := h.Values(key)
	switch {
	case len(vs) == 0 || (len(vs) == 1 && vs[0] == ""):
		return "", refuse(ReasonMissing, "no %s header", key)
	case len(vs) > 1:
		return "", refuse(ReasonMalformed, "%d %s headers", len(vs), key)
	}
	return vs[0], nil
}

// parseTimestamp accepts decimal digits only (no sign, no fraction, no
// spaces): that is what Slack sends, and the raw string is what was signed.
func parseTimestamp(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func wellFormedSignature(s string) bool {
	if len(s) != len("v0=")+2*sha256.Size || s[:3] != "v0=" {
		return false
	}
	for i := 3; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ReadSecretFile reads a slack.signing_secret_file: the secret's bytes with
// one trailing newline ("\n" or "\r\n", as editors and echo add) removed and
// nothing else, since every byte is part of the HMAC key. An empty secret is
// an error: HMAC with an empty key is a key anyone has. Errors name the path,
// never the content.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading slack signing secret: %w", err)
	}
	b = TrimSecret(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("slack signing secret file %s is empty", path)
	}
	return b, nil
}

// TrimSecret removes one trailing "\n" or "\r\n".
func TrimSecret(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}
