package diagnosis

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amtriage/amtriage/severity"

	"github.com/amtriage/amtriage/internal/clip"
)

// DefaultRolloutWindow is how long before the alert a rollout still counts
// as "recent" (the runbook's "likely recent deployment").
const DefaultRolloutWindow = 30 * time.Minute

// Limits of a diagnosis: a summary is one line a responder reads first, the
// evidence fits a Slack section.
const (
	MaxSummary  = 200 // runes
	MaxEvidence = 8   // lines
	maxLine     = 300 // runes per evidence line, and a scheduler message
)

// Input is everything Diagnose looks at.
type Input struct {
	Snapshot *Snapshot // nil: no cluster snapshot
	// SkipReason says why Snapshot is nil ("kubernetes not configured",
	// "informer caches not synced").
	SkipReason string
	// At is the evaluation instant; a rollout after it is ignored.
	At time.Time
	// AlertStart is the alert's startsAt (the earliest of the incident).
	AlertStart time.Time
	// RolloutWindow: a rollout this long before AlertStart is recent;
	// DefaultRolloutWindow when 0.
	RolloutWindow time.Duration
	// Labels and Annotations of the alert.
	Labels, Annotations map[string]string
	// Service is the service's own health probe, nil if none.
	Service *Probe
	// Dependencies are the probes of the profiles the service depends on.
	Dependencies []Probe
	// Signals are the measured signals after triage.
	Signals severity.Signals
}

// Diagnose is the runbook's Step 3 ("escalate decision") as a pure
// function of its input: no I/O, no clock, deterministic output.
//
// The first category that holds decides:
//
//  1. Infrastructure: a dependency probe down, crashed or hung; Warning
//     events of network, storage or node trouble (sandbox, mount, attach,
//     NodeNotReady, or "connection refused", "dial tcp", "i/o timeout"…
//     outside the kubelet's probes of the pod itself and image pulls); alert
//     labels that name a database or the network (alertname PostgresDown,
//     tier=db); log lines of a refused or timed-out connection to a
//     database; pods in phase Unknown (node unreachable). It comes first
//     because the other categories' symptoms follow from it: an app whose
//     database is down crash-loops, and rolling it back only loses the
//     release while the outage goes on. A recent rollout is still named in
//     the evidence, with the undo command, in case the database is fine.
//  2. Without a snapshot, Skipped with the reason.
//  3. OOMKilled (the last termination of a pod that is not ready): the
//     runbook's resource issue, a memory limit, so Resources — "raise the
//     memory limit or find the leak". It outranks the crash loop it
//     produces because the fix is the limit or the leak, not a ConfigMap;
//     when a recent rollout exists it is the likeliest leak, so the undo
//     command is set as for a bad deployment. When pods fail for other
//     start reasons too, the larger group decides.
//  4. Config or bad deployment: a pod waiting with CrashLoopBackOff,
//     CreateContainerConfigError, CreateContainerError, ImagePullBackOff,
//     ErrImagePull, InvalidImageName or RunContainerError, or a FailedMount
//     of a ConfigMap or Secret that does not exist. With a recent rollout
//     and a previous revision, Command is the exact `kubectl rollout undo`.
//  5. Resources: pods Pending as Unschedulable, FailedScheduling events
//     (unless every pod is running and ready: then the event is stale), or
//     a ReplicaSet's FailedCreate for an exceeded quota. The scheduler's
//     message is quoted verbatim.
//  6. Application: most pods running and ready, yet the service fails (an
//     error ratio ≥ 1%, its probe crashed or hung, or it is unreachable).
//  7. What changed: nothing clear; the last rollouts are summarised.
//
// A rollout is recent when it was created within RolloutWindow before
// AlertStart, or after AlertStart but not after At: a rollout during the
// incident is as suspect as one just before it (it may be what made an
// error spike a crash loop), and undoing it restores what ran before. One
// after At is a clock-skew artefact and ignored. When the previous revision
// was itself recent, the evidence names the one before as the fallback.
func Diagnose(in Input) Diagnosis {
	if in.RolloutWindow <= 0 {
		in.RolloutWindow = DefaultRolloutWindow
	}
	f := gather(in)
	var d Diagnosis
	switch {
	case len(f.infra) > 0:
		d = f.infrastructure()
	case f.s == nil:
		d = f.skipped()
	case len(f.oom) > 0 && len(f.oom) >= len(f.config):
		d = f.outOfMemory()
	case len(f.config) > 0 || len(f.configMounts) > 0:
		d = f.configOrDeployment()
	case len(f.unsched) > 0 || len(f.schedEvents) > 0:
		d = f.resources()
	case f.appFailing():
		d = f.application()
	default:
		d = f.whatChanged()
	}
	if d.Category != Infrastructure {
		d.Rollback = f.rollbackTarget()
	}
	d.Summary = clip.Runes(clean(d.Summary), MaxSummary)
	d.Evidence = f.finish(d.Evidence)
	d.Snapshot = in.Snapshot
	return d
}

