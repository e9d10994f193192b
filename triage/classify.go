package triage

import (
	"context"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

// SignalSource supplies measured signals for an alert: Prometheus queries,
// health probes, Kubernetes. A source that cannot tell leaves a signal unknown
// and says why in its Note; an error makes all of its signals unknown.
type SignalSource interface {
	Name() string
	Signals(ctx context.Context, a *template.Alert, svc *rules.Service) (severity.Signals, error)
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
}

// Classify triages one alert. Signals come from the alert's annotations, then
// its labels, then the service profile, then each source in order: the first
// that knows wins.
func (t *Triager) Classify(ctx context.Context, a *template.Alert) Result {
	svc := t.Config.MatchService(a.Labels)
	sig := severity.FromAnnotations(a.Annotations, a.Labels).Fill(profileSignals(svc))
	for _, src := range t.Sources {
		s, err := src.Signals(ctx, a, svc)
		if err != nil {
			continue // the source's reason is carried in its Notes when it has one
		}
		sig = sig.Fill(s)
	}
	return Result{
		Service:  ServiceName(a.Labels, svc),
		Profile:  svc,
		Decision: severity.Decide(sig, t.Config.Thresholds(svc)),
	}
}

// ServiceName is the profile's name, else the alert's service, job or
// namespace label: the unit incidents are grouped by.
func ServiceName(labels map[string]string, svc *rules.Service) string {
	if svc != nil {
		return svc.Name
	}
	for _, l := range []string{"service", "job", "namespace"} {
		if v := labels[l]; v != "" {
			return v
		}
	}
	return "unknown"
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
