// Package pdin takes in PagerDuty webhooks v3: it verifies a delivery's
// X-PagerDuty-Signature against the configured secrets and decodes the one
// event it carries into what amtriage records (who did what to which
// PagerDuty incident, and the dedup key that names our incident). It does no
// I/O beyond reading a request body and knows nothing of our incidents.
package pdin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// SignatureHeader carries one or more comma-separated "v1=<hex>" signatures:
// HMAC-SHA256 of the raw body, one per signing secret of the subscription
// (two while a secret is being rotated).
const SignatureHeader = "X-PagerDuty-Signature"

// DefaultMaxBytes bounds a delivery's body. PagerDuty drops every webhook
// larger than 256 KB, so a larger body is not from PagerDuty.
const DefaultMaxBytes = 256 * 1024

const sigPrefix = "v1="

// Reason says why a delivery was refused; it is a metric label.
type Reason string

// Reasons Verify and ReadRequest report.
const (
	ReasonNoSecret  Reason = "no_secret"         // no usable (non-empty) secret configured
	ReasonMissing   Reason = "missing_signature" // header absent or blank
	ReasonMalformed Reason = "malformed_signature"
	ReasonMismatch  Reason = "bad_signature" // well-formed, but no secret produced it
	ReasonTooLarge  Reason = "body_too_large"
	ReasonRead      Reason = "read_error"
)

// ErrUnverified matches (errors.Is) every *VerifyError.
var ErrUnverified = errors.New("pagerduty webhook not verified")

// VerifyError is a refused delivery. The daemon answers it with a 4xx (not
// 5xx or 429): PagerDuty retries only those, and a forged request should
// not be retried.
type VerifyError struct {
	Reason Reason
	Err    error // underlying cause, if any
}

func (e *VerifyError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pagerduty webhook: %s: %v", e.Reason, e.Err)
	}
	return "pagerduty webhook: " + string(e.Reason)
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnverified) true for every VerifyError.
func (e *VerifyError) Is(target error) bool { return target == ErrUnverified }

// ReasonOf returns the refusal reason of err, or "" if err is not a
// VerifyError.
func ReasonOf(err error) Reason {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

// Verify checks that at least one v1 signature in header is the HMAC-SHA256
// of body under at least one of secrets. Entries of other versions are
// ignored (PagerDuty may add versions); a v1 entry that is not 64 hex digits
// is ignored too, and a header with no usable v1 entry is malformed. Empty
// secrets are skipped: an empty key would make signatures forgeable.
func Verify(secrets [][]byte, header http.Header, body []byte) error {
	var keys [][]byte
	for _, s := range secrets {
		if len(s) > 0 {
			keys = append(keys, s)
		}
	}
	if len(keys) == 0 {
		return &VerifyError{Reason: ReasonNoSecret}
	}
	values := header.Values(SignatureHeader)
	if strings.TrimSpace(strings.Join(values, "")) == "" {
		return &VerifyError{Reason: ReasonMissing}
	}
	sigs := parseSignatures(values)
	if len(sigs) == 0 {
		return &VerifyError{Reason: ReasonMalformed}
	}
	for _, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write(body)
		want := mac.Sum(nil)
		for _, s := range sigs {
			if hmac.Equal(want, s) { // constant time
				return nil
			}
		}
	}
	return &VerifyError{Reason: ReasonMismatch}
}

// parseSignatures returns the decoded v1 signatures of the header values
// (normally one value; several header lines are read as one list).
func parseSignatures(values []string) [][]byte {
	var out [][]byte
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			hexSig, ok := strings.CutPrefix(part, sigPrefix)
			if !ok || len(hexSig) != 2*sha256.Size {
				continue
			}
			b, err := hex.DecodeString(hexSig)
			if err != nil {
				continue
			}
			out = append(out, b)
		}
	}
	return out
}

// ReadRequest reads r's body (at most maxBytes; DefaultMaxBytes if
// maxBytes <= 0) and verifies it. A request without a signature is refused
// before its body is read. It returns the raw body, which is what
// DecodeEvent takes.
func ReadRequest(r *http.Request, secrets [][]byte, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if strings.TrimSpace(strings.Join(r.Header.Values(SignatureHeader), "")) == "" {
		return nil, &VerifyError{Reason: ReasonMissing}
	}
	if r.Body == nil {
		return nil, &VerifyError{Reason: ReasonRead, Err: errors.New("no body")}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return nil, &VerifyError{Reason: ReasonRead, Err: fmt.Errorf("read body: %w", err)}
	}
	if int64(len(body)) > maxBytes {
		return nil, &VerifyError{Reason: ReasonTooLarge, Err: fmt.Errorf("body over %d bytes", maxBytes)}
	}
	if err := Verify(secrets, r.Header, body); err != nil {
		return nil, err
	}
	return body, nil
}
