package slackin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// Interaction types Slack posts to the interactivity URL.
const (
	TypeBlockActions   = "block_actions"
	TypeViewSubmission = "view_submission"
)

// Decoding errors. ErrIgnored is a verified interaction amtriage does not act
// on (a modal, a shortcut, a legacy attachment button): answer it 200 and drop
// it. The others mean the payload is not one of amtriage's buttons.
var (
	ErrIgnored       = errors.New("slack interaction amtriage does not act on")
	ErrNotPayload    = errors.New("not a slack interaction payload")
	ErrUnknownAction = errors.New("unknown slack action")
)

// Interaction is a decoded block_actions payload: who clicked which of
// amtriage's buttons on which message.
type Interaction struct {
	Type   string
	TeamID string
	// UserTeamID is the clicking user's own workspace: in a Slack Connect
	// channel, another organisation's (TeamID stays the app's).
	UserTeamID  string
	TeamDomain  string
	UserID      string // "U…": what allowed_users lists and <@U…> mentions
	UserName    string // the user's handle (username, else the legacy name)
	ChannelID   string
	ChannelName string
	MessageTS   string // the message the buttons are on
	ThreadTS    string // its thread, when the message is a reply
	ResponseURL string // for EphemeralReply; valid 30 minutes, 5 uses
	TriggerID   string // opens a modal within 3 s; amtriage does not use one
	Actions     []Action
}

// Action is one clicked button.
type Action struct {
	ID       ActionID
	BlockID  string
	Value    Value  // decoded: the incident, and for a rollback its target
	RawValue string // as Slack sent it
	// ActionTS is Slack's time of the click, "1700000000.123456". A retry of
	// the same delivery carries the same ActionTS; a second click carries a
	// new one.
	ActionTS string
}

// Key is the idempotency key of one click: the same for every delivery of
// that click (Slack's retries, a reverse proxy re-sending), different for a
// second click even by the same user on the same button.
//
// How the leader should treat them: a key already processed is a duplicate
// delivery — no effect, no reply. A new key for an action whose effect
// already holds (acknowledge when acknowledged, silence while amtriage's
// silence is active, resolve when resolved) is a double click: no second
// effect (no second silence), recorded on the timeline at most once per
// state change, and answered ephemerally ("already silenced until 14:05 UTC
// by <@U…>"). A second Roll back is refused by the revision check itself
// (the Deployment is no longer at From). See IntentKey.
func (i Interaction) Key(a Action) string {
	return "slack:" + i.TeamID + ":" + i.UserID + ":" + string(a.ID) + ":" + a.ActionTS
}

// IntentKey names the effect a click asks for, the same for every click of
// that button on that incident, for the leader's "already done" check: e.g.
// "silence:<incident>" for both Silence buttons, so Silence 4h after Silence
// 1h is the same intent (extend or refuse, the leader's choice).
func (a Action) IntentKey() string {
	kind := string(a.ID)
	if a.ID.SilenceFor() > 0 {
		kind = "silence"
	}
	return kind + ":" + a.Value.Incident
}

// wire is the part of Slack's payload amtriage reads; the rest (the whole
// message with its blocks, state, enterprise…) is ignored.
type wire struct {
	Type string `json:"type"`
	Team struct {
		ID     string `json:"id"`
		Domain string `json:"domain"`
	} `json:"team"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
		TeamID   string `json:"team_id"`
	} `json:"user"`
	Container struct {
		Type        string `json:"type"`
		MessageTS   string `json:"message_ts"`
		ChannelID   string `json:"channel_id"`
		ThreadTS    string `json:"thread_ts"`
		IsEphemeral bool   `json:"is_ephemeral"`
	} `json:"container"`
	Channel struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"channel"`
	Message *struct {
		TS       string `json:"ts"`
		ThreadTS string `json:"thread_ts"`
	} `json:"message"`
	ResponseURL string `json:"response_url"`
	TriggerID   string `json:"trigger_id"`
	Actions     []struct {
		Type     string `json:"type"`
		ActionID string `json:"action_id"`
		BlockID  string `json:"block_id"`
		Value    string `json:"value"`
		ActionTS string `json:"action_ts"`
	} `json:"actions"`
}

// maxField bounds the ids and names kept from a payload (Slack's are short);
// a longer one is not Slack's.
const maxField = 255

