// Package slack is the Slack Web API receiver: one Block Kit message per
// incident, updated in place as the incident changes, with a thread reply per
// change; a dedicated channel for Sev 1 incidents, with the on-call invited,
// the runbook's "INCIDENT DECLARED" message, and an announcement in the
// incidents channel.
package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/notify"
	"github.com/amtriage/amtriage/severity"

	"github.com/amtriage/amtriage/internal/clip"
)

// receiverName is Name() and the key of this receiver's ReceiverState.
const receiverName = "slack"

// inviteBatch is the most users one conversations.invite call takes (the
// current spec says 100; the page prose says 1000).
const inviteBatch = 100

// maxNameTries bounds the conversations.create calls one declaration makes
// when Sev 1 channel names are taken; the suffix to start from is remembered
// per base name, so the n-th Sev 1 of a service in a day costs one call, not n.
const maxNameTries = 5

// metadataType is the event_type of the metadata on every message the
// receiver posts; its payload names the incident and the post, so a post
// whose answer was lost can be found in the channel instead of repeated.
const metadataType = "amtriage_incident"

// lookupWindow is how far before an uncertain post the channel history is
// searched for it (clock skew, delay); lookupPages bounds the pages read,
// and listPages those of conversations.list when finding a channel by name.
const (
	lookupWindow = 10 * time.Minute
	lookupPages  = 3
	listPages    = 10
)

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

	// EvidenceURL, if set, is where a Sev 1–2 incident's evidence is
	// served (external_url + /api/incidents/{id}/evidence): the message
	// links it. It is gathered seconds after the page.
	EvidenceURL func(incidentID string) string

	// RollbackEnabled (actions.rollback.enabled) adds Roll back to the
	// buttons of an incident whose diagnosis offers one.
	RollbackEnabled bool
	// ReplyClient posts the ephemeral answers to response_urls (default
	// Client); ReplyOptions adjust them (tests: slackin.AllowOrigin).
	ReplyClient  *http.Client
	ReplyOptions []slackin.ReplyOption
	// Log gets what is dropped rather than retried (default slog.Default()).
	Log *slog.Logger
}

// Notifier delivers incident events to Slack. It is safe for concurrent use
// on different incidents; the outbox serialises events of one incident.
type Notifier struct {
	cfg   Config
	api   *slackapi.Client
	state notify.ReceiverState

	mu    sync.Mutex
	ids   map[string]string // configured channel name → ID, from answers
	names sync.Mutex        // serialises the remembered name suffixes
	// claimed is the highest suffix per base name handed out by this
	// process (see claimSuffix); guarded by names. It only grows within a
	// day's base name, and old days' entries are dropped with the state's.
	claimed map[string]int
}

// State is what the receiver remembers per incident (in ReceiverState).
type State struct {
	// The incident's message, updated in place.
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	// Route is the channel the message was posted to as routing names it
	// (a configured channel, or the Sev 1 channel's ID) and Level the
	// severity it was posted at: an escalation routed elsewhere moves it.
	Route string         `json:"route,omitempty"`
	Level severity.Level `json:"level,omitempty"`
	// Gen counts the incident messages posted (moves, reposts); the next
	// one's metadata key is "message/<Gen+1>".
	Gen int `json:"gen,omitempty"`
	// MovedFrom is a message still to be pointed at its successor.
	MovedFrom *MessageRef `json:"movedFrom,omitempty"`
	// evidence is the evidence link the message shows, rollbackEnabled
	// whether its buttons may offer Roll back (not stored).
	evidence        string
	rollbackEnabled bool
	// Fallback says why there is no Sev 1 channel (it could not be created
	// or joined): the declaration went to the incidents channel instead.
	Fallback string `json:"fallback,omitempty"`
	// CreateFailures counts channel creations that failed in a way worth
	// retrying (rate limits, 5xx, timeouts); after maxCreateFailures the
	// declaration falls back too, rather than wait hours for the channel.
	CreateFailures int `json:"createFailures,omitempty"`
	// Pending is a post or channel creation whose outcome is not recorded
	// (its answer was lost, or the process died): it is looked up before
	// it is repeated.
	Pending *Pending `json:"pending,omitempty"`
	// The Sev 1 channel, once created.
	IncidentChannel     string `json:"incidentChannel,omitempty"`
	IncidentChannelName string `json:"incidentChannelName,omitempty"`
	InvitedBatches      int    `json:"invitedBatches,omitempty"`
	InviteError         string `json:"inviteError,omitempty"`
	DeclaredTS          string `json:"declaredTs,omitempty"`
	// DeclaredText is the declaration as posted: its buttons are redrawn
	// under it when responders act.
	DeclaredText string `json:"declaredText,omitempty"`
	AnnouncedTS  string `json:"announcedTs,omitempty"`
	// Events whose thread reply was posted, so a redelivery does not repeat
	// it: the last maxNoted. Events of one incident are delivered in order
	// and each is acknowledged before the next, so only the latest can come
	// again (a replayed dead letter aside); the bound keeps a long incident's
	// state from growing with every status update.
	Noted []string `json:"noted,omitempty"`
	// Answered are the refusals answered to their user (by act key).
	Answered []string `json:"answered,omitempty"`
}

