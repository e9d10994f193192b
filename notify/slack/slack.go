// Package slack is the Slack Web API receiver: one Block Kit message per
// incident, updated in place as the incident changes, with a thread reply per
// change; a dedicated channel for Sev 1 incidents, with the on-call invited,
// the runbook's "INCIDENT DECLARED" message, and an announcement in the
// incidents channel.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/incident"

	"github.com/amtriage/amtriage/internal/clip"
)

// receiverName is Name() and the key of this receiver's ReceiverState.
const receiverName = "slack"

// inviteBatch is the most users one conversations.invite call takes (the
// current spec says 100; the page prose says 1000).
const inviteBatch = 100

// maxChannelSuffix bounds the -2, -3, … attempts when a Sev 1 channel name is taken.
const maxChannelSuffix = 20

// Config configures the receiver.
type Config struct {
	APIURL           string // Web API base, ending with "/"; default https://slack.com/api/
	Token            string // bot token, xoxb-…
	Channel          string // team channel: Sev 3 and 4
	IncidentsChannel string // Sev 2, and where Sev 1 channels are announced
	// Channels, when set, gives a service's own channels (routing per
	// service profile); empty results fall back to Channel/IncidentsChannel.
	Channels    func(service string) (team, incidents string)
	OncallUsers []string
	Client      *http.Client     // default notify.NewHTTPClient(10s)
	Now         func() time.Time // default time.Now
}

// Notifier delivers incident events to Slack. It is safe for concurrent use
// on different incidents; the outbox serialises events of one incident.
type Notifier struct {
	cfg   Config
	api   *slackapi.Client
	state notify.ReceiverState
}

// State is what the receiver remembers per incident (in ReceiverState).
type State struct {
	// The incident's message, updated in place.
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	// The Sev 1 channel, once created.
	IncidentChannel     string `json:"incidentChannel,omitempty"`
	IncidentChannelName string `json:"incidentChannelName,omitempty"`
	InvitedBatches      int    `json:"invitedBatches,omitempty"`
	InviteError         string `json:"inviteError,omitempty"`
	DeclaredTS          string `json:"declaredTs,omitempty"`
	AnnouncedTS         string `json:"announcedTs,omitempty"`
	// Events whose thread reply was posted, so a redelivery does not repeat
	// it: the last maxNoted. Events of one incident are delivered in order
	// and each is acknowledged before the next, so only the latest can come
	// again (a replayed dead letter aside); the bound keeps a long incident's
	// state from growing with every status update.
	Noted []string `json:"noted,omitempty"`
}