// sign is one piece of infrastructure evidence.
type sign struct {
	short string // for the summary
	line  string // for the evidence
}

// facts are what gather read from the input, for the category builders.
type facts struct {
	in  Input
	s   *Snapshot
	ref time.Time // the alert's start, or At when unknown

	total, ready int // pods in all, running and ready
	pending      int
	config       []Pod   // waiting with a config reason (not OOM)
	oom          []Pod   // not ready, last terminated OOMKilled
	unsched      []Pod   // Pending, Unschedulable
	schedEvents  []Event // FailedScheduling, FailedCreate for a quota
	configMounts []Event // FailedMount of a missing ConfigMap/Secret
	infra        []sign

	recent, prev *Rollout // the newest rollout when recent, and the one before
	unavailable  string   // "0/3 pods available…" when so

	failing      string   // why the service fails: "30% of requests failing"
	failingLines []string // the evidence of it
}

func gather(in Input) *facts {
	f := &facts{in: in, s: in.Snapshot, ref: in.AlertStart}
	if f.ref.IsZero() {
		f.ref = in.At
	}
	f.dependencySigns()
	f.alertSigns()
	f.serviceFailing()
	s := f.s
	if s == nil {
		return f
	}
	f.total = max(s.PodsTotal, len(s.Pods))
	var unknown []Pod
	podsReady := 0
	for _, p := range s.Pods {
		if p.Phase == "Running" && p.Ready {
			podsReady++
		}
		if p.Phase == "Pending" {
			f.pending++
		}
		oom := p.Reason == "OOMKilled" || strings.HasPrefix(p.LastTerminated, "OOMKilled")
		switch {
		case oom && !p.Ready:
			f.oom = append(f.oom, p)
		case configReasons[p.Reason]:
			f.config = append(f.config, p)
		case p.Phase == "Pending" && p.Reason == "Unschedulable":
			f.unsched = append(f.unsched, p)
		case p.Phase == "Unknown" || p.Reason == "NodeLost":
			unknown = append(unknown, p)
		}
	}
	// Pods lists at most MaxPods, the most broken first: the deployment's
	// ready count covers the rest.
	f.ready = podsReady
	if d := s.Deployment; d != nil {
		if f.total == 0 {
			f.total = int(d.Desired)
		}
		if r := int(d.Ready); r > f.ready && len(s.Pods) < f.total {
			f.ready = min(r, podsReady+f.total-len(s.Pods))
		}
		if d.Desired > 0 && d.Available == 0 {
			f.unavailable = fmt.Sprintf("0/%d pods available (deployment %s: desired %d, updated %d, ready %d)",
				d.Desired, d.Name, d.Desired, d.Updated, d.Ready)
		}
	}
	allReady := len(s.Pods) > 0 && podsReady == len(s.Pods)
	f.logSigns()
	f.eventSigns(allReady)
	if len(unknown) > 0 {
		short := "node " + orDash(unknown[0].Node) + " unreachable"
		for _, p := range unknown[1:] {
			if p.Node != unknown[0].Node {
				short = "nodes unreachable"
			}
		}
		f.infra = append(f.infra, sign{
			short: short,
			line:  fmt.Sprintf("pod %s phase %s on node %s: its node stopped reporting", unknown[0].Name, unknown[0].Phase, orDash(unknown[0].Node)),
		})
	}
	f.rollouts()
	return f
}

