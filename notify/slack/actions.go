package slack

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/amtriage/amtriage/actions/slackin"
	"github.com/amtriage/amtriage/incident"

	"github.com/amtriage/amtriage/internal/clip"
)

// Takes implements notify.EventFilter: every kind but the requests the
// action receivers carry out (their outcomes come back as Silenced, ...);
// ActionRefused is Slack's to answer.
func (n *Notifier) Takes(kind incident.EventKind) bool {
	switch kind {
	case incident.SilenceRequested, incident.UnsilenceRequested, incident.RollbackRequested:
		return false
	}
	return true
}

// mention is a Slack user mention as triage names a Slack actor ("<@U123>"):
// the one piece of markup a "by" may keep.
var mention = regexp.MustCompile(`^<@[UW][A-Z0-9]{1,20}>$`)

// who shows an actor: a Slack mention as it is, anything else (a PagerDuty
// user's name) escaped.
func who(by string) string {
	if mention.MatchString(by) {
		return by
	}
	if by == "" {
		return "someone"
	}
	return clip.Runes(escape(oneLine(by)), 100)
}

// mentions finds user mentions inside a longer text (a refusal's "already
// silenced by <@U1> …").
var mentions = regexp.MustCompile(`<@[UW][A-Z0-9]{1,20}>`)

// escapeKeepingMentions escapes s like escape, but leaves well-formed user
// mentions working. For amtriage's own texts (refusals), never for alerts'.
func escapeKeepingMentions(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range mentions.FindAllStringIndex(s, -1) {
		b.WriteString(escape(s[last:m[0]]))
		b.WriteString(s[m[0]:m[1]])
		last = m[1]
	}
	b.WriteString(escape(s[last:]))
	return b.String()
}

func hhmm(t time.Time) string { return t.UTC().Format("15:04") + " UTC" }

// resolvedView reports whether the message shows the incident as over:
// resolved once recovery is verified (monitoring), or closed; not while
// verifying.
func resolvedView(ev *incident.Event) bool {
	inc := &ev.Incident
	return (inc.Status == incident.Resolved && inc.State != incident.StateVerifying) ||
		inc.State == incident.StateClosed || ev.Kind == incident.ResolvedEvent || ev.Kind == incident.Closed
}

// buttonBlocks is the action block for an incident, as its state says:
// once it is over, only Unsilence while its silence lasts (anything else
// would be refused).
func buttonBlocks(ev *incident.Event, st *State, now time.Time) []slackapi.Block {
	inc := &ev.Incident
	opts := slackin.ButtonOptions{
		Acknowledged: !inc.AcknowledgedAt.IsZero(),
		Silenced:     inc.Silence != nil && !inc.Silence.Pending() && now.Before(inc.Silence.Until),
		Over:         resolvedView(ev),
	}
	// Not once that rollback is done: the diagnosis may still offer it
	// until the next evaluation sees the new revision.
	done := inc.RolledBack != nil && inc.RolledBack.Target != nil && inc.Diagnosis != nil &&
		inc.Diagnosis.Rollback != nil && *inc.RolledBack.Target == *inc.Diagnosis.Rollback
	if d := inc.Diagnosis; st.rollbackEnabled && d != nil && d.Rollback != nil && !done {
		r := d.Rollback
		opts.Rollback = &slackin.Rollback{Namespace: r.Namespace, Deployment: r.Deployment, From: r.From, To: r.To}
	}
	return slackin.Buttons(inc.ID, opts)
}

// respondersText is what responders did, for the message: who
// acknowledged, the silence, the last rollback, who resolved by hand.
// Empty when nobody did anything.
func respondersText(inc *incident.Incident, now time.Time) string {
	var lines []string
	if !inc.AcknowledgedAt.IsZero() {
		lines = append(lines, fmt.Sprintf("✋ Acknowledged by %s at %s", who(inc.AcknowledgedBy), hhmm(inc.AcknowledgedAt)))
	}
	if s := inc.Silence; s != nil {
		switch {
		case s.Pending():
			lines = append(lines, fmt.Sprintf("🔇 Silence requested by %s…", who(s.By)))
		case now.Before(s.Until):
			line := fmt.Sprintf("🔇 Silenced by %s until %s — %s", who(s.By), hhmm(s.Until), silenceRef(s.URL, s.ID))
			if s.Unsilencing {
				line += " (unsilence requested)"
			}
			lines = append(lines, line)
		}
	}
	if r := inc.RolledBack; r != nil {
		lines = append(lines, fmt.Sprintf("↩️ Rolled back by %s at %s: %s", who(r.By), hhmm(r.At), clip.Runes(escape(oneLine(r.Text)), 500)))
	}
	if inc.ClosedBy != "" {
		lines = append(lines, "✅ Resolved by hand by "+who(inc.ClosedBy))
	}
	return strings.Join(lines, "\n")
}

