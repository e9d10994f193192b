package alertmanager

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/amtriage/amtriage/notify"
)

// ATTACK: Alertmanager answers 503 with Retry-After: 3600 (a proxy in front
// of it, or a maintenance page). The receiver hands the outbox a
// RetryAfterError of an hour, which the outbox honours (MaxRetryAfter is an
// hour): the next attempt, and so the give-up and the user's answer, come
// an hour after the click although GiveUpAfter is 15 minutes. The wait
// should be capped at what is left of GiveUpAfter.
func TestAttackRetryAfterOutlivesGiveUpAfter(t *testing.T) {
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer am.Close()
	r := &reports{}
	now := clock.Add(time.Minute)
	n := newNotifier(t, am.URL, r, func() time.Time { return now })
	retry, err := n.Notify(context.Background(), silenceEvent(clock))
	if !retry {
		t.Fatalf("Notify = %t, %v; want a retry", retry, err)
	}
	left := DefaultGiveUpAfter - now.Sub(clock)
	var ra *notify.RetryAfterError
	if errors.As(err, &ra) && ra.After > left {
		t.Errorf("the receiver asks the outbox to wait %s, but it gives up %s after the click (%s from now): "+
			"the user hears of the failure only after %s", ra.After, DefaultGiveUpAfter, left, ra.After+now.Sub(clock))
	}
}