// dependencySigns: a dependency that is down, crashed or hung. "error"
// means the probe itself could not run and says nothing about the target.
func (f *facts) dependencySigns() {
	deps := append([]Probe(nil), f.in.Dependencies...)
	sort.SliceStable(deps, func(i, j int) bool { return deps[i].Target < deps[j].Target })
	for _, p := range deps {
		switch p.Outcome {
		case "down", "crashed", "hung":
		default:
			continue
		}
		line := fmt.Sprintf("dependency %s: %s", p.Target, p.Outcome)
		if p.Detail != "" {
			line += " — " + p.Detail
		}
		f.infra = append(f.infra, sign{short: fmt.Sprintf("dependency %s %s", clip.Runes(p.Target, 40), p.Outcome), line: line})
	}
}

// alertSigns: the alert's name or component labels name a database or the
// network; a summary annotation quotes a network failure.
func (f *facts) alertSigns() {
	all := append(append([]string(nil), dbWords...), netWords...)
	n := 0
	add := func(s sign) {
		if n < 2 {
			f.infra = append(f.infra, s)
			n++
		}
	}
	if name := f.in.Labels["alertname"]; name != "" {
		if w := findWord(name, all); w != "" {
			add(sign{
				short: fmt.Sprintf("alert %s names %s", clip.Runes(name, 50), wordKind(w)),
				line:  fmt.Sprintf("alert label alertname=%q names %s", name, wordKind(w)),
			})
		}
	}
	for _, src := range []struct {
		kind string
		m    map[string]string
	}{{"label", f.in.Labels}, {"annotation", f.in.Annotations}} {
		for _, k := range infraLabelKeys {
			v, ok := src.m[k]
			if !ok {
				continue
			}
			if w := findWord(v, all); w != "" {
				add(sign{
					short: fmt.Sprintf("alert %s=%s names %s", k, clip.Runes(v, 30), wordKind(w)),
					line:  fmt.Sprintf("alert %s %s=%q names %s", src.kind, k, v, wordKind(w)),
				})
			}
		}
	}
	for _, k := range textAnnotationKeys {
		v := f.in.Annotations[k]
		if p := findPattern(v, netPatterns); p != "" {
			add(sign{
				short: fmt.Sprintf("alert %s: %s", k, p),
				line:  fmt.Sprintf("alert annotation %s shows a network failure (%s): %s", k, p, clean(v)),
			})
		}
	}
}

// logSigns: a log line of the failing pod with a refused or timed-out
// connection to a database.
func (f *facts) logSigns() {
	l := f.s.Logs
	if l == nil {
		return
	}
	for _, line := range l.Lines {
		if p, ok := logConnFailure(line); ok {
			f.infra = append(f.infra, sign{
				short: fmt.Sprintf("logs show %s to a database", p),
				line:  logPrefix(l) + clean(line),
			})
			return
		}
	}
}

// eventSigns sorts the Warning events: network/storage/node trouble,
// scheduling and quota failures, missing ConfigMaps and Secrets.
func (f *facts) eventSigns(allReady bool) {
	seen := map[string]bool{}
	for _, e := range f.s.Events {
		switch {
		case e.Reason == "FailedScheduling":
			if !allReady {
				f.schedEvents = append(f.schedEvents, e)
			}
			continue
		case e.Reason == "FailedCreate" && strings.Contains(lowerASCII(e.Message), "exceeded quota"):
			f.schedEvents = append(f.schedEvents, e)
			continue
		case isMissingConfigMount(e):
			f.configMounts = append(f.configMounts, e)
			continue
		}
		// Sandbox, mount and node events are transient while pods start:
		// with every pod running and ready they are history, not a cause.
		if kind, ok := infraEventReasons[e.Reason]; ok {
			if !allReady && !seen[e.Reason] {
				seen[e.Reason] = true
				f.infra = append(f.infra, sign{short: fmt.Sprintf("%s events (%s)", e.Reason, kind), line: eventLine(e)})
			}
			continue
		}
		if isProbeEvent(e) || isImagePullEvent(e) {
			continue
		}
		if p := findPattern(e.Message, netPatterns); p != "" && !seen["net:"+p] {
			seen["net:"+p] = true
			f.infra = append(f.infra, sign{short: "events show " + p, line: eventLine(e)})
		}
	}
}