// silenceRef links a silence by its ID, or names it when its URL is unfit
// for a link.
func silenceRef(rawURL, id string) string {
	label := "silence " + clip.Runes(oneLine(id), 80)
	if l := link(rawURL, label); l != "" {
		return l
	}
	return "`" + escape(label) + "`"
}

// pagerDutyLink is the PagerDuty incident's link, once a webhook named it.
func pagerDutyLink(inc *incident.Incident) string {
	label := "PagerDuty"
	if inc.PagerDutyID != "" {
		label += " " + clip.Runes(oneLine(inc.PagerDutyID), 40)
	}
	return link(inc.PagerDutyURL, label)
}

// actionNote is the thread reply for an event about responders' acts, and
// whether ev is one.
func actionNote(ev *incident.Event) (string, bool) {
	inc, act := &ev.Incident, ev.Act
	if act == nil {
		act = &incident.EventAct{}
	}
	switch ev.Kind {
	case incident.Acknowledged:
		at := inc.AcknowledgedAt
		if at.IsZero() {
			at = ev.At
		}
		return fmt.Sprintf("✋ Acknowledged by %s at %s", who(inc.AcknowledgedBy), hhmm(at)), true
	case incident.PagerDutyChanged:
		// The event names no PagerDuty event type or assignees: the
		// incident's fields say where it stands. (Act.Text, should the book
		// pass the type along, names it.)
		note := "📟 PagerDuty: incident changed"
		if act.Text != "" {
			note = "📟 PagerDuty: " + clip.Runes(escape(oneLine(act.Text)), 100)
		}
		if act.By != "" {
			note += " by " + who(act.By)
		}
		if !inc.AcknowledgedAt.IsZero() {
			note += fmt.Sprintf(" — acknowledged by %s at %s", who(inc.AcknowledgedBy), hhmm(inc.AcknowledgedAt))
		} else {
			note += " — not acknowledged"
		}
		if l := pagerDutyLink(inc); l != "" {
			note += " · " + l
		}
		return note, true
	case incident.Silenced:
		by, url, id, until := act.By, act.Text, "", time.Time{}
		if s := inc.Silence; s != nil {
			by, url, id, until = cmp.Or(by, s.By), cmp.Or(url, s.URL), s.ID, s.Until
		}
		note := "🔇 Silenced by " + who(by)
		if !until.IsZero() {
			note += " until " + hhmm(until)
		}
		if id != "" || url != "" {
			note += " — " + silenceRef(url, id)
		}
		return note, true
	case incident.Unsilenced:
		note := "🔔 Unsilenced by " + who(act.By)
		if act.SilenceID != "" {
			note += " (silence " + escape(clip.Runes(oneLine(act.SilenceID), 80)) + " expired)"
		}
		return note, true
	case incident.RolledBack:
		text := act.Text
		if text == "" && inc.RolledBack != nil {
			text = inc.RolledBack.Text
		}
		return fmt.Sprintf("↩️ Rolled back by %s: %s", who(act.By), clip.Runes(escape(oneLine(text)), 1000)), true
	}
	return "", false
}

// refusedPrefix starts an ephemeral refusal, so the user knows it is about
// what they clicked.
const refusedPrefix = "⚠️ amtriage did not do that: "

