package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// RetryAfterError is a retryable failure for which the receiver said how long
// to wait (HTTP 429 or 503 with Retry-After). The outbox waits at least that,
// up to its MaxRetryAfter.
type RetryAfterError struct {
	After time.Duration
	// Method, when set, says the wait is a rate limit on that API method of
	// the receiver (PagerDuty's "enqueue", Slack's "chat.postMessage"), not
	// on this event alone: the outbox holds back every envelope that calls
	// it until the wait is over, instead of letting them draw 429s of their
	// own and come due together.
	Method string
	Err    error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// NewHTTPClient is the client for receivers whose requests are not
// idempotent (a Slack post, a Grafana annotation): go-retryablehttp retries
// within one delivery attempt only when the request cannot have reached the
// server (the connection was refused); anything else — a 5xx, a timeout, a
// 429 — goes back to the outbox, which decides with its own backoff and the
// receiver's Retry-After. Re-sending a post whose answer was lost would
// duplicate the message.
func NewHTTPClient(timeout time.Duration) *http.Client {
	return newClient(timeout, func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		var op *net.OpError
		return resp == nil && errors.As(err, &op) && op.Op == "dial", nil
	})
}

// NewIdempotentHTTPClient is for receivers whose requests may be repeated
// safely (PagerDuty events carry a dedup key): connection errors and 5xx are
// retried twice within an attempt, never a 429 or a 5xx with Retry-After,
// which the outbox waits out.
func NewIdempotentHTTPClient(timeout time.Duration) *http.Client {
	return newClient(timeout, func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "") {
			return false, nil
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	})
}

func newClient(timeout time.Duration, check retryablehttp.CheckRetry) *http.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 2
	c.RetryWaitMin = 200 * time.Millisecond
	c.RetryWaitMax = 2 * time.Second
	c.Backoff = retryablehttp.LinearJitterBackoff // ignores Retry-After: that is the outbox's to honour
	c.Logger = nil                                // requests may carry credentials in headers; never log them
	c.HTTPClient.Timeout = timeout
	// Return the last response instead of an error so callers can read its
	// status and Retry-After.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.CheckRetry = check
	return c.StandardClient()
}

// RetryAfter parses a Retry-After header in seconds (the form Slack and
// PagerDuty send), or returns def.
func RetryAfter(h http.Header, def time.Duration) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		var secs int
		if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && secs >= 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := time.Until(t); d > 0 {
				return d
			}
		}
	}
	return def
}