// MessageRef is a posted message.
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Pending is a side effect attempted but not recorded.
type Pending struct {
	Key     string    `json:"key"`               // metadata key, or "create:<name>"
	Channel string    `json:"channel,omitempty"` // where it was posted (as given)
	Thread  string    `json:"thread,omitempty"`  // parent ts of a thread reply
	At      time.Time `json:"at"`
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
	if cfg.ReplyClient == nil {
		cfg.ReplyClient = cfg.Client
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	api := slackapi.New(cfg.Token, slackapi.OptionAPIURL(cfg.APIURL), slackapi.OptionHTTPClient(cfg.Client))
	return &Notifier{cfg: cfg, api: api, state: state, ids: map[string]string{}}, nil
}

// Name implements notify.Notifier.
func (n *Notifier) Name() string { return receiverName }

// Notify implements notify.Notifier. Each side effect is recorded in the
// receiver state as soon as it succeeds, and marked as pending just before it
// is attempted, so a retried or redelivered event continues where the last
// attempt stopped: a post whose outcome was never recorded is looked up in
// Slack (by its metadata) before it is made again.
func (n *Notifier) Notify(ctx context.Context, ev *incident.Event) (bool, error) {
	if ev.Kind == incident.ActionRefused {
		// For the user who clicked alone: the message stays as it is.
		return n.answerRefusal(ctx, ev)
	}
	var st State
	if _, err := n.state.LoadReceiverState(receiverName, ev.Incident.ID, &st); err != nil {
		return true, fmt.Errorf("slack: load state: %w", err)
	}
	inc := &ev.Incident
	now := n.cfg.Now().UTC()
	if n.cfg.EvidenceURL != nil && inc.PeakSeverity >= 1 && inc.PeakSeverity <= 2 {
		st.evidence = n.cfg.EvidenceURL(inc.ID)
	}
	st.rollbackEnabled = n.cfg.RollbackEnabled

	// A Sev 1 incident (opened or escalated) gets its own channel first.
	if inc.Severity == 1 && inc.Status != incident.Resolved && ev.Kind != incident.ResolvedEvent {
		if retry, err := n.declare(ctx, ev, &st, now); err != nil {
			return retry, err
		}
	}

	if st.TS != "" && st.MovedFrom != nil {
		// The last attempt moved the message but did not point the old one
		// at it.
		if retry, err := n.finishMove(ctx, ev, &st, now); err != nil {
			return retry, err
		}
	}
	key := eventKey(ev)
	want := n.routedChannel(inc, &st)
	switch {
	case st.TS == "":
		return n.postIncident(ctx, ev, &st, want, now, false)
	case n.moves(ev, &st, want):
		// An escalation posts where the new severity belongs; the old
		// message then says where it went.
		if retry, err := n.postIncident(ctx, ev, &st, want, now, true); err != nil {
			return retry, err
		}
		return n.finishMove(ctx, ev, &st, now)
	}

	if _, _, _, err := n.api.UpdateMessageContext(ctx, st.Channel, st.TS, renderMessage(ev, &st, now)...); err != nil {
		if gone(slackCode(err)) {
			// Deleted, archived or no longer editable: start a new message.
			return n.postIncident(ctx, ev, &st, want, now, false)
		}
		return n.fail("chat.update", err)
	}
	if retry, err := n.redrawDeclaration(ctx, ev, &st, now); err != nil {
		return retry, err
	}
	if ev.Kind == incident.Opened || contains(st.Noted, key) {
		return false, nil // a redelivery: the update above is all there is to do
	}
	note := changeNote(ev)
	if !contains(st.Noted, key+"#thread") {
		if _, _, err := n.postOnce(ctx, inc.ID, &st, "reply/"+key, st.Channel, st.TS, now,
			slackapi.MsgOptionText(note, false)); err != nil && !gone(slackCode(err)) {
			return n.fail("chat.postMessage", err)
		}
		st.Noted = appendOnce(st.Noted, key+"#thread")
		if err := n.save(inc.ID, &st); err != nil {
			return true, err
		}
	}
	if st.IncidentChannel != "" && st.IncidentChannel != st.Channel {
		// Keep the Sev 1 channel's responders told too (unless it is gone).
		if _, _, err := n.postOnce(ctx, inc.ID, &st, "note/"+key, st.IncidentChannel, "", now,
			slackapi.MsgOptionText(note, false)); err != nil && !gone(slackCode(err)) {
			return n.fail("chat.postMessage", err)
		}
	}
	st.Noted = appendOnce(st.Noted, key)
	if err := n.save(inc.ID, &st); err != nil {
		return true, err
	}
	return false, nil
}

// moves reports whether the event escalates the incident to a severity
// routed to another channel than the message's.
func (n *Notifier) moves(ev *incident.Event, st *State, want string) bool {
	return ev.Kind != incident.ResolvedEvent && st.Route != "" && st.Level != 0 &&
		ev.Incident.Severity < st.Level && want != st.Route
}

// postIncident posts a new incident message to channel (to the incidents
// channel if that one is gone) and makes it the one later events update;
// with move, the old one is remembered to be pointed at it.
func (n *Notifier) postIncident(ctx context.Context, ev *incident.Event, st *State, channel string, now time.Time, move bool) (bool, error) {
	inc := &ev.Incident
	key := fmt.Sprintf("message/%d", st.Gen+1)
	view := *st
	view.Channel = channel // the message's own channel links no incident channel
	id, ts, err := n.postOnce(ctx, inc.ID, st, key, channel, "", now, renderMessage(ev, &view, now)...)
	if _, incidents := n.channels(inc.Service); err != nil && gone(slackCode(err)) && channel != incidents {
		channel = incidents
		id, ts, err = n.postOnce(ctx, inc.ID, st, key, channel, "", now, renderMessage(ev, &view, now)...)
	}
	if err != nil {
		return n.fail("chat.postMessage", err)
	}
	if move {
		st.MovedFrom = &MessageRef{Channel: st.Channel, TS: st.TS}
	}
	st.Channel, st.TS, st.Route, st.Level, st.Gen = id, ts, channel, inc.Severity, st.Gen+1
	st.Noted = appendOnce(st.Noted, eventKey(ev)) // the new message says it all
	if err := n.save(inc.ID, st); err != nil {
		return true, err
	}
	return false, nil
}

// finishMove points the message the incident moved from at the current one.
func (n *Notifier) finishMove(ctx context.Context, ev *incident.Event, st *State, now time.Time) (bool, error) {
	old := *st.MovedFrom
	if _, _, _, err := n.api.UpdateMessageContext(ctx, old.Channel, old.TS, renderMoved(ev, st, now)...); err != nil && !gone(slackCode(err)) {
		return n.fail("chat.update", err)
	}
	st.MovedFrom = nil
	if err := n.save(ev.Incident.ID, st); err != nil {
		return true, err
	}
	return false, nil
}

// renderMoved is an old incident message, updated to say where the
// incident is followed now.
func renderMoved(ev *incident.Event, st *State, now time.Time) []slackapi.MsgOption {
	all, fallback := buildBlocks(ev, st, now)
	// No buttons: the message is not updated any more, so they would lie.
	blocks := all[:0:0]
	for _, b := range all {
		if b.BlockType() != slackapi.MBTAction {
			blocks = append(blocks, b)
		}
	}
	moved := section(fmt.Sprintf("➡️ *Moved to <#%s>* (now %s): updates continue there.", st.Channel, sevName(ev.Incident.Severity)))
	blocks = append(blocks[:1:1], append([]slackapi.Block{moved}, blocks[1:]...)...)
	if len(blocks) > maxBlocks {
		blocks = blocks[:maxBlocks]
	}
	return []slackapi.MsgOption{slackapi.MsgOptionText(clip.Runes("➡️ Moved: "+fallback, maxFallback), false), slackapi.MsgOptionBlocks(blocks...)}
}

// gone reports a Slack error saying the message or channel can no longer be
// written: post anew rather than give up on the incident.
func gone(code string) bool {
	switch code {
	case "message_not_found", "channel_not_found", "is_archived", "cant_update_message", "edit_window_closed", "not_in_channel":
		return true
	}
	return false
}

// routedChannel is where a new incident message goes: the Sev 1 channel, the
// incidents channel for Sev 2 (and Sev 1 without a channel), the team
// channel for Sev 3 and 4.
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
// step is skipped if the state says it is done. When the channel cannot be
// had, the declaration goes to the incidents channel, saying why.
func (n *Notifier) declare(ctx context.Context, ev *incident.Event, st *State, now time.Time) (bool, error) {
	inc := &ev.Incident
	_, incidents := n.channels(inc.Service)
	if st.IncidentChannel == "" && st.Fallback == "" {
		if retry, err := n.createChannel(ctx, inc, st, now); err != nil {
			return retry, err
		}
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
	}
	if st.Fallback != "" {
		if st.DeclaredTS == "" {
			text := declaredText(inc, now) + "\n⚠️ No incident channel: " + clip.Runes(escape(st.Fallback), 300) +
				". Follow the incident here."
			_, ts, err := n.postOnce(ctx, inc.ID, st, "declared", incidents, "", now, slackapi.MsgOptionText(text, false))
			if err != nil {
				return n.fail("chat.postMessage", err)
			}
			st.DeclaredTS = ts
			if err := n.save(inc.ID, st); err != nil {
				return true, err
			}
		}
		return false, nil
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
		// The buttons too, where responders gather; the text stays as the
		// notification's fallback.
		blocks := append([]slackapi.Block{section(text)}, buttonBlocks(ev, st, now)...)
		_, ts, err := n.postOnce(ctx, inc.ID, st, "declared", st.IncidentChannel, "", now,
			slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...))
		if err != nil && !gone(slackCode(err)) {
			return n.fail("chat.postMessage", err)
		}
		st.DeclaredTS = cmp.Or(ts, "-") // "-": the channel was gone; nothing to repeat
		st.DeclaredText = text
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
	}
	if st.AnnouncedTS == "" {
		text := fmt.Sprintf("%s *Sev 1 declared* for %s: <#%s> — %s", emoji(1), escape(inc.Service),
			st.IncidentChannel, escape(inc.Title))
		_, ts, err := n.postOnce(ctx, inc.ID, st, "announced", incidents, "", now, slackapi.MsgOptionText(clip.Runes(text, 3000), false))
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

// createChannel makes the Sev 1 channel, recording it in st, or records in
// st.Fallback why it cannot be had. Only a failure worth retrying is
// returned. A creation whose answer was lost is found by its name.
func (n *Notifier) createChannel(ctx context.Context, inc *incident.Incident, st *State, now time.Time) (bool, error) {
	base := notify.IncidentChannelName(inc)
	lost, retake := "", 0
	if p := st.Pending; p != nil && strings.HasPrefix(p.Key, "create:") {
		lost = strings.TrimPrefix(p.Key, "create:")
		if i, ok := suffixOf(base, lost); ok {
			retake = i
		}
	}
	var first, i int
	for try := range maxNameTries {
		if try == 0 && retake > 0 {
			i = retake // the name whose creation's answer was lost
		} else {
			i = n.claimSuffix(base)
		}
		if try == 0 {
			first = i
		}
		name := channelName(base, i)
		st.Pending = &Pending{Key: "create:" + name, At: now}
		if err := n.save(inc.ID, st); err != nil {
			return true, err
		}
		ch, err := n.api.CreateConversationContext(ctx, slackapi.CreateConversationParams{ChannelName: name})
		code := slackCode(err)
		if code == "name_taken" && name == lost {
			// Made by the attempt whose answer was lost: adopt it, so the
			// on-call is not invited to an orphan.
			found, ferr := n.findChannel(ctx, name)
			if ferr != nil {
				if retry, werr := n.fail("conversations.list", ferr); retry {
					return true, werr
				}
			}
			if found != nil {
				ch, err = found, nil
				if !found.IsMember {
					if _, _, _, jerr := n.api.JoinConversationContext(ctx, found.ID); jerr != nil {
						ch, err = nil, jerr
					}
				}
				code = slackCode(err)
			}
		}
		switch {
		case err == nil:
			st.Pending = nil
			st.IncidentChannel, st.IncidentChannelName = ch.ID, name
			n.rememberSuffix(base, i, now)
			return false, nil
		case code == "name_taken":
			n.rememberSuffix(base, i, now)
			continue
		}
		retry, werr := n.fail("conversations.create", err)
		if retry {
			if st.CreateFailures++; st.CreateFailures < maxCreateFailures {
				if serr := n.save(inc.ID, st); serr != nil {
					return true, serr
				}
				return true, werr // the outcome is uncertain: Pending stays
			}
			st.Pending = nil
			st.Fallback = fmt.Sprintf("could not create the channel in %d attempts (%s)", st.CreateFailures, cmp.Or(code, werr.Error()))
			return false, nil
		}
		st.Pending = nil
		st.Fallback = "could not create the channel (" + cmp.Or(code, werr.Error()) + ")"
		return false, nil
	}
	st.Pending = nil
	st.Fallback = fmt.Sprintf("channel names %s to %s are taken", channelName(base, first), channelName(base, i))
	return false, nil
}

// maxCreateFailures bounds the retried failures of a Sev 1 channel's
// creation: the declaration must reach people within minutes, in the
// incidents channel if need be (the page went out meanwhile).
const maxCreateFailures = 3

// channelName is the i-th Sev 1 channel name for base: base, base-2, …
func channelName(base string, i int) string {
	if i <= 1 {
		return base
	}
	suffix := "-" + strconv.Itoa(i)
	if len(base)+len(suffix) > 80 {
		base = base[:80-len(suffix)]
	}
	return base + suffix
}

// suffixOf inverts channelName.
func suffixOf(base, name string) (int, bool) {
	if name == base {
		return 1, true
	}
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return 0, false
	}
	k, err := strconv.Atoi(name[i+1:])
	if err != nil || k < 2 || channelName(base, k) != name {
		return 0, false
	}
	return k, true
}

// namesKey is the receiver state entry remembering, per Sev 1 base name,
// the last suffix taken (names carry the day, so old ones are dropped).
const namesKey = "~channel-names"

// namesKept is how long a base name's last suffix is remembered.
const namesKept = 3 * 24 * time.Hour

type namesState struct {
	Last map[string]int `json:"last"`
}

// nameDay is the day in a base name, incident-YYYYMMDD-<service>.
func nameDay(base string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(base, "incident-")
	if !ok || len(rest) < 8 {
		return time.Time{}, false
	}
	day, err := time.Parse("20060102", rest[:8])
	return day, err == nil
}

func (n *Notifier) lastSuffixLocked(base string) int {
	var ns namesState
	if _, err := n.state.LoadReceiverState(receiverName, namesKey, &ns); err != nil {
		return 0 // only an optimisation: start from the base name
	}
	return ns.Last[base]
}

// claimSuffix hands out the next suffix of base to try: past every one
// remembered as taken and every one handed to a creation still under way,
// so concurrent Sev 1 declarations of one service (delivered at once) each
// try a name of their own instead of all racing for the same few.
func (n *Notifier) claimSuffix(base string) int {
	n.names.Lock()
	defer n.names.Unlock()
	i := max(n.lastSuffixLocked(base), n.claimed[base]) + 1
	if n.claimed == nil {
		n.claimed = map[string]int{}
	}
	n.claimed[base] = i
	return i
}

// rememberSuffix records that suffix i of base is taken. Best effort: a
// failure costs later declarations a few name_taken answers, nothing more.
func (n *Notifier) rememberSuffix(base string, i int, now time.Time) {
	n.names.Lock()
	defer n.names.Unlock()
	var ns namesState
	if _, err := n.state.LoadReceiverState(receiverName, namesKey, &ns); err != nil || ns.Last[base] >= i {
		return
	}
	if ns.Last == nil {
		ns.Last = map[string]int{}
	}
	for b := range ns.Last {
		if day, ok := nameDay(b); !ok || now.Sub(day) > namesKept {
			delete(ns.Last, b)
		}
	}
	for b := range n.claimed {
		if day, ok := nameDay(b); !ok || now.Sub(day) > namesKept {
			delete(n.claimed, b)
		}
	}
	ns.Last[base] = i
	_ = n.state.SaveReceiverState(receiverName, namesKey, ns)
}

// findChannel looks a channel up by name (public ones, a bounded number of
// pages), or returns nil.
func (n *Notifier) findChannel(ctx context.Context, name string) (*slackapi.Channel, error) {
	cursor := ""
	for range listPages {
		chans, next, err := n.api.GetConversationsContext(ctx, &slackapi.GetConversationsParameters{
			Cursor: cursor, Limit: 1000, ExcludeArchived: true, Types: []string{"public_channel"}})
		if err != nil {
			return nil, err
		}
		for i := range chans {
			if chans[i].Name == name {
				return &chans[i], nil
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return nil, nil
}

// postOnce posts a message carrying metadata key. A post of the same key
// marked pending in st (its outcome never recorded) is first looked up in
// the channel and adopted if found. The caller records the result and saves
// st.
func (n *Notifier) postOnce(ctx context.Context, incidentID string, st *State, key, channel, thread string,
	now time.Time, opts ...slackapi.MsgOption) (string, string, error) {
	if p := st.Pending; p != nil && p.Key == key && p.Thread == thread {
		id, ts, err := n.lookup(ctx, incidentID, p)
		if err != nil {
			return "", "", err
		}
		if ts != "" {
			st.Pending = nil
			return id, ts, nil
		}
	}
	st.Pending = &Pending{Key: key, Channel: channel, Thread: thread, At: now}
	if err := n.save(incidentID, st); err != nil {
		return "", "", err
	}
	opts = append(opts, slackapi.MsgOptionMetadata(slackapi.SlackMetadata{EventType: metadataType,
		EventPayload: map[string]any{"incident": incidentID, "key": key}}))
	if thread != "" {
		opts = append(opts, slackapi.MsgOptionTS(thread))
	}
	id, ts, err := n.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		if code := slackCode(err); code != "" && code != "fatal_error" {
			st.Pending = nil // Slack refused it: nothing was posted
		}
		return "", "", err
	}
	n.mu.Lock()
	n.ids[channel] = id
	n.mu.Unlock()
	st.Pending = nil
	return id, ts, nil
}

// lookup finds the message of an uncertain post by its metadata: in the
// channel's history, or in the thread for a reply, from shortly before the
// attempt. It returns "" when there is none; a lookup Slack refuses (a
// missing scope, say) is no reason to withhold the post, so it also returns
// "" then.
func (n *Notifier) lookup(ctx context.Context, incidentID string, p *Pending) (string, string, error) {
	id, err := n.channelID(ctx, p.Channel)
	if err != nil || id == "" {
		return "", "", lookupErr(err)
	}
	oldest := fmt.Sprintf("%d.000000", p.At.Add(-lookupWindow).Unix())
	cursor := ""
	for range lookupPages {
		var msgs []slackapi.Message
		var next string
		if p.Thread != "" {
			msgs, _, next, err = n.api.GetConversationRepliesContext(ctx, &slackapi.GetConversationRepliesParameters{
				ChannelID: id, Timestamp: p.Thread, Cursor: cursor, Oldest: oldest, Inclusive: true, Limit: 200, IncludeAllMetadata: true})
		} else {
			var h *slackapi.GetConversationHistoryResponse
			h, err = n.api.GetConversationHistoryContext(ctx, &slackapi.GetConversationHistoryParameters{
				ChannelID: id, Cursor: cursor, Oldest: oldest, Inclusive: true, Limit: 200, IncludeAllMetadata: true})
			if h != nil {
				msgs, next = h.Messages, h.ResponseMetaData.NextCursor
			}
		}
		if err != nil {
			return "", "", lookupErr(err)
		}
		for _, m := range msgs {
			md := m.Metadata
			if md.EventType == metadataType && md.EventPayload["incident"] == incidentID && md.EventPayload["key"] == p.Key {
				return id, m.Timestamp, nil
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return "", "", nil
}

// lookupErr keeps the errors worth retrying the lookup for.
func lookupErr(err error) error {
	if err == nil {
		return nil
	}
	if retry, _ := classify("lookup", err); retry {
		return err
	}
	return nil
}

// channelID resolves a configured channel ("#alerts") to its ID, which the
// history methods require: from an earlier answer, else by listing.
func (n *Notifier) channelID(ctx context.Context, ref string) (string, error) {
	if isChannelID(ref) {
		return ref, nil
	}
	n.mu.Lock()
	id, ok := n.ids[ref]
	n.mu.Unlock()
	if ok {
		return id, nil
	}
	ch, err := n.findChannel(ctx, strings.TrimPrefix(ref, "#"))
	if err != nil || ch == nil {
		return "", err
	}
	n.mu.Lock()
	n.ids[ref] = ch.ID
	n.mu.Unlock()
	return ch.ID, nil
}

// isChannelID tells a conversation ID (C…, G…, D…, upper case) from a name,
// which Slack keeps lower case.
func isChannelID(ref string) bool {
	if len(ref) < 2 || strings.IndexByte("CGD", ref[0]) < 0 {
		return false
	}
	for _, r := range ref {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
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
		return true, &notify.RetryAfterError{After: rl.RetryAfter, Method: method, Err: wrapped}
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

func appendOnce(list []string, s string) []string { return appendBounded(list, s, maxNoted) }

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