// answerRefusal tells the Slack user who acted why it was refused or failed,
// ephemerally through the interaction's response_url; the message and its
// thread stay as they are. Answered once per request key: a response_url
// takes 5 posts within 30 minutes, and a redelivery must not spend one. A
// refusal Slack will not take (4xx: expired, used up; a URL not Slack's) is
// logged and dropped, since it never will; 5xx and network errors retry.
func (n *Notifier) answerRefusal(ctx context.Context, ev *incident.Event) (bool, error) {
	act := ev.Act
	if act == nil || act.ResponseURL == "" {
		return false, nil // no one to tell (not from a click): the timeline has it
	}
	var st State
	if _, err := n.state.LoadReceiverState(receiverName, ev.Incident.ID, &st); err != nil {
		return true, fmt.Errorf("slack: load state: %w", err)
	}
	key := act.Key
	if contains(st.Answered, key) {
		return false, nil
	}
	if age := n.cfg.Now().Sub(ev.At); age > responseURLLifetime {
		// Slack took the URL back: retrying would only hold up the
		// incident's other Slack events behind this one.
		n.cfg.Log.Warn("slack: refusal not answered: its response_url has expired", "incident", ev.Incident.ID, "key", act.Key, "age", age.Round(time.Second))
		return false, nil
	}
	text := refusedPrefix + escapeKeepingMentions(act.Text)
	rec := &statusRecorder{}
	client := *n.cfg.ReplyClient
	rec.next = client.Transport
	if rec.next == nil {
		rec.next = http.DefaultTransport
	}
	client.Transport = rec
	err := slackin.EphemeralReply(ctx, &client, act.ResponseURL, text, n.cfg.ReplyOptions...)
	switch {
	case err == nil:
	case ctx.Err() != nil || (rec.sent && rec.code == 0) || rec.code >= 500 || rec.code == http.StatusTooManyRequests:
		// Network, timeout, Slack's trouble: the URL may still take it.
		return true, fmt.Errorf("slack: answering refusal of %s: %w", act.Key, err)
	default:
		n.cfg.Log.Warn("slack: refusal not answered: Slack will not take it", "incident", ev.Incident.ID,
			"key", act.Key, "status", rec.code, "err", err)
	}
	st.Answered = appendBounded(st.Answered, key, maxAnswered)
	if err := n.save(ev.Incident.ID, &st); err != nil {
		return true, err
	}
	return false, nil
}

// responseURLLifetime is how long Slack takes answers on a response_url.
const responseURLLifetime = 30 * time.Minute

// maxAnswered bounds State.Answered: refusals come within minutes of
// their click, and their redeliveries soon after.
const maxAnswered = 32

// appendBounded appends s to list once, keeping the last max.
func appendBounded(list []string, s string, max int) []string {
	if contains(list, s) {
		return list
	}
	if len(list) >= max {
		list = append(list[:0:0], list[len(list)-max+1:]...)
	}
	return append(list, s)
}

// statusRecorder keeps the status of the response_url's answer, which
// EphemeralReply reports only in words: 4xx and 5xx are treated apart, and
// a URL refused before any request (not Slack's) is told from a network
// error.
type statusRecorder struct {
	next http.RoundTripper
	sent bool
	code int
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.sent = true
	resp, err := r.next.RoundTrip(req)
	if resp != nil {
		r.code = resp.StatusCode
	}
	return resp, err
}

// redrawDeclaration gives the Sev 1 declaration the buttons the incident
// has now, after what changes them (an acknowledge, a silence, a rollback,
// the end), so that the channel's copy offers no done or refused action.
func (n *Notifier) redrawDeclaration(ctx context.Context, ev *incident.Event, st *State, now time.Time) (bool, error) {
	switch ev.Kind {
	case incident.Acknowledged, incident.PagerDutyChanged, incident.Silenced, incident.Unsilenced,
		incident.RolledBack, incident.ResolvedEvent, incident.Closed:
	default:
		return false, nil
	}
	if st.DeclaredText == "" || st.DeclaredTS == "" || st.DeclaredTS == "-" || st.IncidentChannel == "" {
		return false, nil
	}
	blocks := append([]slackapi.Block{section(st.DeclaredText)}, buttonBlocks(ev, st, now)...)
	_, _, _, err := n.api.UpdateMessageContext(ctx, st.IncidentChannel, st.DeclaredTS,
		slackapi.MsgOptionText(st.DeclaredText, false), slackapi.MsgOptionBlocks(blocks...))
	if err != nil && !gone(slackCode(err)) {
		return n.fail("chat.update", err)
	}
	return false, nil
}
