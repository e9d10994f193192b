package silence

import (
	"errors"
	"strings"
	"testing"
)

func TestMatchersFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		alerts  []map[string]string
		want    string // the matchers, joined by ","
		wantErr string // a part of the refusal
	}{
		{
			name: "one alert: all its labels, alertname first",
			alerts: []map[string]string{
				{"severity": "critical", "service": "api", "alertname": "HighErrorRate", "instance": "a:9090"},
			},
			want: `alertname="HighErrorRate",instance="a:9090",service="api",severity="critical"`,
		},
		{
			name: "per-instance labels drop out",
			alerts: []map[string]string{
				{"alertname": "HighErrorRate", "service": "api", "namespace": "shop", "instance": "a", "pod": "api-1"},
				{"alertname": "HighErrorRate", "service": "api", "namespace": "shop", "instance": "b", "pod": "api-2"},
			},
			want: `alertname="HighErrorRate",namespace="shop",service="api"`,
		},
		{
			name: "a label one alert lacks drops out",
			alerts: []map[string]string{
				{"alertname": "Down", "job": "node", "region": "eu"},
				{"alertname": "Down", "job": "node"},
			},
			want: `alertname="Down",job="node"`,
		},
		{
			name: "a profile's own label scopes it",
			alerts: []map[string]string{
				{"alertname": "Slow", "app": "checkout", "instance": "a"},
				{"alertname": "Slow", "app": "checkout", "instance": "b"},
			},
			want: `alertname="Slow",app="checkout"`,
		},
		{
			name: "an empty value is no label",
			alerts: []map[string]string{
				{"alertname": "Down", "service": "api", "team": ""},
			},
			want: `alertname="Down",service="api"`,
		},
		{
			name: "values with quotes and unicode kept exactly",
			alerts: []map[string]string{
				{"alertname": "Disk \"full\"", "service": "café"},
			},
			want: `alertname="Disk \"full\"",service="café"`,
		},
		{name: "no alerts", alerts: nil, wantErr: "no alerts"},
		{
			name:    "no alertname, nor a scope",
			alerts:  []map[string]string{{"instance": "a"}},
			wantErr: "do not share one alertname (<none>), nor a service, job or namespace",
		},
		{
			name: "different alertnames on one service: the service's alerts",
			alerts: []map[string]string{
				{"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
				{"alertname": "HighLatency", "service": "api", "severity": "critical"},
			},
			want: `service="api",severity="critical"`,
		},
		{
			name: "different alertnames and no scope",
			alerts: []map[string]string{
				{"alertname": "HighErrorRate", "instance": "a"},
				{"alertname": "HighLatency", "instance": "a"},
			},
			wantErr: "do not share one alertname (HighErrorRate, HighLatency), nor a service",
		},
		{
			name: "different services: alertname alone would mute both and more",
			alerts: []map[string]string{
				{"alertname": "HighErrorRate", "service": "api", "severity": "critical"},
				{"alertname": "HighErrorRate", "service": "web", "severity": "critical"},
			},
			wantErr: "differ in service (api, web)",
		},
		{
			name: "a service only one alert names",
			alerts: []map[string]string{
				{"alertname": "HighErrorRate", "service": "api", "instance": "a"},
				{"alertname": "HighErrorRate", "instance": "a"},
			},
			wantErr: "differ in service (<none>, api)",
		},
		{
			name: "different namespaces under one job",
			alerts: []map[string]string{
				{"alertname": "PodCrash", "job": "kube-state-metrics", "namespace": "shop"},
				{"alertname": "PodCrash", "job": "kube-state-metrics", "namespace": "billing"},
			},
			wantErr: "differ in namespace (billing, shop)",
		},
		{
			name: "only alertname and severity shared",
			alerts: []map[string]string{
				{"alertname": "TargetDown", "severity": "warning", "instance": "a"},
				{"alertname": "TargetDown", "severity": "warning", "instance": "b"},
			},
			wantErr: `share only {alertname="TargetDown", severity="warning"}`,
		},
		{
			name:    "one alert with only an alertname",
			alerts:  []map[string]string{{"alertname": "Watchdog"}},
			wantErr: `share only {alertname="Watchdog"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MatchersFor(tc.alerts)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("MatchersFor = %v, want an error with %q", got, tc.wantErr)
				}
				if !errors.Is(err, ErrTooBroad) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q: want ErrTooBroad and %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MatchersFor: %v", err)
			}
			var parts []string
			for _, m := range got {
				if m.IsRegex || !m.Equal() || m.IsEqual == nil {
					t.Errorf("matcher %v is not an explicit exact match", m)
				}
				parts = append(parts, m.String())
			}
			if s := strings.Join(parts, ","); s != tc.want {
				t.Fatalf("matchers\n got %s\nwant %s", s, tc.want)
			}
			// Every alert of the incident is matched by the silence.
			for _, a := range tc.alerts {
				for _, m := range got {
					if a[m.Name] != m.Value {
						t.Errorf("alert %v not matched by %v", a, m)
					}
				}
			}
		})
	}
}

func TestMatcherString(t *testing.T) {
	t.Parallel()
	f, tr := false, true
	for _, tc := range []struct {
		m    Matcher
		want string
	}{
		{Matcher{Name: "a", Value: "x"}, `a="x"`},
		{Matcher{Name: "a", Value: "x", IsEqual: &tr}, `a="x"`},
		{Matcher{Name: "a", Value: "x", IsEqual: &f}, `a!="x"`},
		{Matcher{Name: "a", Value: "x.*", IsRegex: true}, `a=~"x.*"`},
		{Matcher{Name: "a", Value: "x.*", IsRegex: true, IsEqual: &f}, `a!~"x.*"`},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#v.String() = %s, want %s", tc.m, got, tc.want)
		}
	}
}
