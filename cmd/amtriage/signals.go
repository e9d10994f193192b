package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage"
	"github.com/amtriage/amtriage/triage/enrich"
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/probe"
	"github.com/amtriage/amtriage/triage/prom"
	"github.com/amtriage/amtriage/triage/signal"
	"github.com/amtriage/amtriage/triage/verify"
)

// sourceBuilder builds the measuring sources the configuration asks for,
// at start and again on each reload. What is not configured is skipped; the
// diagnosis says why. Source order is the SPEC's "first that knows wins"
// after the alert itself: the health probe, then Prometheus, then
// Kubernetes. The metrics and the Kubernetes informers are made once and
// kept across reloads.
type sourceBuilder struct {
	log        *slog.Logger
	metrics    *signal.Metrics
	cluster    *kube.Cluster // nil without Kubernetes
	skip       string        // why there is no cluster
	namespaces []string      // the informers', fixed at start
}

// start builds the sources of the configuration serve starts with.
func (b *sourceBuilder) start(cfg *rules.Config) func(prometheus.Registerer) (*triage.Enrichment, error) {
	return func(reg prometheus.Registerer) (*triage.Enrichment, error) {
		s, err := b.build(cfg, reg)
		if err != nil {
			return nil, err
		}
		return s.Enrichment, nil
	}
}

// rebuild builds the sources of a reloaded configuration around the running
// informers. The namespaces they watch follow the profiles when
// kubernetes.namespaces is empty: a reload that would change them is
// refused, as a restart is needed to watch others.
func (b *sourceBuilder) rebuild(cfg *rules.Config) (*triage.Enrichment, error) {
	if cfg.Kubernetes.Enabled {
		if ns := watchedNamespaces(cfg); !slices.Equal(ns, b.namespaces) {
			return nil, fmt.Errorf("kubernetes: the profiles' namespaces would change what the informers watch (%v, running %v): restart amtriage to apply it", ns, b.namespaces)
		}
	}
	s, err := b.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	e := *s.Enrichment
	e.Run = nil // the informers started with Serve keep running
	return &e, nil
}

// signalSources is the Enrichment with its parts, for the classify command.
type signalSources struct {
	*triage.Enrichment
	enricher *enrich.Enricher
	cluster  *kube.Cluster // nil without Kubernetes
}

func newSignalSources(cfg *rules.Config, log *slog.Logger, reg prometheus.Registerer) (*signalSources, error) {
	return (&sourceBuilder{log: log}).build(cfg, reg)
}

// build makes the sources for cfg; the first call (with reg) also makes the
// metrics and the Kubernetes informers, which later calls reuse.
func (b *sourceBuilder) build(cfg *rules.Config, reg prometheus.Registerer) (*signalSources, error) {
	first := b.metrics == nil
	if first {
		b.metrics = signal.NewMetrics(reg)
	}
	metrics, log := b.metrics, b.log
	e := &triage.Enrichment{Verifier: &verify.Verifier{}}
	prober := probe.New(probe.Options{Timeout: time.Duration(cfg.Probes.Timeout), Metrics: metrics})
	e.Verifier.Prober = prober
	if slices.ContainsFunc(cfg.Services, func(s rules.Service) bool { return s.HealthURL != "" }) {
		e.Sources = append(e.Sources, prober)
	}
	var promSrc *prom.Source
	if cfg.Prometheus.URL != "" {
		src, err := prom.New(cfg.Prometheus, prom.Options{Metrics: metrics, Log: log, Thresholds: cfg.Thresholds})
		if err != nil {
			return nil, fmt.Errorf("prometheus: %w", err)
		}
		e.Sources = append(e.Sources, src)
		promSrc = src
		e.Verifier.Ratios, e.Verifier.Impact = src, src
	}
	en := &enrich.Enricher{Config: cfg, Prober: prober, SkipReason: "Kubernetes not configured (kubernetes.enabled is false)"}
	out := &signalSources{Enrichment: e, enricher: en}
	if cfg.Kubernetes.Enabled && first {
		b.namespaces = watchedNamespaces(cfg)
		cluster, err := newCluster(cfg, log, metrics, reg)
		if err != nil {
			// Triage must go on without a cluster: say why in every diagnosis.
			log.Error("kubernetes snapshot disabled", "err", err)
			b.skip = "Kubernetes client not available: " + err.Error()
		} else {
			b.cluster = cluster
			e.Run = func(ctx context.Context) {
				cluster.Start(ctx) // logs once the caches are synced
				<-ctx.Done()
				cluster.Shutdown()
			}
		}
	}
	if cfg.Kubernetes.Enabled && b.skip != "" {
		en.SkipReason = b.skip
	}
	if b.cluster != nil {
		e.Sources = append(e.Sources, b.cluster)
		en.Cluster, out.cluster = b.cluster, b.cluster
		e.Verifier.Cluster = b.cluster
	}
	e.Enricher = en
	e.Evidence = evidenceSources(cfg, b.cluster, promSrc)
	return out, nil
}

