package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amtriage/amtriage/rules"
)

func sourceNames(t *testing.T, b *sourceBuilder, yaml string, first bool) ([]string, error) {
	t.Helper()
	cfg, err := rules.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if first {
		s, err := b.build(cfg, prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		for _, src := range s.Sources {
			names = append(names, src.Name())
		}
		return names, nil
	}
	e, err := b.rebuild(cfg)
	if err != nil {
		return nil, err
	}
	if e.Run != nil {
		t.Error("a rebuild must not start background work again")
	}
	for _, src := range e.Sources {
		names = append(names, src.Name())
	}
	return names, nil
}

// A reload rebuilds the signal sources from the new file (Prometheus,
// probes) around the running metrics, and refuses what needs new informers.
func TestSourcesRebuiltOnReload(t *testing.T) {
	b := &sourceBuilder{log: slog.New(slog.DiscardHandler)}
	if names, err := sourceNames(t, b, "listen: 127.0.0.1:9095\n", true); err != nil || len(names) != 0 {
		t.Fatalf("start: sources %v, %v; want none", names, err)
	}
	names, err := sourceNames(t, b, "prometheus:\n  url: http://127.0.0.1:9090\nservices:\n  - name: api\n    match: ['service=\"api\"']\n    health_url: http://127.0.0.1:8080/health\n", false)
	if err != nil || len(names) != 2 || !slices.Contains(names, "prometheus") {
		t.Errorf("reloaded sources %v, %v; want the probe and prometheus", names, err)
	}

	k := &sourceBuilder{log: slog.New(slog.DiscardHandler)}
	// Whether or not a client can be made here, the informers' namespaces
	// are fixed at start (nothing is started: no cluster is contacted).
	if _, err := sourceNames(t, k, "kubernetes:\n  enabled: true\nservices:\n  - name: api\n    match: ['service=\"api\"']\n    namespace: shop\n", true); err != nil {
		t.Fatal(err)
	}
	if _, err := sourceNames(t, k, "kubernetes:\n  enabled: true\nservices:\n  - name: api\n    match: ['service=\"api\"']\n    namespace: pay\n", false); err == nil || !strings.Contains(err.Error(), "restart amtriage") {
		t.Errorf("a reload changing the watched namespaces: %v, want it refused", err)
	}
	if _, err := sourceNames(t, k, "kubernetes:\n  enabled: true\nservices:\n  - name: web\n    match: ['service=\"web\"']\n    namespace: shop\n", false); err != nil {
		t.Errorf("a reload keeping the watched namespaces: %v", err)
	}
}
