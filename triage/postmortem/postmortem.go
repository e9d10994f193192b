// Package postmortem renders an incident's post-mortem document, the
// runbook's post-incident procedure, as Markdown: summary, impact, timeline,
// root cause, fix, verification, evidence links and the runbook's checklist.
// It is a pure function of a Report, which the caller fills from what it
// knows of the incident; the timeline takes as many entries as it is given.
package postmortem

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Report is what a post-mortem says about one incident.
type Report struct {
	ID      string
	Title   string
	Service string
	// Severity is the current (or last) one, PeakSeverity the highest.
	Severity, PeakSeverity int
	Status                 string    // firing, resolved (or a later lifecycle state)
	Start                  time.Time // detection
	End                    time.Time // zero while the incident is open
	// Now is when the document is rendered: the duration so far of an
	// open incident.
	Now time.Time
	// Impact lists what is known of the impact, one fact per line.
	Impact   []string
	Timeline []Entry
	// RootCause is the diagnosis, one line, and its evidence; empty: not
	// identified.
	RootCause         string
	RootCauseEvidence []string
	// Fix is the fix applied; empty: not recorded. SuggestedFix is a
	// command the diagnosis proposed.
	Fix, SuggestedFix string
	// Verification is how recovery was verified; empty: not recorded.
	Verification string
	Evidence     []Link
}

// Entry is one timeline event.
type Entry struct {
	At   time.Time
	What string
}

// Link is an evidence link; only absolute http(s) URLs and paths of this
// daemon's API (starting with "/") are linked.
type Link struct {
	Text string
	URL  string
}

// Checklist is the runbook's post-incident procedure, item by item.
var Checklist = []struct {
	Heading string
	Items   []string
}{
	{"Immediate (within 30 minutes)", []string{
		"Close incident ticket",
		"Post final update to #incident channel",
		"Save all logs and diagnostics",
		"Create post-mortem ticket",
		`Notify team: "incident resolved"`,
	}},
	{"Follow-up (within 24 hours)", []string{
		"Schedule post-mortem meeting",
		"Identify root cause",
		"Document preventive measures",
		"Identify owner for each action item",
		"Create tickets for improvements",
	}},
	{"Prevention (within 1 week)", []string{
		"Implement identified fixes",
		"Update monitoring/alerting",
		"Update runbooks with findings",
		"Conduct team training if needed",
		"Close post-mortem ticket",
	}},
}

const notRecorded = "not recorded"

// Render writes r as Markdown. Text that came from alerts is escaped, so
// it cannot add links, HTML or headings to the document.
func Render(w io.Writer, r Report) error {
	var b strings.Builder
	title := r.Title
	if title == "" {
		title = "INCIDENT: " + r.Service
	}
	fmt.Fprintf(&b, "# Post-mortem: %s\n\n", esc(title))

	b.WriteString("## Summary\n\n")
	fmt.Fprintf(&b, "- **Incident:** `%s`\n", code(r.ID))
	fmt.Fprintf(&b, "- **Service:** %s\n", esc(r.Service))
	fmt.Fprintf(&b, "- **Severity:** peak Sev %d", r.PeakSeverity)
	if r.Severity != 0 && r.Severity != r.PeakSeverity {
		fmt.Fprintf(&b, " (last Sev %d)", r.Severity)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- **Status:** %s\n", esc(r.Status))
	fmt.Fprintf(&b, "- **Start:** %s\n", utc(r.Start))
	if r.End.IsZero() {
		fmt.Fprintf(&b, "- **End:** still open at %s\n", utc(r.Now))
		fmt.Fprintf(&b, "- **Duration:** %s so far\n", minutes(r.Now.Sub(r.Start)))
	} else {
		fmt.Fprintf(&b, "- **End:** %s\n", utc(r.End))
		fmt.Fprintf(&b, "- **Duration:** %s\n", minutes(r.End.Sub(r.Start)))
	}

	b.WriteString("\n## Impact\n\n")
	list(&b, r.Impact, "not measured")

	b.WriteString("\n## Timeline (UTC)\n\n")
	entries := append([]Entry(nil), r.Timeline...)
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	if len(entries) == 0 {
		b.WriteString("- none recorded\n")
	}
	for _, e := range entries {
		fmt.Fprintf(&b, "- %s — %s\n", e.At.UTC().Format("2006-01-02 15:04:05"), esc(oneLine(e.What)))
	}

	b.WriteString("\n## Root cause\n\n")
	if r.RootCause == "" {
		b.WriteString("Not identified.\n")
	} else {
		b.WriteString(esc(oneLine(r.RootCause)) + "\n")
		if len(r.RootCauseEvidence) > 0 {
			b.WriteString("\n")
			list(&b, r.RootCauseEvidence, "")
		}
	}

	b.WriteString("\n## Fix\n\n")
	fix := r.Fix
	if fix == "" {
		fix = notRecorded
	}
	fmt.Fprintf(&b, "- **Applied:** %s\n", esc(oneLine(fix)))
	if r.SuggestedFix != "" {
		fmt.Fprintf(&b, "- **Suggested by the diagnosis:** `%s`\n", code(r.SuggestedFix))
	}

	b.WriteString("\n## Verification\n\n")
	ver := r.Verification
	if ver == "" {
		ver = notRecorded
	}
	b.WriteString(esc(oneLine(ver)) + "\n")

	b.WriteString("\n## Evidence\n\n")
	shown := 0
	for _, l := range r.Evidence {
		if !linkable(l.URL) {
			continue
		}
		fmt.Fprintf(&b, "- [%s](<%s>)\n", esc(oneLine(l.Text)), l.URL)
		shown++
	}
	if shown == 0 {
		b.WriteString("- none recorded\n")
	}

	b.WriteString("\n## Post-incident checklist\n")
	for _, sec := range Checklist {
		fmt.Fprintf(&b, "\n### %s\n\n", sec.Heading)
		for _, item := range sec.Items {
			fmt.Fprintf(&b, "- [ ] %s\n", item) // the runbook's own text
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func list(b *strings.Builder, lines []string, empty string) {
	if len(lines) == 0 && empty != "" {
		b.WriteString("- " + empty + "\n")
	}
	for _, l := range lines {
		b.WriteString("- " + esc(oneLine(l)) + "\n")
	}
}

func utc(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// minutes is the runbook's "[X minutes]", with the exact duration.
func minutes(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%d minutes (%s)", int(d.Minutes()), d.Round(time.Second))
}

// linkable accepts absolute http(s) URLs with a host, and API paths, that
// cannot break out of <…>.
func linkable(raw string) bool {
	if raw == "" || strings.ContainsAny(raw, "<>\n\r \t") {
		return false
	}
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") {
		return true
	}
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "<", `\<`, ">", `\>`,
	"#", `\#`, "|", `\|`, "!", `\!`, "~", `\~`, "&", `&amp;`,
)

// esc makes untrusted text literal in Markdown.
func esc(s string) string { return mdEscaper.Replace(s) }

// code makes text safe inside a single-backtick code span.
func code(s string) string { return strings.ReplaceAll(oneLine(s), "`", "'") }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
