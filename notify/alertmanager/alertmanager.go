// Package alertmanager is the action receiver for Slack's Silence and
// Unsilence buttons: it makes and expires the incident's silence through
// Alertmanager's API v2 and reports the outcome back through the inbox
// (Config.Report), where the pipeline puts it on the incident.
//
// Idempotency. The outbox may deliver a request again (a lost answer, a
// crash, a failed Report). A silence is made with silence.Client.Ensure,
// which first looks for a live amtriage silence carrying the incident's
// marker, so a redelivery reports the silence already made instead of
// making a second one; expiring an expired or unknown silence succeeds.
// The outcome's key is derived from the request's, so a result reported
// twice is applied once.
package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/amtriage/amtriage/actions"
	"github.com/amtriage/amtriage/actions/silence"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"

	"github.com/amtriage/amtriage/internal/clip"
)

// receiverName is Name().
const receiverName = "alertmanager"

// DefaultGiveUpAfter bounds how long a request keeps being retried while
// Alertmanager is unreachable or failing: the incident's silence stays
// "being made" meanwhile, and a silence made an hour after the click would
// surprise more than a refusal that says why.
const DefaultGiveUpAfter = 15 * time.Minute

// maxTitleBytes bounds the incident title quoted in a silence's comment.
const maxTitleBytes = 200

// Config configures the receiver.
type Config struct {
	// Client is the Alertmanager the silences are made in. Required.
	Client *silence.Client
	// Report appends an outcome to the inbox (the daemon's AppendAction).
	// Required.
	Report func(context.Context, *actions.Action) error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives what was done (default: discarded).
	Log *slog.Logger
	// GiveUpAfter: a request whose Alertmanager calls still fail with a
	// retryable error this long after it was made is reported failed
	// (default DefaultGiveUpAfter).
	GiveUpAfter time.Duration
}

// Notifier makes and expires silences for SilenceRequested and
// UnsilenceRequested events. Safe for concurrent use.
type Notifier struct {
	cfg Config
}

