package slackin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	fake "github.com/amtriage/amtriage/internal/fakes/slack"
)

// receiver is an interactivity endpoint as the daemon will have it:
// ReadRequest, then DecodeInteraction; 401 when refused.
type receiver struct {
	srv    *httptest.Server
	secret []byte
	mu     sync.Mutex
	got    []Interaction
	errs   []error
}

func newReceiver(t *testing.T, secret []byte) *receiver {
	rc := &receiver{secret: secret}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := ReadRequest(r, rc.secret, time.Now(), 0)
		if err != nil {
			rc.mu.Lock()
			rc.errs = append(rc.errs, err)
			rc.mu.Unlock()
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		in, err := DecodeInteraction(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, in)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) last() (Interaction, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var in Interaction
	var err error
	if len(rc.got) > 0 {
		in = rc.got[len(rc.got)-1]
	}
	if len(rc.errs) > 0 {
		err = rc.errs[len(rc.errs)-1]
	}
	return in, err
}

func TestFakeSignedInteractions(t *testing.T) {
	ctx := context.Background()
	f := fake.New("xoxb-t")
	defer f.Close()
	rc := newReceiver(t, f.SigningSecret())
	value, _ := EncodeValue(ActAck, Value{Incident: "checkout-3f2a9c01b7de"})
	p := fake.InteractionPayload{UserID: "U0JANE", UserName: "jane", MessageTS: "1700000000.000100",
		ActionID: string(ActAck), Value: value, BlockID: BlockIDPrefix + "checkout-3f2a9c01b7de"}

	valid, err := f.SendInteraction(ctx, rc.srv.URL, p)
	if err != nil || valid.Status != http.StatusOK {
		t.Fatalf("valid interaction: %v, HTTP %d %s", err, valid.Status, valid.Response)
	}
	in, _ := rc.last()
	if in.UserID != "U0JANE" || in.UserName != "jane" || in.TeamID != fake.TeamID || in.ChannelID != "CALERTS" ||
		len(in.Actions) != 1 || in.Actions[0].ID != ActAck || in.Actions[0].Value.Incident != "checkout-3f2a9c01b7de" ||
		!strings.HasPrefix(in.ResponseURL, strings.TrimSuffix(f.URL, "/")+"/actions/") || in.TriggerID == "" {
		t.Fatalf("decoded %+v", in)
	}

	tests := []struct {
		name string
		send func() (fake.Sent, error)
		want Reason
	}{
		{"wrong secret", func() (fake.Sent, error) { return f.SendInteractionTampered(ctx, rc.srv.URL, p, fake.WrongSecret) }, ReasonSignature},
		{"stale timestamp", func() (fake.Sent, error) { return f.SendInteractionTampered(ctx, rc.srv.URL, p, fake.StaleTimestamp) }, ReasonStale},
		{"future timestamp", func() (fake.Sent, error) { return f.SendInteractionTampered(ctx, rc.srv.URL, p, fake.FutureTimestamp) }, ReasonStale},
		{"missing signature", func() (fake.Sent, error) { return f.SendInteractionTampered(ctx, rc.srv.URL, p, fake.MissingSignature) }, ReasonMissing},
		{"missing timestamp", func() (fake.Sent, error) { return f.SendInteractionTampered(ctx, rc.srv.URL, p, fake.MissingTimestamp) }, ReasonMissing},
		{"tampered body", func() (fake.Sent, error) { return f.SendInteractionTampered(ctx, rc.srv.URL, p, fake.TamperedBody) }, ReasonSignature},
		{"replay with a new timestamp", func() (fake.Sent, error) { return f.Replay(ctx, rc.srv.URL, valid) }, ReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent, err := tt.send()
			if err != nil {
				t.Fatal(err)
			}
			_, rerr := rc.last()
			if sent.Status != http.StatusUnauthorized || ReasonOf(rerr) != string(tt.want) {
				t.Fatalf("HTTP %d, refused %v; want 401 for %s", sent.Status, rerr, tt.want)
			}
		})
	}

	// A redelivery verifies and carries the same click key; the exact replay too, within the window.
	for name, send := range map[string]func() (fake.Sent, error){
		"resend":       func() (fake.Sent, error) { return f.Resend(ctx, rc.srv.URL, valid) },
		"replay exact": func() (fake.Sent, error) { return f.ReplayExact(ctx, rc.srv.URL, valid) },
	} {
		sent, err := send()
		if err != nil || sent.Status != http.StatusOK {
			t.Fatalf("%s: %v HTTP %d", name, err, sent.Status)
		}
		again, _ := rc.last()
		if again.Key(again.Actions[0]) != in.Key(in.Actions[0]) {
			t.Errorf("%s: key %q, want %q", name, again.Key(again.Actions[0]), in.Key(in.Actions[0]))
		}
	}
	rc.mu.Lock()
	n := len(rc.got)
	rc.mu.Unlock()
	if n != 3 {
		t.Errorf("%d interactions accepted, want 3 (the valid one and its two redeliveries)", n)
	}
}

// TestFakeClickPostedButtons posts Buttons through chat.postMessage (the
// fake checks Block Kit's limits) and clicks each as a user would.
func TestFakeClickPostedButtons(t *testing.T) {
	ctx := context.Background()
	f := fake.New("xoxb-t")
	defer f.Close()
	rc := newReceiver(t, f.SigningSecret())
	api := slackapi.New("xoxb-t", slackapi.OptionAPIURL(f.URL))
	const id = "checkout-3f2a9c01b7de"
	rb := &Rollback{Namespace: "shop", Deployment: "checkout", From: 5, To: 4}
	_, ts, err := api.PostMessageContext(ctx, "CALERTS", slackapi.MsgOptionText("Sev 2: checkout", false),
		slackapi.MsgOptionBlocks(Buttons(id, ButtonOptions{Rollback: rb})...))
	if err != nil {
		t.Fatalf("posting the buttons: %v", err)
	}
	for _, act := range []ActionID{ActAck, ActSilence1h, ActSilence4h, ActResolve, ActRollback} {
		sent, err := f.ClickButton(ctx, rc.srv.URL, fake.Click{Channel: "alerts", TS: ts, ActionID: string(act), UserID: "U0SAM", UserName: "sam"})
		if err != nil || sent.Status != http.StatusOK {
			t.Fatalf("click %s: %v HTTP %d %s", act, err, sent.Status, sent.Response)
		}
		in, _ := rc.last()
		a := in.Actions[0]
		if a.ID != act || a.Value.Incident != id || in.MessageTS != ts || in.UserID != "U0SAM" {
			t.Errorf("click %s decoded %+v %+v", act, in, a)
		}
		if act == ActRollback && (a.Value.Rollback == nil || *a.Value.Rollback != *rb) {
			t.Errorf("rollback target %+v", a.Value.Rollback)
		}
	}
	for _, act := range []ActionID{ActResolve, ActRollback} {
		if _, err := f.ClickButton(ctx, rc.srv.URL, fake.Click{Channel: "alerts", TS: ts, ActionID: string(act), UserID: "U0SAM", Deny: true}); !errors.Is(err, fake.ErrDenied) {
			t.Errorf("denied %s: %v, want ErrDenied", act, err)
		}
	}
	if _, err := f.ClickButton(ctx, rc.srv.URL, fake.Click{Channel: "alerts", TS: ts, ActionID: string(ActUnsilence)}); !errors.Is(err, fake.ErrNoButton) {
		t.Errorf("a button not on the message: %v, want ErrNoButton", err)
	}
}