// serviceFailing: the measured failure of the service itself.
func (f *facts) serviceFailing() {
	sig := f.in.Signals
	if er := sig.ErrorRatio; er.Known && er.Value >= 0.01 {
		f.setFailing(pct(er.Value)+" of requests failing", fmt.Sprintf("error ratio %s%s", pct(er.Value), source(er.Source)))
	}
	if p := f.in.Service; p != nil && (p.Outcome == "crashed" || p.Outcome == "hung") {
		line := fmt.Sprintf("service probe %s: %s", p.Target, p.Outcome)
		if p.Detail != "" {
			line += " — " + p.Detail
		}
		f.setFailing("its health probe "+p.Outcome, line)
	}
	if r := sig.Reachable; r.Known && !r.Value {
		line := "service unreachable" + source(r.Source)
		if r.Note != "" {
			line += ": " + r.Note
		}
		f.setFailing("it is unreachable", line)
	}
}

func (f *facts) setFailing(phrase, line string) {
	if f.failing == "" {
		f.failing = phrase
	}
	f.failingLines = append(f.failingLines, line)
}

// appFailing: most pods running and ready, yet the service fails.
func (f *facts) appFailing() bool {
	return f.s != nil && f.total > 0 && f.ready*2 > f.total && f.failing != ""
}

// rollouts finds the recent rollout and its previous revision.
func (f *facts) rollouts() {
	rs := f.s.Rollouts
	if len(rs) == 0 || !f.isRecent(rs[0].Created) {
		return
	}
	f.recent = &rs[0]
	if len(rs) > 1 && rs[1].Revision > 0 && rs[1].Revision != rs[0].Revision {
		f.prev = &rs[1]
	}
}

func (f *facts) isRecent(t time.Time) bool {
	if t.IsZero() || f.ref.IsZero() {
		return false
	}
	if t.Before(f.ref.Add(-f.in.RolloutWindow)) {
		return false
	}
	return f.in.At.IsZero() || !t.After(f.in.At)
}

// rollbackCommand is the exact undo to the previous revision, or "".
func (f *facts) rollbackCommand() string {
	if f.recent == nil || f.prev == nil {
		return ""
	}
	name := ""
	if d := f.s.Deployment; d != nil {
		name = d.Name
	} else if n, ok := strings.CutPrefix(f.s.Workload, "deployment/"); ok {
		name = n
	}
	ns := f.s.Namespace
	if !isDNSName(name) || !isDNSName(ns) {
		return ""
	}
	return fmt.Sprintf("kubectl rollout undo deployment/%s -n %s --to-revision=%d", name, ns, f.prev.Revision)
}

// rollbackTarget is rollbackCommand's undo as data, or nil.
func (f *facts) rollbackTarget() *Rollback {
	if f.rollbackCommand() == "" {
		return nil
	}
	name := f.s.Workload
	if d := f.s.Deployment; d != nil {
		name = d.Name
	} else {
		name = strings.TrimPrefix(name, "deployment/")
	}
	return &Rollback{Namespace: f.s.Namespace, Deployment: name, From: f.recent.Revision, To: f.prev.Revision}
}

// isDNSName: what Kubernetes allows in names, so that the command can be
// pasted as it is.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLower(c) && !isDigit(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// ---- the categories ----

func (f *facts) infrastructure() Diagnosis {
	var shorts []string
	for i, s := range f.infra {
		if i == 2 {
			break
		}
		shorts = append(shorts, s.short)
	}
	sum := "infrastructure: " + strings.Join(shorts, "; ")
	if bad := f.badPods(); bad != "" {
		sum += "; " + bad
	}
	sum = withAdvice(sum, " — check connectivity and credentials, escalate")
	var ev []string
	for i, s := range f.infra {
		if i == 4 {
			break
		}
		ev = append(ev, s.line)
	}
	if f.s == nil {
		ev = append(ev, "no Kubernetes diagnosis: "+f.skipReason())
	} else {
		ev = append(ev, f.firstBadPodLine())
		if cmd := f.rollbackCommand(); cmd != "" {
			ev = append(ev, fmt.Sprintf("%s; if the database and network are healthy, suspect it: %s",
				f.rolloutPhrase(*f.recent), cmd))
		} else if f.recent != nil {
			ev = append(ev, f.rolloutLine(*f.recent))
		}
	}
	return Diagnosis{Category: Infrastructure, Summary: sum, Evidence: ev}
}