// New builds the receiver.
func New(cfg Config, state notify.ReceiverState) (*Notifier, error) {
	if cfg.APIURL == "" {
		cfg.APIURL = "https://slack.com/api/"
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		return nil, fmt.Errorf("slack: api_url %q must end with \"/\"", cfg.APIURL)
	}
	if cfg.Token == "" {
		return nil, errors.New("slack: token is required")
	}
	if cfg.Channel == "" && cfg.IncidentsChannel == "" {
		return nil, errors.New("slack: channel or incidents_channel is required")
	}
	if cfg.Channel == "" {
		cfg.Channel = cfg.IncidentsChannel
	}
	if cfg.IncidentsChannel == "" {
		cfg.IncidentsChannel = cfg.Channel
	}
	if state == nil {
		return nil, errors.New("slack: receiver state is required")
	}
	if cfg.Client == nil {
		cfg.Client = notify.NewHTTPClient(10 * time.Second)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	api := slackapi.New(cfg.Token, slackapi.OptionAPIURL(cfg.APIURL), slackapi.OptionHTTPClient(cfg.Client))
	return &Notifier{cfg: cfg, api: api, state: state}, nil
}

// Name implements notify.Notifier.
func (n *Notifier) Name() string { return receiverName }

// Notify implements notify.Notifier. Each side effect is recorded in the
// receiver state as soon as it succeeds, so a retried or redelivered event
// continues where the last attempt stopped instead of posting again.
func (n *Notifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	var st State
	if _, err := n.state.LoadReceiverState(receiverName, ev.Incident.ID, &st); err != nil {
		return true, fmt.Errorf("slack: load state: %w", err)
	}
	inc := &ev.Incident
	now := n.cfg.Now().UTC()

	// A Sev 1 incident (opened or escalated) gets its own channel first.
	if inc.Severity == 1 && inc.Status != incident.Resolved && ev.Kind != incident.ResolvedEvent {
		if retry, err := n.declare(ctx, ev, &st, now); err != nil {
			return retry, err
		}
	}

	msg := renderMessage(ev, &st, now)
	if st.TS == "" {
		channel := n.routedChannel(inc, &st)
		id, ts, err := n.api.PostMessageContext(ctx, channel, msg...)
		if err != nil {
			return n.fail("chat.postMessage", err)
		}
		st.Channel, st.TS = id, ts
		st.Noted = appendOnce(st.Noted, eventKey(ev)) // the new message says it all
		if err := n.save(inc.ID, &st); err != nil {
			return true, err
		}
		return false, nil
	}

	if _, _, _, err := n.api.UpdateMessageContext(ctx, st.Channel, st.TS, msg...); err != nil {
		return n.fail("chat.update", err)
	}
	key := eventKey(ev)
	if ev.Kind == incident.Opened || contains(st.Noted, key) {
		return false, nil // a redelivery: the update above is all there is to do
	}
	note := changeNote(ev)
	if _, _, err := n.api.PostMessageContext(ctx, st.Channel,
		slackapi.MsgOptionText(note, false), slackapi.MsgOptionTS(st.TS)); err != nil {
		return n.fail("chat.postMessage", err)
	}
	if st.IncidentChannel != "" && st.IncidentChannel != st.Channel {
		// Keep the Sev 1 channel's responders told too.
		if _, _, err := n.api.PostMessageContext(ctx, st.IncidentChannel, slackapi.MsgOptionText(note, false)); err != nil {
			return n.fail("chat.postMessage", err)
		}
	}
	st.Noted = appendOnce(st.Noted, key)
	if err := n.save(inc.ID, &st); err != nil {
		return true, err
	}
	return false, nil
}

// routedChannel is where a new incident message goes: the Sev 1 channel, the
// incidents channel for Sev 2, the team channel for Sev 3 and 4.
func (n *Notifier) routedChannel(inc *incident.Incident, st *State) string {
	switch {
	case inc.Severity == 1 && st.IncidentChannel != "":
		return st.IncidentChannel
	case inc.Severity <= 2:
		_, incidents := n.channels(inc.Service)
		return incidents
	default:
		team, _ := n.channels(inc.Service)
		return team
	}
}

// channels are the service's team and incidents channels.
func (n *Notifier) channels(service string) (team, incidents string) {
	team, incidents = n.cfg.Channel, n.cfg.IncidentsChannel
	if n.cfg.Channels != nil {
		t, i := n.cfg.Channels(service)
		if t != "" {
			team = t
		}
		if i != "" {
			incidents = i
		}
	}
	return team, incidents
}

// declare creates the Sev 1 channel, invites the on-call, posts the runbook's
// declaration there and announces the channel in the incidents channel. Each
// step is skipped if the state says it is done.
func (n *Notifier) declare(ctx context.Context, ev *incident.Event, st *State, now time.Time) (bool, error) {
	inc := &ev.Incident
	if st.IncidentChannel == "" {
		base := notify.IncidentChannelName(inc)
		for i := 1; ; i++ {
			name := base
			if i > 1 {
				suffix := fmt.Sprintf("-%d", i)
				if len(name)+len(suffix) > 80 {
					name = name[:80-len(suffix)]
				}
				name += suffix
			}
			ch, err := n.api.CreateConversationContext(ctx, slackapi.CreateConversationParams{ChannelName: name})
			if err == nil {
				st.IncidentChannel, st.IncidentChannelName = ch.ID, name
				break
			}
			if slackCode(err) == "name_taken" && i < maxChannelSuffix {
				continue
			}
			return n.fail("conversations.create", err)
		}
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
	}
	for st.InviteError == "" && st.InvitedBatches*inviteBatch < len(n.cfg.OncallUsers) {
		lo := st.InvitedBatches * inviteBatch
		hi := min(lo+inviteBatch, len(n.cfg.OncallUsers))
		_, err := n.api.InviteUsersToConversationContext(ctx, st.IncidentChannel, n.cfg.OncallUsers[lo:hi]...)
		if err != nil {
			switch code := slackCode(err); {
			case code == "already_in_channel" || code == "cant_invite_self":
			case code != "" && !retryableCode(code):
				// A bad user ID must not keep the declaration from being posted.
				st.InviteError = code
			default:
				return n.fail("conversations.invite", err)
			}
		}
		st.InvitedBatches++
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
	}
	if st.DeclaredTS == "" {
		text := declaredText(inc, now)
		_, ts, err := n.api.PostMessageContext(ctx, st.IncidentChannel, slackapi.MsgOptionText(text, false))
		if err != nil {
			return n.fail("chat.postMessage", err)
		}
		st.DeclaredTS = ts
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
	}
	if st.AnnouncedTS == "" {
		text := fmt.Sprintf("%s *Sev 1 declared* for %s: <#%s> — %s", emoji(1), escape(inc.Service),
			st.IncidentChannel, escape(inc.Title))
		_, incidents := n.channels(inc.Service)
		_, ts, err := n.api.PostMessageContext(ctx, incidents, slackapi.MsgOptionText(clip.Runes(text, 3000), false))
		if err != nil {
			return n.fail("chat.postMessage", err)
		}
		st.AnnouncedTS = ts
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
	}
	return false, nil
}

// declaredText is the runbook's Step 1 message.
func declaredText(inc *incident.Incident, now time.Time) string {
	status := "Unknown"
	if len(inc.Reasons) > 0 {
		status = "Unknown — triage: " + clip.Runes(escape(inc.Reasons[0]), 500)
	}
	lines := []string{
		"🔴 INCIDENT DECLARED",
		"Service: " + escape(inc.Service),
		"Severity: 1 (Critical)",
		"Time Detected: " + inc.StartedAt.UTC().Format("15:04") + " UTC",
		"Current Status: " + status,
	}
	if d := inc.Diagnosis; d != nil && d.Summary != "" {
		lines = append(lines, "Diagnosis: "+clip.Runes(escape(oneLine(d.Summary)), 500))
		if d.Command != "" {
			lines = append(lines, "Roll back: `"+escape(oneLine(d.Command))+"`")
		}
	}
	lines = append(lines, "Next Update: "+now.Add(2*time.Minute).UTC().Format("15:04")+" UTC")
	return strings.Join(lines, "\n")
}

func (n *Notifier) save(id string, st *State) error {
	if err := n.state.SaveReceiverState(receiverName, id, st); err != nil {
		return fmt.Errorf("slack: save state: %w", err)
	}
	return nil
}

// fail classifies a Web API error and wraps it without the token.
func (n *Notifier) fail(method string, err error) (bool, error) {
	retry, out := classify(method, err)
	return retry, notify.Redact(out, n.cfg.Token)
}

func classify(method string, err error) (bool, error) {
	wrapped := fmt.Errorf("slack %s: %w", method, err)
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		return true, &notify.RetryAfterError{After: rl.RetryAfter, Err: wrapped}
	}
	var sc slackapi.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Code >= 500 || sc.Code == http.StatusTooManyRequests || sc.Code == http.StatusRequestTimeout, wrapped
	}
	if code := slackCode(err); code != "" {
		return retryableCode(code), wrapped
	}
	// Network errors, timeouts, unreadable responses: try again later.
	return true, wrapped
}

func slackCode(err error) string {
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

func retryableCode(code string) bool {
	switch code {
	case "ratelimited", "rate_limited", "internal_error", "service_unavailable", "request_timeout", "fatal_error":
		return true
	}
	return false
}

func eventKey(ev *incident.Event) string {
	return fmt.Sprintf("%s/%d/%d", ev.Kind, ev.At.UnixNano(), ev.Incident.Severity)
}

// maxNoted bounds State.Noted.
const maxNoted = 16

func appendOnce(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	if len(list) >= maxNoted {
		list = append(list[:0:0], list[len(list)-maxNoted+1:]...)
	}
	return append(list, s)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func emoji(l severity.Level) string {
	switch l {
	case 1:
		return "🔴"
	case 2:
		return "🟠"
	case 3:
		return "🟡"
	default:
		return "🟢"
	}
}

func sevName(l severity.Level) string {
	switch l {
	case 1:
		return "Sev 1 (Critical)"
	case 2:
		return "Sev 2 (Major)"
	case 3:
		return "Sev 3 (Minor)"
	default:
		return "Sev 4 (Low)"
	}
}
