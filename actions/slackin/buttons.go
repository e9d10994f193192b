package slackin

import (
	"fmt"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// BlockIDPrefix starts the block_id of amtriage's action block; the rest is
// the incident id, so a click's BlockID names the incident too.
const BlockIDPrefix = "amtriage_actions:"

// ButtonOptions says which buttons an incident's message shows.
type ButtonOptions struct {
	// Acknowledged hides Acknowledge (the message shows who acknowledged).
	Acknowledged bool
	// Silenced shows Unsilence instead of Silence 1h and 4h: an amtriage
	// silence is active for the incident.
	Silenced bool
	// Rollback, when set, adds Roll back, behind a confirmation dialog. Set
	// it only when the diagnosis carries a rollback and
	// actions.rollback.enabled is true; allowed_users is checked on click.
	Rollback *Rollback
	// Over: the incident is resolved or closed. Only Unsilence is left,
	// while Silenced: the silence outlives the incident, and lifting it
	// must stay one click away.
	Over bool
}

// Buttons is the action block for an incident's message: Acknowledge,
// Silence 1h and Silence 4h (or Unsilence), Resolve and, when opts say so,
// Roll back. Resolve and Roll back ask for confirmation in Slack's dialog
// (the button's confirm object: Slack sends the click only once confirmed).
// An invalid incident id gives no block; an invalid rollback target gives no
// Roll back button. An incident that is over gets Unsilence alone, if
// silenced.
func Buttons(incidentID string, opts ButtonOptions) []slack.Block {
	if !ValidIncidentID(incidentID) || len(BlockIDPrefix)+len(incidentID) > MaxBlockID {
		return nil
	}
	v := Value{Incident: incidentID}
	if opts.Over && !opts.Silenced {
		return nil
	}
	var els []slack.BlockElement
	add := func(id ActionID, label string, v Value, style slack.Style, confirm *slack.ConfirmationBlockObject) {
		value, err := EncodeValue(id, v)
		if err != nil {
			return
		}
		b := slack.NewButtonBlockElement(string(id), value, plain(label))
		if style != "" {
			b = b.WithStyle(style)
		}
		if confirm != nil {
			b = b.WithConfirm(confirm)
		}
		els = append(els, b)
	}
	if opts.Over {
		add(ActUnsilence, "Unsilence", v, "", nil)
		return []slack.Block{slack.NewActionBlock(BlockIDPrefix+incidentID, els...)}
	}
	if !opts.Acknowledged {
		add(ActAck, "Acknowledge", v, slack.StylePrimary, nil)
	}
	if opts.Silenced {
		add(ActUnsilence, "Unsilence", v, "", nil)
	} else {
		add(ActSilence1h, "Silence 1h", v, "", nil)
		add(ActSilence4h, "Silence 4h", v, "", nil)
	}
	add(ActResolve, "Resolve", v, "", confirm("Resolve this incident?",
		"Closes incident "+incidentID+" by hand and resolves its PagerDuty incident. New alerts open a new incident.",
		"Resolve", ""))
	if r := opts.Rollback; r != nil {
		rv := Value{Incident: incidentID, Rollback: &Rollback{Namespace: r.Namespace, Deployment: r.Deployment, From: r.From, To: r.To}}
		text := fmt.Sprintf("Sets deployment/%s in %s back to revision %d's pod template (now at revision %d), as kubectl rollout undo does. Refused if the deployment has moved on since.",
			r.Deployment, r.Namespace, r.To, r.From)
		add(ActRollback, "Roll back", rv, slack.StyleDanger, confirm("Roll back?", text, "Roll back", slack.StyleDanger))
	}
	if len(els) == 0 {
		return nil
	}
	return []slack.Block{slack.NewActionBlock(BlockIDPrefix+incidentID, els...)}
}

// Slack's limits on a confirmation dialog.
const (
	maxConfirmTitle  = 100
	maxConfirmText   = 300
	maxConfirmButton = 30
)

func confirm(title, text, yes string, style slack.Style) *slack.ConfirmationBlockObject {
	c := slack.NewConfirmationBlockObject(plain(clip(title, maxConfirmTitle)), plain(clip(text, maxConfirmText)),
		plain(clip(yes, maxConfirmButton)), plain("Cancel"))
	if style != "" {
		c = c.WithStyle(style)
	}
	return c
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

// clip shortens s to n characters, ending it with "…" when cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
