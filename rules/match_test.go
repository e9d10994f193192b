package rules

import (
	"reflect"
	"testing"
	"time"

	"github.com/amtriage/amtriage/severity"
)

const matchConfig = `services:
  - name: api-canary
    match: ['service="api"', 'track=~"canary|beta"']
  - name: api
    match: ['{service="api", env!="dev"}']
  - name: batch
    match: ['job=~"batch-.*"', 'team!~"data|ml"']
  - name: no-team
    match: ['team=""', 'service=~".+"']
`

func TestMatchService(t *testing.T) {
	c := mustParse(t, matchConfig)
	tests := []struct {
		name   string
		labels map[string]string
		want   string // "" for no match
	}{
		{"first match wins over a later one", map[string]string{"service": "api", "track": "canary"}, "api-canary"},
		{"regex is anchored", map[string]string{"service": "api", "track": "canary-2"}, "api"},
		{"negative equality", map[string]string{"service": "api", "env": "dev"}, "no-team"},
		{"missing label matches !=", map[string]string{"service": "api"}, "api"},
		{"regex", map[string]string{"job": "batch-nightly"}, "batch"},
		{"negative regex excludes", map[string]string{"job": "batch-nightly", "team": "ml"}, ""},
		{"negative regex allows", map[string]string{"job": "batch-nightly", "team": "web"}, "batch"},
		{"empty value matches a missing label", map[string]string{"service": "web"}, "no-team"},
		{"no labels", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.MatchService(tt.labels)
			name := ""
			if got != nil {
				name = got.Name
				if got != &c.Services[indexOf(c, name)] {
					t.Error("MatchService must return a pointer into c.Services")
				}
			}
			if name != tt.want {
				t.Errorf("MatchService(%v) = %q, want %q", tt.labels, name, tt.want)
			}
		})
	}

	lbls := map[string]string{"job": "batch-nightly", "team": "web", "instance": "x"}
	if n := testing.AllocsPerRun(100, func() { c.MatchService(lbls) }); n != 0 {
		t.Errorf("MatchService allocates %v times per call", n)
	}
	var nilCfg *Config
	if nilCfg.MatchService(lbls) != nil {
		t.Error("nil config matched")
	}
	// A profile built in code without parsed matchers must not claim everything.
	if (&Config{Services: []Service{{Name: "x", Match: []string{"a=b"}}}}).MatchService(nil) != nil {
		t.Error("a service without Matchers matched")
	}
}

func indexOf(c *Config, name string) int {
	for i, s := range c.Services {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func TestThresholds(t *testing.T) {
	c := mustParse(t, `severity:
  major_error_ratio: 0.2
  high_p99: 1s
  fallback:
    Warning: 4
    page: 1
services:
  - name: api
    match: [service=api]
    thresholds:
      outage_error_ratio: 0.3
      minor_latency_factor: 3
      fallback: {info: 3}
      fallback_default: 4
  - name: web
    match: [service=web]
`)
	def := severity.DefaultThresholds()
	global := def
	global.MajorErrorRatio = 0.2
	global.HighP99 = time.Second
	global.Fallback = map[string]severity.Level{"critical": 2, "error": 2, "warning": 4, "info": 4, "page": 1}
	api := global
	api.OutageErrorRatio = 0.3
	api.MinorLatencyFactor = 3
	api.Fallback = map[string]severity.Level{"critical": 2, "error": 2, "warning": 4, "info": 3, "page": 1}
	api.FallbackDefault = 4

	tests := []struct {
		name string
		cfg  *Config
		svc  *Service
		want severity.Thresholds
	}{
		{"no profile", c, nil, global},
		{"profile overrides", c, &c.Services[0], api},
		{"profile without overrides", c, &c.Services[1], global},
		{"empty config", &Config{}, nil, def},
		{"nil config", nil, nil, def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.Thresholds(tt.svc); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	// Overrides must not leak into the defaults or the global set.
	if !reflect.DeepEqual(severity.DefaultThresholds(), def) || !reflect.DeepEqual(c.Thresholds(nil), global) {
		t.Error("Thresholds modified shared state")
	}
	for _, s := range c.Services {
		if err := c.Thresholds(&s).Validate(); err != nil {
			t.Errorf("%s: accepted thresholds fail severity's own check: %v", s.Name, err)
		}
	}
}