func (f *facts) skipped() Diagnosis {
	d := Diagnosis{Category: Skipped, Summary: "no Kubernetes diagnosis: " + f.skipReason()}
	d.Evidence = append(d.Evidence, f.failingLines...)
	if p := f.in.Service; p != nil && p.Outcome != "crashed" && p.Outcome != "hung" {
		line := fmt.Sprintf("service probe %s: %s", p.Target, p.Outcome)
		if p.Detail != "" {
			line += " — " + p.Detail
		}
		d.Evidence = append(d.Evidence, line)
	}
	return d
}

func (f *facts) skipReason() string {
	if r := clean(f.in.SkipReason); r != "" {
		return r
	}
	return "no cluster snapshot"
}

func (f *facts) outOfMemory() Diagnosis {
	sum := fmt.Sprintf("resources: %d/%d pods OOMKilled — raise the memory limit or find the leak", len(f.oom), f.total)
	ev := []string{podLine(f.oom[0]), podNames(f.oom, "OOMKilled")}
	d := Diagnosis{Category: Resources}
	if f.recent != nil {
		sum += "; " + f.rolloutPhrase(*f.recent)
		ev = append(ev, f.rolloutLine(*f.recent))
		if d.Command = f.rollbackCommand(); d.Command != "" {
			ev = append(ev, "the new revision is the likeliest leak: roll back, then raise the limit if it persists")
		}
	}
	ev = append(ev, f.logLines(2)...)
	d.Summary, d.Evidence = sum, ev
	return d
}

func (f *facts) configOrDeployment() Diagnosis {
	var state string
	if len(f.config) > 0 {
		state = reasonCounts(f.config, f.total)
	} else {
		state = "pods cannot start: " + missingConfig(f.configMounts[0].Message)
	}
	sum := "config or bad deployment: " + state
	var ev []string
	if len(f.config) > 0 {
		ev = append(ev, podLine(f.config[0]))
	}
	for i, e := range f.configMounts {
		if i == 2 {
			break
		}
		ev = append(ev, eventLine(e))
	}
	d := Diagnosis{Category: ConfigOrDeployment}
	if r := f.recent; r != nil {
		sum += "; " + f.rolloutPhrase(*r)
		ev = append(ev, f.rolloutLine(*r))
		if rsName := r.ReplicaSet; rsName != "" && len(f.config) > 0 && allOnReplicaSet(f.config, rsName) {
			ev = append(ev, fmt.Sprintf("the failing pods run the newest ReplicaSet %s", rsName))
		}
		d.Command = f.rollbackCommand()
		switch {
		case f.prev == nil:
			sum += ", no previous revision to roll back to"
		case d.Command != "":
			ev = append(ev, f.prevLine())
		}
	} else {
		advice := "config issue likely, check ConfigMaps/Secrets"
		if len(f.config) > 0 && allImageReasons(f.config) {
			advice = "image issue likely, check the image name and registry access"
		}
		sum += fmt.Sprintf("; no rollout in the %s before the alert — %s", fmtDur(f.in.RolloutWindow), advice)
		if len(f.s.Rollouts) > 0 {
			ev = append(ev, "last "+f.rolloutLine(f.s.Rollouts[0]))
		}
	}
	ev = append(ev, f.logLines(2)...)
	d.Summary, d.Evidence = sum, ev
	return d
}

func (f *facts) resources() Diagnosis {
	var state, msg, line string
	switch {
	case len(f.unsched) > 0:
		state = fmt.Sprintf("%d/%d pods Pending, unschedulable", len(f.unsched), f.total)
		msg = f.unsched[0].Message
		if msg == "" {
			for _, e := range f.schedEvents {
				if e.Reason == "FailedScheduling" {
					msg = e.Message
					break
				}
			}
		}
		line = "scheduler: " + clip.Runes(clean(msg), maxLine)
	default:
		e := f.schedEvents[0]
		msg = e.Message
		if e.Reason == "FailedScheduling" {
			state = fmt.Sprintf("%d/%d pods Pending, FailedScheduling", f.pending, f.total)
			line = "scheduler: " + clip.Runes(clean(msg), maxLine)
		} else {
			state = fmt.Sprintf("%s on %s", e.Reason, e.Object)
			line = eventLine(e)
		}
	}
	sum := "resources: " + state
	if m := clean(msg); m != "" {
		sum += ": " + m
	}
	advice := " — check node capacity"
	if len(f.unsched) == 0 && f.schedEvents[0].Reason != "FailedScheduling" {
		advice = " — check the namespace quota"
	}
	sum = withAdvice(clip.Runes(sum, MaxSummary), advice)
	ev := []string{line}
	if len(f.unsched) > 0 {
		ev = append(ev, podNames(f.unsched, "Pending"))
	}
	for i, e := range f.schedEvents {
		if i == 2 {
			break
		}
		ev = append(ev, eventLine(e))
	}
	if f.recent != nil {
		ev = append(ev, f.rolloutLine(*f.recent))
	}
	return Diagnosis{Category: Resources, Summary: sum, Evidence: ev}
}

