package slack

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/amtriage/amtriage/incident"

	"github.com/amtriage/amtriage/internal/clip"
)

// Block Kit limits (docs.slack.dev/reference/block-kit).
const (
	maxBlocks      = 50
	maxSectionText = 3000
	maxHeaderText  = 150
	maxFallback    = 3000 // well under chat.update's 4,000-character text limit
	tableAlerts    = 10   // alerts listed in the message; the rest are counted
	maxLinks       = 6
)

var broadcast = regexp.MustCompile(`(?i)@(here|channel|everyone)`)

// escape makes text from alerts safe in mrkdwn: Slack's three control
// characters are entity-encoded, so <!channel>, <!here>, <@U…> and
// <http://evil|click> render as text, and bare @here/@channel/@everyone get a
// zero-width space after the @.
func escape(s string) string {
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
	return broadcast.ReplaceAllString(s, "@\u200b$1")
}

// plain makes text safe in a plain_text object, which shows entities
// literally: angle brackets become look-alike quotes instead.
func plain(s string) string {
	s = strings.NewReplacer("<", "‹", ">", "›").Replace(s)
	return broadcast.ReplaceAllString(s, "@\u200b$1")
}

// oneLine folds whitespace so a value cannot break the table's layout.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// safeURL accepts only http(s) URLs that cannot break out of <url|label>.
func safeURL(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	if strings.ContainsAny(raw, "|<> \t\r\n") {
		return "", false
	}
	return strings.ReplaceAll(raw, "&", "&amp;"), true
}

func link(raw, label string) string {
	u, ok := safeURL(raw)
	if !ok {
		return ""
	}
	return "<" + u + "|" + escape(label) + ">"
}

func section(text string) *slackapi.SectionBlock {
	return slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, clip.Runes(text, maxSectionText), false, false), nil, nil)
}

func duration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

// renderMessage is the incident's Block Kit message, as posted and as updated.
func renderMessage(ev *incident.Event, st *State, now time.Time) []slackapi.MsgOption {
	blocks, fallback := buildBlocks(ev, st, now)
	return []slackapi.MsgOption{slackapi.MsgOptionText(fallback, false), slackapi.MsgOptionBlocks(blocks...)}
}

