package notify

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// RetryAfterError is a retryable failure for which the receiver said how long
// to wait (HTTP 429 or 503 with Retry-After). The outbox waits at least that.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// NewHTTPClient is the client every receiver uses: go-retryablehttp retries
// connection errors and 5xx a couple of times within one delivery attempt,
// honouring Retry-After; the outbox retries beyond that with its own backoff.
func NewHTTPClient(timeout time.Duration) *http.Client {
	c := retryablehttp.NewClient()
	c.RetryMax = 2
	c.RetryWaitMin = 200 * time.Millisecond
	c.RetryWaitMax = 2 * time.Second
	c.Logger = nil // requests may carry credentials in headers; never log them
	c.HTTPClient.Timeout = timeout
	// Return the last response instead of an error so callers can read its
	// status and Retry-After.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	// A 429 is the outbox's to wait out (Retry-After may be minutes).
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			return false, nil
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
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
