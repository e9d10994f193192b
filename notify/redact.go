package notify

import "strings"

// Redact returns err with its text free of secret (a receiver's token),
// whichever layer put it there. It still wraps err, so the outbox finds
// what it needs inside (a RetryAfterError's wait, a hold).
func Redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "<redacted>"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