func buildBlocks(ev *incident.Event, st *State, now time.Time) ([]slackapi.Block, string) {
	inc := &ev.Incident
	// Resolved once recovery is verified (monitoring, closed); not while verifying.
	resolved := resolvedView(ev)
	icon := emoji(inc.Severity)
	if resolved {
		icon = "✅"
	}
	head := fmt.Sprintf("%s Sev %d · %s", icon, inc.Severity, oneLine(inc.Title))
	if resolved {
		head = fmt.Sprintf("%s RESOLVED · Sev %d · %s", icon, inc.Severity, oneLine(inc.Title))
	}
	blocks := []slackapi.Block{
		slackapi.NewHeaderBlock(slackapi.NewTextBlockObject(slackapi.PlainTextType, clip.Runes(plain(head), maxHeaderText), true, false)),
	}

	total := max(ev.AlertsTotal, len(ev.Alerts))
	var status string
	if resolved {
		at := inc.ResolvedAt
		if at.IsZero() {
			at = ev.At
		}
		status = fmt.Sprintf("✅ *Resolved* at %s UTC after %s", at.UTC().Format("15:04"), duration(at.Sub(inc.StartedAt)))
	} else {
		status = fmt.Sprintf("🔥 *Firing* for %s", duration(now.Sub(inc.StartedAt)))
	}
	summary := fmt.Sprintf("%s *Severity:* %s   *Service:* %s\n%s   *Started:* %s UTC\n*Alerts:* %d firing, %d total",
		emoji(inc.Severity), sevName(inc.Severity), escape(inc.Service), status,
		inc.StartedAt.UTC().Format("2006-01-02 15:04"), inc.Firing, total)
	if inc.PeakSeverity != 0 && inc.PeakSeverity < inc.Severity {
		summary += fmt.Sprintf("   *Peak:* %s %s", emoji(inc.PeakSeverity), sevName(inc.PeakSeverity))
	}
	if st.IncidentChannel != "" && st.IncidentChannel != st.Channel && st.Channel != "" {
		summary += fmt.Sprintf("\n*Incident channel:* <#%s>", st.IncidentChannel)
	}
	blocks = append(blocks, section(summary))
	if did := respondersText(inc, now); did != "" {
		blocks = append(blocks, section(did))
	}

	if len(inc.Reasons) > 0 {
		var b strings.Builder
		b.WriteString("*Why:*")
		for i, r := range inc.Reasons {
			if i == 8 {
				fmt.Fprintf(&b, "\n… +%d more reasons", len(inc.Reasons)-i)
				break
			}
			b.WriteString("\n• " + clip.Runes(escape(oneLine(r)), 300))
		}
		blocks = append(blocks, section(b.String()))
	}

	if d := inc.Diagnosis; d != nil {
		blocks = append(blocks, section(diagnosisText(d)))
		if snap := snapshotText(d.Snapshot); snap != "" {
			blocks = append(blocks, section(snap))
		}
	}

	links := collectLinks(inc, ev.Alerts)
	if l := link(st.evidence, "Evidence"); l != "" {
		links = append([]string{l}, links...)
	}
	if l := pagerDutyLink(inc); l != "" {
		links = append([]string{l}, links...)
	}
	if len(links) > 0 {
		blocks = append(blocks, section("*Links:* "+strings.Join(links, " · ")))
	}

	// The buttons, the alert table and the context close the message; the
	// guard below cuts the blocks before them.
	tail := buttonBlocks(ev, st, now)
	if len(ev.Alerts) > 0 {
		tail = append(tail, slackapi.NewDividerBlock(), section(alertTable(ev.Alerts, total)))
	}
	ctx := fmt.Sprintf("incident `%s` · rule %d · updated %s UTC", escape(inc.ID), inc.Rule, now.Format("15:04:05"))
	tail = append(tail, slackapi.NewContextBlock("",
		slackapi.NewTextBlockObject(slackapi.MarkdownType, clip.Runes(ctx, 2000), false, false)))

	blocks = fitBlocks(blocks, tail)
	fallback := fmt.Sprintf("%s Sev %d: %s (%d alerts)", icon, inc.Severity, escape(oneLine(inc.Title)), total)
	if resolved {
		fallback = "✅ Resolved: " + fallback
	}
	return blocks, clip.Runes(fallback, maxFallback)
}

// fitBlocks is body and tail within Slack's block limit, body cut if need
// be: the buttons and the context at the end stay. (The layout above never
// comes near the limit; this is a guard.)
func fitBlocks(body, tail []slackapi.Block) []slackapi.Block {
	if over := len(body) + len(tail) - maxBlocks; over > 0 {
		body = body[:max(len(body)-over, 0)]
	}
	return append(body, tail...)
}

// collectLinks gathers the distinct runbook and source links, incident's first.
func collectLinks(inc *incident.Incident, alerts []incident.Alert) []string {
	var out []string
	seen := map[string]bool{}
	add := func(raw, label string) {
		if len(out) >= maxLinks || seen[raw] {
			return
		}
		if l := link(raw, label); l != "" {
			seen[raw] = true
			out = append(out, l)
		}
	}
	for i := range alerts {
		add(alerts[i].Annotations["runbook_url"], "runbook")
	}
	for i := range alerts {
		add(alerts[i].GeneratorURL, "source: "+oneLine(alerts[i].Name))
	}
	add(inc.ExternalURL, "Alertmanager")
	return out
}

// alertTable lists the first alerts compactly, one line each, and counts the rest.
func alertTable(alerts []incident.Alert, total int) string {
	var b strings.Builder
	b.WriteString("*Alerts:*")
	shown := 0
	for i := range alerts {
		if shown == tableAlerts {
			break
		}
		a := &alerts[i]
		line := fmt.Sprintf("\n%s `%s` %s", statusIcon(a.Status), clip.Runes(escape(oneLine(a.Name)), 80), labelSummary(a.Labels))
		if s := a.Annotations["summary"]; s != "" {
			line += " — " + escape(oneLine(s))
		}
		b.WriteString(clip.Runes(line, 260))
		shown++
	}
	if more := total - shown; more > 0 {
		fmt.Fprintf(&b, "\n… +%d more alerts", more)
	}
	return b.String()
}