func (f *facts) application() Diagnosis {
	sum := fmt.Sprintf("application: %d/%d pods running and ready but %s — check application logs", f.ready, f.total, f.failing)
	ev := append([]string(nil), f.failingLines...)
	ev = append(ev, f.logLines(3)...)
	for _, p := range f.s.Pods {
		if p.Restarts > 0 && len(ev) < MaxEvidence-2 {
			ev = append(ev, podLine(p))
		}
	}
	if r := f.recent; r != nil {
		line := f.rolloutLine(*r)
		if cmd := f.rollbackCommand(); cmd != "" {
			line += "; to roll back: " + cmd
		}
		ev = append(ev, line)
	}
	return Diagnosis{Category: Application, Summary: sum, Evidence: ev}
}

func (f *facts) whatChanged() Diagnosis {
	var parts []string
	if f.total > 0 {
		if bad := f.badPods(); bad != "" {
			parts = append(parts, bad)
		} else {
			parts = append(parts, fmt.Sprintf("%d/%d pods running and ready", f.ready, f.total))
		}
	} else {
		parts = append(parts, "no pods found for "+orDash(f.s.Workload))
	}
	if rs := f.s.Rollouts; len(rs) > 0 {
		parts = append(parts, "last rollout "+f.rolloutPhrase(rs[0]))
	} else {
		parts = append(parts, "no rollout history")
	}
	sum := withAdvice("what changed recently: nothing clear; "+strings.Join(parts, "; "), " — check infrastructure changes")
	var ev []string
	for _, r := range f.s.Rollouts {
		ev = append(ev, f.rolloutLine(r))
	}
	ev = append(ev, f.firstBadPodLine())
	ev = append(ev, f.failingLines...)
	for i, e := range f.s.Events {
		if i == 2 {
			break
		}
		ev = append(ev, eventLine(e))
	}
	ev = append(ev, f.logLines(2)...)
	return Diagnosis{Category: WhatChanged, Summary: sum, Evidence: ev}
}