// New checks cfg and returns the receiver.
func New(cfg Config) (*Notifier, error) {
	if cfg.Client == nil {
		return nil, errors.New("alertmanager receiver: a silence client is required")
	}
	if cfg.Report == nil {
		return nil, errors.New("alertmanager receiver: Report is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	return &Notifier{cfg: cfg}, nil
}

// Name implements notify.Notifier.
func (n *Notifier) Name() string { return receiverName }

// Takes implements notify.EventFilter: the silence requests only.
func (n *Notifier) Takes(kind incident.EventKind) bool {
	return kind == incident.SilenceRequested || kind == incident.UnsilenceRequested
}

// Notify implements notify.Notifier. Alertmanager's retryable failures
// (5xx, 429, network) are retried by the outbox until GiveUpAfter; the
// others, and a request that cannot be met (no alerts, matchers that would
// mute more than the incident), are reported as the outcome's Error, which
// the pipeline tells the user. A failed Report is retried.
func (n *Notifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	if !n.Takes(ev.Kind) {
		return false, notify.ErrSkipped
	}
	if ev.Act == nil || ev.Act.Key == "" {
		// Nothing to report the outcome against: a bug, never retried.
		return false, fmt.Errorf("alertmanager: %s event for incident %s carries no request", ev.Kind, ev.Incident.ID)
	}
	var out *actions.Outcome
	var err error
	if ev.Kind == incident.SilenceRequested {
		out, err = n.silence(ctx, ev)
	} else {
		out, err = n.unsilence(ctx, ev)
	}
	if err != nil {
		if retryable(err) {
			if n.cfg.Now().Sub(ev.At) < n.cfg.GiveUpAfter {
				var se *silence.Error
				if errors.As(err, &se) && se.RetryAfter > 0 {
					// Never past the give-up: the user hears of the failure then.
					left := n.cfg.GiveUpAfter - n.cfg.Now().Sub(ev.At)
					return true, &notify.RetryAfterError{After: min(se.RetryAfter, left), Err: err}
				}
				return true, err
			}
			err = fmt.Errorf("given up %s after the request: %w", n.cfg.GiveUpAfter, err)
		}
		out.Error = err.Error()
		n.cfg.Log.Warn("silence request failed", "incident", ev.Incident.ID, "event", ev.Kind, "key", ev.Act.Key, "err", err)
	}
	if err := n.report(ctx, ev, out); err != nil {
		return true, err
	}
	return false, nil
}

// silence makes (or finds) the incident's silence. It always returns the
// outcome to fill; err says why it failed.
func (n *Notifier) silence(ctx context.Context, ev *incident.Event) (*actions.Outcome, error) {
	out := &actions.Outcome{For: actions.Silence, RequestKey: ev.Act.Key}
	id := ev.Incident.ID
	if len(ev.Alerts) == 0 {
		return out, errors.New("no alerts to silence")
	}
	if ev.Act.SilenceFor <= 0 {
		return out, fmt.Errorf("the request asks for a silence of %s", ev.Act.SilenceFor)
	}
	var matchers []silence.Matcher
	var err error
	if ev.Act.Labels != nil { // all the incident's alerts, not only the event's
		matchers, err = silence.MatchersForCommon(ev.Act.Labels, ev.Act.Varying)
	} else {
		labels := make([]map[string]string, len(ev.Alerts))
		for i, a := range ev.Alerts {
			labels[i] = a.Labels
		}
		matchers, err = silence.MatchersFor(labels)
	}
	if err != nil {
		return out, fmt.Errorf("cannot silence incident %s: %w", id, err)
	}
	// Alertmanager's UI shows the comment as text: the user's name reads
	// better than a mention, which is kept to find them in Slack.
	by := ev.Act.By
	switch {
	case by == "" && ev.Act.ByName == "":
		by = "someone"
	case by == "":
		by = ev.Act.ByName
	case ev.Act.ByName != "":
		by = ev.Act.ByName + " (" + by + ")"
	}
	marker := silence.Marker(id)
	now := n.cfg.Now()
	s := silence.Silence{
		Matchers: matchers, StartsAt: now, EndsAt: now.Add(ev.Act.SilenceFor), CreatedBy: silence.CreatedBy,
		Comment: fmt.Sprintf("Silenced from Slack by %s for incident %s: %s %s", by, id, clip.Bytes(ev.Incident.Title, maxTitleBytes), marker),
	}
	c := n.cfg.Client
	sid, created, err := c.Ensure(ctx, s, marker)
	if err != nil {
		return out, fmt.Errorf("making the silence: %w", err)
	}
	until := s.EndsAt
	if !created {
		// A redelivery, or a silence made for the incident before: its
		// end is Alertmanager's, not ours.
		found, err := c.Get(ctx, sid)
		switch {
		case errors.Is(err, silence.ErrNotFound):
			return out, &retryLater{fmt.Errorf("silence %s vanished as it was found: %w", sid, err)}
		case err != nil:
			return out, fmt.Errorf("reading silence %s: %w", sid, err)
		}
		until = found.EndsAt
	}
	out.SilenceID, out.SilenceURL, out.Until = sid, c.SilenceURL(sid), until.UTC()
	n.cfg.Log.Info("silence made", "incident", id, "silence", sid, "created", created, "until", out.Until, "by", by)
	return out, nil
}

// unsilence expires the incident's silence; one already gone is done.
func (n *Notifier) unsilence(ctx context.Context, ev *incident.Event) (*actions.Outcome, error) {
	sid := ev.Act.SilenceID
	out := &actions.Outcome{For: actions.Unsilence, RequestKey: ev.Act.Key, SilenceID: sid}
	if sid == "" {
		return out, errors.New("no silence to expire")
	}
	if err := n.cfg.Client.Expire(ctx, sid); err != nil && !errors.Is(err, silence.ErrNotFound) {
		return out, fmt.Errorf("expiring silence %s: %w", sid, err)
	}
	n.cfg.Log.Info("silence expired", "incident", ev.Incident.ID, "silence", sid, "by", ev.Act.By)
	return out, nil
}

// report appends the outcome to the inbox, as the result of the request.
func (n *Notifier) report(ctx context.Context, ev *incident.Event, out *actions.Outcome) error {
	out.Error = clip.Bytes(out.Error, actions.MaxFieldBytes)
	out.RequestKey = clip.Bytes(out.RequestKey, actions.MaxFieldBytes)
	out.SilenceID = clip.Bytes(out.SilenceID, actions.MaxFieldBytes)
	if len(out.SilenceURL) > actions.MaxFieldBytes {
		out.SilenceURL = "" // a cut link leads nowhere
	}
	a := &actions.Action{
		Key: actions.ResultKey(ev.Act.Key), Kind: actions.Result, At: n.cfg.Now().UTC(),
		By: actions.Actor{Source: "amtriage"}, Incident: ev.Incident.ID, Outcome: out,
	}
	if len(ev.Act.ResponseURL) <= actions.MaxFieldBytes {
		a.ResponseURL = ev.Act.ResponseURL
	}
	if err := n.cfg.Report(ctx, a); err != nil {
		return fmt.Errorf("alertmanager: reporting the %s outcome for incident %s: %w", out.For, ev.Incident.ID, err)
	}
	return nil
}

// retryLater is a failure worth another attempt that is not a client error.
type retryLater struct{ err error }

func (e *retryLater) Error() string { return e.err.Error() }
func (e *retryLater) Unwrap() error { return e.err }

func retryable(err error) bool {
	var rl *retryLater
	return silence.Retryable(err) || errors.As(err, &rl)
}
