package triage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/webhook"
)

// SignalSource supplies measured signals: Prometheus queries, health probes,
// Kubernetes. See signal.Source.
type SignalSource = signal.Source

// Enricher attaches the runbook's quick diagnosis to an incident: the
// Kubernetes snapshot, dependency probes and the Step 3 verdict. It is
// called once per service and evaluation, for the most severe alert.
type Enricher interface {
	Diagnose(ctx context.Context, ev *signal.Evaluation, a *template.Alert, svc *rules.Service, d severity.Decision) *diagnosis.Diagnosis
}

// Triager decides the service and severity of alerts.
type Triager struct {
	Config  *rules.Config
	Sources []SignalSource
}

// Result is one alert's triage.
type Result struct {
	Service  string
	Profile  *rules.Service
	Decision severity.Decision
	// Failed names the sources that could not answer at all.
	Failed []string
}

// Classify triages one alert at the evaluation's instant. Signals come from
// the alert's annotations, then its labels, then the service profile, then
// each source in order: the first that knows wins.
//
// prev is the alert's previous decision when it was decided before (a
// re-evaluation, or a redelivery with new annotations). Two measurements of
// the error ratio then tell whether the service is recovering when no source
// could; and a value measured before that cannot be measured now (Prometheus
// down, a probe erroring) is carried over, marked so: a source's outage is
// not news about the service, and must not announce a drop.
func (t *Triager) Classify(ctx context.Context, ev *signal.Evaluation, a *template.Alert, prev *severity.Decision) Result {
	return t.classify(ctx, ev, a, prev, t.Sources)
}

// ClassifyStatic triages from the alert and its profile alone, for alerts
// whose decision matters little (resolved ones): no query, no probe.
func (t *Triager) ClassifyStatic(a *template.Alert) Result {
	return t.classify(context.Background(), nil, a, nil, nil)
}

func (t *Triager) classify(ctx context.Context, ev *signal.Evaluation, a *template.Alert, prev *severity.Decision, sources []SignalSource) Result {
	svc := t.Config.MatchService(a.Labels)
	sig := severity.FromAnnotations(a.Annotations, a.Labels).Fill(profileSignals(svc))
	var failed []string
	var notes []string
	for _, src := range sources {
		s, err := src.Signals(ctx, ev, a, svc)
		if err != nil {
			failed = append(failed, src.Name())
			notes = append(notes, fmt.Sprintf("%s unavailable: %v", src.Name(), err))
			continue
		}
		sig = sig.Fill(s)
	}
	thresholds := t.Config.Thresholds(svc)
	if prev != nil {
		if !sig.Recovering.Known {
			sig.Recovering = trend(prev.Signals.ErrorRatio, sig.ErrorRatio, t.Config.Prometheus.Drop(), thresholds.ImpactFloor)
		}
		sig = carryMeasured(sig, prev.Signals, thresholds.ImpactFloor)
	}
	d := severity.Decide(sig, thresholds)
	d.Reasons = append(d.Reasons, notes...)
	if ev != nil {
		// Alerts decided alike in one evaluation share one list of reasons:
		// a storm's alerts would otherwise hold a million copies of the
		// same lines. Nothing changes a decision's reasons in place.
		reasons := d.Reasons
		d.Reasons, _ = signal.Memo(ev, "reasons\x00"+strings.Join(reasons, "\x00"), func() ([]string, error) { return reasons, nil })
	}
	return Result{
		Service:  ServiceName(a.Labels, svc),
		Profile:  svc,
		Decision: d,
		Failed:   failed,
	}
}

// trend compares two measurements of the error ratio from evaluations of an
// open incident: fallen by at least drop → recovering; otherwise staying
// broken (rule 8). Only fresh measurements count: an annotation says the same
// thing every time and proves nothing about a trend. Neither reaching the
// impact floor, there is no impact to recover from: a steady 0.2% is noise,
// not a service staying broken.
func trend(before, now severity.Float, drop, floor float64) severity.Bool {
	if !measured(before) || !measured(now) || !(before.Value > 0) {
		return severity.Bool{}
	}
	if peak := max(before.Value, now.Value); peak < floor {
		return severity.Bool{Note: fmt.Sprintf("re-evaluation: no impact to recover from (error ratio %s → %s, below the %s impact floor)",
			pct(before.Value), pct(now.Value), pct(floor))}
	}
	note := fmt.Sprintf("error ratio %s → %s between evaluations", pct(before.Value), pct(now.Value))
	return severity.Bool{
		Known:  true,
		Value:  now.Value <= before.Value*(1-drop),
		Source: "re-evaluation",
		Note:   note,
	}
}