// finish cleans and caps the evidence. "0/N pods available" is always kept,
// second (after the most telling line); the snapshot's gaps come last if
// there is room.
func (f *facts) finish(ev []string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		s = clip.Runes(clean(s), maxLine)
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range ev {
		add(s)
	}
	if u := f.unavailable; u != "" && !seen[u] {
		seen[u] = true
		out = append(out[:min(1, len(out))], append([]string{u}, out[min(1, len(out)):]...)...)
	}
	if f.s != nil {
		for _, p := range f.s.Partial {
			if len(out) < MaxEvidence {
				add("snapshot incomplete: " + p)
			}
		}
	}
	if len(out) > MaxEvidence {
		out = out[:MaxEvidence]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ---- phrases ----

// rolloutPhrase: "revision 7 (api:1.4.2 → api:1.5.0) rolled out 12m before the alert".
func (f *facts) rolloutPhrase(r Rollout) string {
	s := fmt.Sprintf("revision %d", r.Revision)
	if c := shortChange(r.Change); c != "" {
		s += " (" + c + ")"
	}
	return s + " rolled out " + f.rel(r.Created)
}

// rolloutLine: the evidence of one rollout, with the full image change.
func (f *facts) rolloutLine(r Rollout) string {
	s := fmt.Sprintf("revision %d", r.Revision)
	if r.ReplicaSet != "" {
		s += fmt.Sprintf(" (ReplicaSet %s, %d replicas)", r.ReplicaSet, r.Replicas)
	}
	s += " rolled out " + f.rel(r.Created)
	switch {
	case r.Change != "":
		s += ": " + r.Change
	case len(r.Images) > 0:
		s += ", images " + strings.Join(r.Images, ", ")
	}
	return s
}

func (f *facts) prevLine() string {
	s := fmt.Sprintf("roll back to revision %d", f.prev.Revision)
	if f.prev.ReplicaSet != "" {
		s += " (ReplicaSet " + f.prev.ReplicaSet + ")"
	}
	s += ", created " + f.rel(f.prev.Created)
	if len(f.prev.Images) > 0 {
		s += ", images " + strings.Join(f.prev.Images, ", ")
	}
	// The previous revision may be a failed fix of the same incident.
	if f.isRecent(f.prev.Created) && len(f.s.Rollouts) > 2 && f.s.Rollouts[2].Revision > 0 {
		s += fmt.Sprintf("; it is recent too: if it fails as well, use --to-revision=%d", f.s.Rollouts[2].Revision)
	}
	return s
}

// rel places t relative to the alert: "12m before the alert".
func (f *facts) rel(t time.Time) string {
	if t.IsZero() || f.ref.IsZero() {
		return "at an unknown time"
	}
	d := f.ref.Sub(t)
	switch {
	case d > 0:
		return fmtDur(d) + " before the alert"
	case d < 0:
		return fmtDur(-d) + " after the alert started"
	}
	return "as the alert started"
}

// badPods: "3/3 pods CrashLoopBackOff" over the pods that are not ready.
func (f *facts) badPods() string {
	if f.s == nil {
		return ""
	}
	var bad []Pod
	for _, p := range f.s.Pods {
		if !(p.Phase == "Running" && p.Ready) && p.Phase != "Succeeded" {
			bad = append(bad, p)
		}
	}
	return reasonCounts(bad, f.total)
}

func (f *facts) firstBadPodLine() string {
	if f.s == nil {
		return ""
	}
	for _, p := range f.s.Pods {
		if !(p.Phase == "Running" && p.Ready) && p.Phase != "Succeeded" {
			return podLine(p)
		}
	}
	return ""
}

// logLines: the last n log lines of the failing pod.
func (f *facts) logLines(n int) []string {
	l := f.s.Logs
	if l == nil || len(l.Lines) == 0 {
		return nil
	}
	var out []string
	for _, line := range l.Lines[max(0, len(l.Lines)-n):] {
		out = append(out, logPrefix(l)+clean(line))
	}
	return out
}

func logPrefix(l *Logs) string {
	s := fmt.Sprintf("log %s/%s", l.Pod, l.Container)
	if l.Previous {
		s += " (previous container)"
	}
	return s + ": "
}

// reasonCounts groups pods by reason: "2/3 pods CrashLoopBackOff, 1/3 ImagePullBackOff".
func reasonCounts(pods []Pod, total int) string {
	if len(pods) == 0 {
		return ""
	}
	counts := map[string]int{}
	var labels []string
	for _, p := range pods {
		l := p.Reason
		switch {
		case l != "":
		case p.Phase == "Running":
			l = "not ready"
		case p.Phase != "":
			l = p.Phase
		default:
			l = "not ready"
		}
		if counts[l] == 0 {
			labels = append(labels, l)
		}
		counts[l]++
	}
	sort.Slice(labels, func(i, j int) bool {
		if counts[labels[i]] != counts[labels[j]] {
			return counts[labels[i]] > counts[labels[j]]
		}
		return labels[i] < labels[j]
	})
	total = max(total, len(pods))
	parts := make([]string, len(labels))
	for i, l := range labels {
		if i == 0 {
			parts[i] = fmt.Sprintf("%d/%d pods %s", counts[l], total, l)
		} else {
			parts[i] = fmt.Sprintf("%d/%d %s", counts[l], total, l)
		}
	}
	return strings.Join(parts, ", ")
}

// podLine: "pod api-1 (container api): CrashLoopBackOff, 5 restarts, last Error (exit 1): back-off…".
func podLine(p Pod) string {
	s := "pod " + p.Name
	if p.Container != "" {
		s += " (container " + p.Container + ")"
	}
	var parts []string
	switch {
	case p.Reason != "":
		parts = append(parts, p.Reason)
	case p.Phase == "Running" && !p.Ready:
		parts = append(parts, "Running, not ready")
	case p.Phase != "":
		parts = append(parts, p.Phase)
	}
	if p.Restarts > 0 {
		parts = append(parts, fmt.Sprintf("%d restarts", p.Restarts))
	}
	if p.LastTerminated != "" {
		parts = append(parts, "last "+p.LastTerminated)
	}
	s += ": " + strings.Join(parts, ", ")
	if m := clean(p.Message); m != "" {
		s += ": " + m
	}
	return s
}

// podNames: "3 pods OOMKilled: api-1, api-2, api-3".
func podNames(pods []Pod, what string) string {
	names := make([]string, 0, 4)
	for i, p := range pods {
		if i == 3 {
			names = append(names, fmt.Sprintf("+%d more", len(pods)-3))
			break
		}
		names = append(names, p.Name)
	}
	return fmt.Sprintf("%d pods %s: %s", len(pods), what, strings.Join(names, ", "))
}

// eventLine: "event FailedMount on Pod/api-1 (×3): MountVolume.SetUp failed…".
func eventLine(e Event) string {
	s := "event " + e.Reason
	if e.Object != "" {
		s += " on " + e.Object
	}
	if e.Count > 1 {
		s += fmt.Sprintf(" (×%d)", e.Count)
	}
	return s + ": " + clean(e.Message)
}

// missingConfig: `configmap "api-config" not found` out of a FailedMount
// message, else the message clipped.
func missingConfig(msg string) string {
	msg = clean(msg)
	low := lowerASCII(msg)
	for _, k := range []string{"configmap ", "secret "} {
		if i := strings.LastIndex(low, k); i >= 0 && strings.Contains(low[i:], "not found") {
			return clip.Runes(msg[i:], 80)
		}
	}
	return clip.Runes(msg, 80)
}

// allImageReasons: every pod fails to get its image, not its config.
func allImageReasons(pods []Pod) bool {
	for _, p := range pods {
		switch p.Reason {
		case "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
		default:
			return false
		}
	}
	return true
}

func allOnReplicaSet(pods []Pod, rs string) bool {
	for _, p := range pods {
		if p.ReplicaSet != rs {
			return false
		}
	}
	return true
}

// shortChange shortens image references to their last path element:
// "api: shop/api:1.4.2 → shop/api:1.5.0" becomes "api:1.4.2 → api:1.5.0".
func shortChange(c string) string {
	c = clean(c)
	if c == "" {
		return ""
	}
	toks := strings.Fields(c)
	// Drop a lone container-name prefix ("api:") of a single change.
	if strings.Count(c, "→") == 1 && len(toks) > 1 && strings.HasSuffix(toks[0], ":") && !strings.Contains(toks[0], "/") {
		toks = toks[1:]
	}
	for i, t := range toks {
		trail := ""
		for len(t) > 0 && strings.ContainsAny(t[len(t)-1:], ",;") {
			trail = t[len(t)-1:] + trail
			t = t[:len(t)-1]
		}
		if j := strings.LastIndex(t, "/"); j >= 0 && j < len(t)-1 {
			t = t[j+1:]
		}
		if j := strings.Index(t, "@sha256:"); j >= 0 && len(t) > j+8+12 {
			t = t[:j+8+12]
		}
		toks[i] = t + trail
	}
	return clip.Runes(strings.Join(toks, " "), 100)
}

// withAdvice appends advice to a summary if the whole still fits.
func withAdvice(sum, advice string) string {
	if len([]rune(sum))+len([]rune(advice)) <= MaxSummary {
		return sum + advice
	}
	return sum
}

// fmtDur renders a duration as a responder says it: "45s", "12m", "2h5m",
// "3d4h".
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	if d < time.Minute {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	m := int64(d / time.Minute)
	h, m := m/60, m%60
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case h >= 48:
		if h%24 == 0 {
			return fmt.Sprintf("%dd", h/24)
		}
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

// pct renders a ratio as a percentage: 0.3 → "30%", 0.025 → "2.5%".
func pct(v float64) string {
	s := fmt.Sprintf("%.1f", v*100)
	s = strings.TrimSuffix(s, ".0")
	return s + "%"
}

func source(s string) string {
	if s == "" {
		return ""
	}
	return " [" + s + "]"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