// evidenceSources is where a Sev 1–2 declaration's evidence comes from;
// nil when none of Kubernetes, Prometheus and grafana.render is configured
// (then none is gathered).
func evidenceSources(cfg *rules.Config, cluster *kube.Cluster, src *prom.Source) *evidence.Sources {
	s := &evidence.Sources{Profile: func(name string) *rules.Service {
		for i := range cfg.Services {
			if cfg.Services[i].Name == name {
				return &cfg.Services[i]
			}
		}
		return nil
	}}
	if cluster != nil { // never a typed nil in the interface
		s.Cluster = cluster
	}
	if src != nil {
		s.Prometheus = src
	}
	if r := cfg.Grafana.Render; cfg.Grafana.URL != "" && len(r.PanelIDs) > 0 {
		s.Grafana = &evidence.Grafana{URL: cfg.Grafana.URL, Token: string(cfg.Grafana.Token), Render: r}
		s.Panels = []rules.GrafanaRender{r}
	}
	if s.Cluster == nil && s.Prometheus == nil && s.Grafana == nil {
		return nil
	}
	return s
}

// newCluster creates the informers (not started) for the namespaces to watch.
func newCluster(cfg *rules.Config, log *slog.Logger, metrics *signal.Metrics, reg prometheus.Registerer) (*kube.Cluster, error) {
	client, err := kube.NewClientFromConfig(cfg.Kubernetes.Kubeconfig)
	if err != nil {
		return nil, err
	}
	namespaces := watchedNamespaces(cfg)
	if len(namespaces) == 0 {
		log.Info("kubernetes: watching all namespaces")
	} else {
		log.Info("kubernetes: watching namespaces", "namespaces", namespaces)
	}
	return kube.New(client, kube.Options{
		Namespaces:  namespaces,
		EventWindow: time.Duration(cfg.Kubernetes.EventWindow),
		LogTimeout:  time.Duration(cfg.Kubernetes.LogTimeout),
		LogBytes:    cfg.Kubernetes.LogBytes,
		Metrics:     metrics,
		Registerer:  reg,
		Log:         log,
	}), nil
}

// watchedNamespaces: kubernetes.namespaces, else the profiles' namespaces;
// nil (all) with all_namespaces, or when nothing names one (alerts' own
// namespace labels are then the only way to find a workload).
func watchedNamespaces(cfg *rules.Config) []string {
	if cfg.Kubernetes.AllNamespaces {
		return nil
	}
	if len(cfg.Kubernetes.Namespaces) > 0 {
		return slices.Compact(slices.Sorted(slices.Values(cfg.Kubernetes.Namespaces)))
	}
	var out []string
	for _, s := range cfg.Services {
		if s.Namespace != "" {
			out = append(out, s.Namespace)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
