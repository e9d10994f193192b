package notify

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	const token = "xoxb-secret-token"
	err := Redact(fmt.Errorf("oops %s", token), token)
	if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("Redact = %v", err)
	}
	ra := Redact(fmt.Errorf("posting: %w", &RetryAfterError{After: time.Second, Err: fmt.Errorf("x %s", token)}), token)
	if r, ok := errors.AsType[*RetryAfterError](ra); !ok || r.After != time.Second {
		t.Errorf("Redact lost the RetryAfterError: %v", ra)
	}
	if want := "posting: x <redacted> (retry after 1s)"; ra.Error() != want {
		t.Errorf("Redact(RetryAfterError) = %q, want %q", ra.Error(), want)
	}
	plain := errors.New("no secret here")
	if Redact(plain, token) != plain || Redact(nil, token) != nil || Redact(err, "") != err {
		t.Error("Redact changed an error without the secret, nil, or with no secret")
	}
}