// carryMeasured keeps, for each signal unknown now, the value a measuring
// source gave before. Kubernetes is not carried: its reachable=false turns
// unknown when pods become available again, which is the recovery itself.
// The latency factor is derived again from the carried p99 and baseline.
// Recovering is not carried while the error ratio is below the impact floor:
// a trend that answers nothing there ("no impact to recover from") is a
// measurement, not a source's outage, and carrying an earlier "staying
// broken" would keep steady noise at Sev 2 for ever.
func carryMeasured(now, prev severity.Signals, floor float64) severity.Signals {
	carry := func(cur, old severity.Float) severity.Float {
		if cur.Known || !old.Known || !measuring(old.Source) {
			return cur
		}
		old.Note = carriedNote(cur.Note)
		return old
	}
	carryBool := func(cur, old severity.Bool) severity.Bool {
		if cur.Known || !old.Known || !measuring(old.Source) {
			return cur
		}
		old.Note = carriedNote(cur.Note)
		return old
	}
	now.Reachable = carryBool(now.Reachable, prev.Reachable)
	now.ErrorRatio = carry(now.ErrorRatio, prev.ErrorRatio)
	now.P99Latency = carry(now.P99Latency, prev.P99Latency)
	now.LatencyBaseline = carry(now.LatencyBaseline, prev.LatencyBaseline)
	if er := now.ErrorRatio; !er.Known || er.Value >= floor {
		now.Recovering = carryBool(now.Recovering, prev.Recovering)
	}
	return now
}

func measuring(source string) bool {
	switch source {
	case "prometheus", "prometheus trend", "probe", "re-evaluation":
		return true
	}
	return false
}

func carriedNote(why string) string {
	if why == "" {
		return "last measured value: not measurable now"
	}
	return "last measured value; now: " + why
}

// measured reports whether a signal came from a source that measures afresh
// at each evaluation.
func measured(f severity.Float) bool {
	return f.Known && f.Source == "prometheus"
}

func pct(r float64) string { return fmt.Sprintf("%.3g%%", r*100) }

// ServiceName is the profile's name, else the alert's service, job or
// namespace label: the unit incidents are grouped by. "" when the alert
// names none: it is then grouped by the Alertmanager group that sent it
// (GroupUnit), never into a catch-all.
func ServiceName(labels map[string]string, svc *rules.Service) string {
	if svc != nil {
		return svc.Name
	}
	for _, l := range []string{"service", "job", "namespace"} {
		if v := labels[l]; v != "" {
			return v
		}
	}
	return ""
}

// GroupUnit groups alerts that name no service by the Alertmanager group
// they were sent in (externalURL + groupKey), and names the incident after
// what the group has in common: its alertname, else its group labels.
func GroupUnit(msg *webhook.Message, a *template.Alert) (service, unit string) {
	unit = "group\x00" + msg.ExternalURL + "\x00" + msg.GroupKey
	switch {
	case msg.CommonLabels["alertname"] != "":
		return msg.CommonLabels["alertname"], unit
	case len(msg.GroupLabels) > 0:
		return strings.Join(msg.GroupLabels.Values(), "-"), unit
	case a.Labels["alertname"] != "":
		return a.Labels["alertname"], unit
	}
	return "alertmanager-group", unit
}

func profileSignals(svc *rules.Service) severity.Signals {
	var s severity.Signals
	if svc == nil {
		return s
	}
	if svc.LatencyBaseline > 0 {
		s.LatencyBaseline = severity.Float{Known: true, Value: time.Duration(svc.LatencyBaseline).Seconds(), Source: "profile"}
	}
	if svc.DataLoss != nil {
		s.DataLoss = severity.Bool{Known: true, Value: *svc.DataLoss, Source: "profile"}
	}
	if svc.Impact != "" {
		s.ImpactNone = severity.Bool{Known: true, Value: svc.Impact == "none", Source: "profile"}
	}
	return s
}