// DecodeInteraction reads a verified interactivity request body: a form with
// one field, payload, holding the JSON. It returns the block_actions
// interaction with every action decoded, ErrIgnored for another type, and
// ErrNotPayload or ErrUnknownAction (wrapped, with detail) otherwise.
func DecodeInteraction(body []byte) (Interaction, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Interaction{}, fmt.Errorf("%w: form: %v", ErrNotPayload, err)
	}
	ps := form["payload"]
	if len(ps) != 1 || ps[0] == "" {
		return Interaction{}, fmt.Errorf("%w: want one payload field, got %d", ErrNotPayload, len(ps))
	}
	return DecodePayload([]byte(ps[0]))
}

// DecodePayload decodes the payload field's JSON (see DecodeInteraction).
func DecodePayload(payload []byte) (Interaction, error) {
	var w wire
	if err := json.Unmarshal(payload, &w); err != nil {
		return Interaction{}, fmt.Errorf("%w: %v", ErrNotPayload, err)
	}
	switch w.Type {
	case TypeBlockActions:
	case "":
		return Interaction{}, fmt.Errorf("%w: no type", ErrNotPayload)
	default:
		// view_submission, view_closed, shortcut, message_action,
		// interactive_message: amtriage confirms with the button's confirm
		// dialog, which Slack shows before it sends block_actions, so it
		// never opens a modal of its own.
		return Interaction{Type: w.Type}, fmt.Errorf("%w: type %q", ErrIgnored, w.Type)
	}
	in := Interaction{
		Type:        w.Type,
		TeamID:      w.Team.ID,
		TeamDomain:  w.Team.Domain,
		UserID:      w.User.ID,
		UserName:    w.User.Username,
		ChannelID:   w.Channel.ID,
		ChannelName: w.Channel.Name,
		MessageTS:   w.Container.MessageTS,
		ThreadTS:    w.Container.ThreadTS,
		ResponseURL: w.ResponseURL,
		TriggerID:   w.TriggerID,
	}
	if in.UserName == "" {
		in.UserName = w.User.Name
	}
	if in.TeamID == "" {
		in.TeamID = w.User.TeamID
	}
	in.UserTeamID = cmp.Or(w.User.TeamID, in.TeamID)
	if in.ChannelID == "" {
		in.ChannelID = w.Container.ChannelID
	}
	if w.Message != nil {
		if in.MessageTS == "" {
			in.MessageTS = w.Message.TS
		}
		if in.ThreadTS == "" {
			in.ThreadTS = w.Message.ThreadTS
		}
	}
	for _, f := range []struct{ name, v string }{{"user id", in.UserID}, {"team id", in.TeamID},
		{"channel id", in.ChannelID}, {"message ts", in.MessageTS}} {
		if f.v == "" {
			return Interaction{}, fmt.Errorf("%w: no %s", ErrNotPayload, f.name)
		}
	}
	for _, v := range []string{in.TeamID, in.UserTeamID, in.TeamDomain, in.UserID, in.UserName, in.ChannelID,
		in.ChannelName, in.MessageTS, in.ThreadTS, in.TriggerID} {
		if len(v) > maxField {
			return Interaction{}, fmt.Errorf("%w: a field of %d bytes", ErrNotPayload, len(v))
		}
	}
	if len(in.ResponseURL) > 2048 {
		return Interaction{}, fmt.Errorf("%w: response_url of %d bytes", ErrNotPayload, len(in.ResponseURL))
	}
	if len(w.Actions) == 0 {
		return Interaction{}, fmt.Errorf("%w: no actions", ErrNotPayload)
	}
	for _, wa := range w.Actions {
		id := ActionID(wa.ActionID)
		if wa.Type != "button" || len(wa.ActionID) > MaxActionID || !id.Known() {
			return Interaction{}, fmt.Errorf("%w: %s %.64q", ErrUnknownAction, wa.Type, wa.ActionID)
		}
		if wa.ActionTS == "" || len(wa.ActionTS) > maxField || len(wa.BlockID) > MaxBlockID {
			return Interaction{}, fmt.Errorf("%w: action %s without a valid action_ts or block_id", ErrNotPayload, id)
		}
		v, err := DecodeValue(id, wa.Value)
		if err != nil {
			return Interaction{}, fmt.Errorf("%w: action %s: %v", ErrUnknownAction, id, err)
		}
		in.Actions = append(in.Actions, Action{ID: id, BlockID: wa.BlockID, Value: v,
			RawValue: wa.Value, ActionTS: wa.ActionTS})
	}
	return in, nil
}
