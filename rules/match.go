package rules

import (
	"strings"
	"time"

	"github.com/amtriage/amtriage/severity"
)

// MatchService returns the first service profile whose matchers all match
// lbls, or nil. Order in the file decides, as in Alertmanager's routes, so a
// specific profile can precede a catch-all. A profile without parsed
// matchers never matches: it would otherwise claim every alert. It does not
// allocate: it runs for every alert of every notification.
func (c *Config) MatchService(lbls map[string]string) *Service {
	if c == nil {
		return nil
	}
	for i := range c.Services {
		s := &c.Services[i]
		if len(s.Matchers) == 0 {
			continue
		}
		ok := true
		for _, m := range s.Matchers {
			// A missing label matches as "", as in Alertmanager.
			if !m.Matches(lbls[m.Name]) {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
	}
	return nil
}

// Thresholds are the decision tree's boundaries for svc: the SPEC's
// defaults, overridden by the global `severity:` section, then by the
// service's `thresholds:`. svc may be nil (no profile matched).
func (c *Config) Thresholds(svc *Service) severity.Thresholds {
	t := severity.DefaultThresholds()
	if c != nil {
		c.Severity.apply(&t)
	}
	if svc != nil {
		svc.Thresholds.apply(&t)
	}
	return t
}

// ratios lists the error-ratio overrides in ratioKeys order.
func (tc *ThresholdsConfig) ratios() []*float64 {
	return []*float64{tc.ImpactFloor, tc.MinorErrorRatio, tc.MajorErrorRatio, tc.OutageErrorRatio}
}

// apply overrides t with every value set in tc. Fallback entries are merged
// label by label into a new map, so `fallback: {warning: 4}` keeps the other
// labels' defaults and never modifies a map another caller holds.
func (tc *ThresholdsConfig) apply(t *severity.Thresholds) {
	setF := func(dst *float64, p *float64) {
		if p != nil {
			*dst = *p
		}
	}
	setF(&t.OutageErrorRatio, tc.OutageErrorRatio)
	setF(&t.MajorErrorRatio, tc.MajorErrorRatio)
	setF(&t.MinorErrorRatio, tc.MinorErrorRatio)
	setF(&t.ImpactFloor, tc.ImpactFloor)
	setF(&t.MajorLatencyFactor, tc.MajorLatencyFactor)
	setF(&t.MinorLatencyFactor, tc.MinorLatencyFactor)
	if tc.HighP99 != nil {
		t.HighP99 = time.Duration(*tc.HighP99)
	}
	if len(tc.Fallback) > 0 {
		m := make(map[string]severity.Level, len(t.Fallback)+len(tc.Fallback))
		for k, v := range t.Fallback {
			m[k] = v
		}
		for k, v := range tc.Fallback {
			// The decision tree looks labels up lower-cased.
			m[strings.ToLower(strings.TrimSpace(k))] = severity.Level(v)
		}
		t.Fallback = m
	}
	if tc.FallbackDefault != nil {
		t.FallbackDefault = severity.Level(*tc.FallbackDefault)
	}
}