func statusIcon(s string) string {
	if s == incident.Resolved {
		return "✅"
	}
	return "🔥"
}

// labelSummary shows the identifying labels, skipping those already shown.
func labelSummary(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != "alertname" && k != "service" && k != "severity" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, 4)
	for i, k := range keys {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("+%d", len(keys)-i))
			break
		}
		parts = append(parts, escape(oneLine(k))+"="+clip.Runes(escape(oneLine(labels[k])), 60))
	}
	return strings.Join(parts, " ")
}

// changeNote is the thread reply describing an event.
func changeNote(ev *incident.Event) string {
	inc := &ev.Incident
	if note, ok := actionNote(ev); ok {
		return note
	}
	switch ev.Kind {
	case incident.SeverityChanged:
		dir := "escalated"
		if inc.Severity > ev.PreviousSeverity {
			dir = "lowered"
		}
		note := fmt.Sprintf("%s Severity %s: %s Sev %d → %s %s", emoji(inc.Severity), dir,
			emoji(ev.PreviousSeverity), ev.PreviousSeverity, emoji(inc.Severity), sevName(inc.Severity))
		if len(inc.Reasons) > 0 {
			note += "\nReason: " + clip.Runes(escape(oneLine(inc.Reasons[0])), 500)
		}
		return note
	case incident.StatusUpdate:
		// The runbook's periodic update: "⏱️ 14:35 UTC UPDATE …".
		next := 5 * time.Minute
		if inc.Severity == 1 {
			next = 2 * time.Minute
		}
		note := fmt.Sprintf("⏱️ %s UTC UPDATE\nStatus: open for %s, %s Sev %d, %d of %d alerts firing",
			ev.At.UTC().Format("15:04"), duration(ev.At.Sub(inc.StartedAt)), emoji(inc.Severity), inc.Severity, inc.Firing, ev.AlertsTotal)
		if len(inc.Reasons) > 0 {
			note += "\nFindings: " + clip.Runes(escape(oneLine(inc.Reasons[0])), 500)
		}
		return note + "\nNext update: " + ev.At.Add(next).UTC().Format("15:04") + " UTC"
	case incident.Escalated:
		return escalationNote(ev)
	case incident.ResolvedEvent:
		if inc.ClosedBy != "" {
			return fmt.Sprintf("✅ Resolved by hand by %s at %s UTC after %s", who(inc.ClosedBy),
				inc.ClosedAt.UTC().Format("15:04"), duration(inc.ClosedAt.Sub(inc.StartedAt)))
		}
		if inc.Closure != "" {
			return escape(inc.Closure)
		}
		at := inc.ResolvedAt
		if at.IsZero() {
			at = ev.At
		}
		return fmt.Sprintf("✅ Resolved at %s UTC after %s", at.UTC().Format("15:04"), duration(at.Sub(inc.StartedAt)))
	case incident.VerifyPending:
		return "⏳ " + clip.Runes(escape(oneLine(inc.Verification)), 500)
	case incident.Reopened:
		return fmt.Sprintf("🔁 Reopened: firing again while %s (recurrence %d), %s Sev %d", ev.PreviousState, inc.Recurrences, emoji(inc.Severity), inc.Severity)
	case incident.Closed:
		if inc.ClosedBy != "" {
			return fmt.Sprintf("🔒 Closed by hand by %s at %s UTC", who(inc.ClosedBy), ev.At.UTC().Format("15:04"))
		}
		return fmt.Sprintf("🔒 Closed at %s UTC: quiet since %s UTC", ev.At.UTC().Format("15:04"), inc.MonitoringSince.UTC().Format("15:04"))
	default:
		return fmt.Sprintf("%s %s: %s", emoji(inc.Severity), ev.Kind, clip.Runes(escape(oneLine(inc.Title)), 500))
	}
}
