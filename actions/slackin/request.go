package slackin

import (
	"io"
	"net/http"
	"time"
)

// DefaultMaxBytes bounds an interaction request's body. A block_actions
// payload carries the whole message it came from (up to 50 blocks), which is
// tens of kilobytes at most; 256 KiB leaves room and still refuses a flood.
const DefaultMaxBytes = 256 << 10

// ReadRequest reads r's body, at most maxBytes (DefaultMaxBytes when <= 0),
// and verifies it with Verify, returning the raw body only when it verified:
// a caller never parses what Slack did not sign. A larger body is refused
// with ErrTooLarge without reading it all.
func ReadRequest(r *http.Request, secret []byte, now time.Time, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(secret) == 0 {
		return nil, refuse(ReasonNoSecret, "no signing secret configured")
	}
	if r.ContentLength > maxBytes {
		return nil, refuse(ReasonTooLarge, "body of %d bytes is over %d", r.ContentLength, maxBytes)
	}
	if r.Body == nil {
		return nil, refuse(ReasonRead, "no body")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return nil, refuse(ReasonRead, "reading body: %v", err)
	}
	if int64(len(body)) > maxBytes {
		return nil, refuse(ReasonTooLarge, "body is over %d bytes", maxBytes)
	}
	if err := Verify(secret, r.Header, body, now); err != nil {
		return nil, err
	}
	return body, nil
}
