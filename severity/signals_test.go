package severity

import (
	"reflect"
	"strings"
	"testing"
)

func TestFromAnnotations(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		labels      map[string]string
		want        Signals
	}{
		{
			name:        "every signal from annotations",
			annotations: map[string]string{"reachable": "yes", "error_ratio": "37%", "latency_ratio": "3x", "p99_latency": "1500ms", "latency_baseline": "0.5", "recovering": "off", "data_loss": "false", "impact": "none"},
			labels:      map[string]string{"severity": "critical"},
			want: Signals{
				Reachable: yes("annotation"), ErrorRatio: known(0.37, "annotation"), LatencyFactor: known(3, "annotation"),
				P99Latency: known(1.5, "annotation"), LatencyBaseline: known(0.5, "annotation"), Recovering: no("annotation"),
				DataLoss: no("annotation"), ImpactNone: yes("annotation"), AlertSeverity: "critical",
			},
		},
		{
			name:        "annotation beats label",
			annotations: map[string]string{"error_ratio": "0.2"},
			labels:      map[string]string{"error_ratio": "0.9", "recovering": "true"},
			want:        Signals{ErrorRatio: known(0.2, "annotation"), Recovering: yes("label")},
		},
		{
			name:        "bad annotation falls through to label",
			annotations: map[string]string{"error_ratio": "abc"},
			labels:      map[string]string{"error_ratio": "7%"},
			want: Signals{ErrorRatio: Float{Known: true, Value: 0.07, Source: "label",
				Note: `annotation error_ratio="abc" unparseable: invalid syntax: want a ratio like 0.37 or a percentage like 37%`}},
		},
		{
			name:        "bad annotation and bad label leave it unknown",
			annotations: map[string]string{"p99_latency": "slow"},
			labels:      map[string]string{"p99_latency": "-1s"},
			want: Signals{P99Latency: Float{Note: `annotation p99_latency="slow" unparseable: invalid syntax: want seconds like 2.5, or a duration like 2.5s, 2500ms or 1d; ` +
				`label p99_latency="-1s" unparseable: out of range: negative`}},
		},
		{
			name:        "NaN rendered by a template is not a value",
			annotations: map[string]string{"error_ratio": "NaN"},
			want:        Signals{ErrorRatio: Float{Note: `annotation error_ratio="NaN" unparseable: out of range: not a finite number: want a ratio like 0.37 or a percentage like 37%`}},
		},
		{
			name:        "empty values are absent",
			annotations: map[string]string{"error_ratio": "", "reachable": "  "},
			labels:      map[string]string{"reachable": "false"},
			want:        Signals{Reachable: no("label")},
		},
		{
			name:        "user_action means data_loss",
			annotations: map[string]string{"user_action": "true"},
			want:        Signals{DataLoss: yes("annotation")},
		},
		{
			name:        "data_loss before user_action",
			annotations: map[string]string{"user_action": "true", "data_loss": "no"},
			want:        Signals{DataLoss: no("annotation")},
		},
		{
			name:        "user_action annotation before data_loss label",
			annotations: map[string]string{"user_action": "yes"},
			labels:      map[string]string{"data_loss": "false"},
			want:        Signals{DataLoss: yes("annotation")},
		},
		{
			name:   "impact none in any case",
			labels: map[string]string{"impact": " NONE "},
			want:   Signals{ImpactNone: yes("label")},
		},
		{
			name:        "any other impact",
			annotations: map[string]string{"impact": "checkout degraded"},
			want:        Signals{ImpactNone: no("annotation")},
		},
		{
			name:        "severity only from labels",
			annotations: map[string]string{"severity": "critical"},
			labels:      map[string]string{"severity": "warning"},
			want:        Signals{AlertSeverity: "warning"},
		},
		{
			name:        "names are exact",
			annotations: map[string]string{"Error_Ratio": "0.9", "Latency_Factor": "20", "latencyFactor": "20", "errorRatio": "0.9"},
			want:        Signals{},
		},
		{
			name:        "latency_factor is the latency factor",
			annotations: map[string]string{"latency_factor": "12x"},
			want:        Signals{LatencyFactor: Float{Known: true, Value: 12, Source: "annotation"}},
		},
		{
			name:        "latency_factor and latency_ratio are one signal, latency_factor first",
			annotations: map[string]string{"latency_factor": "3", "latency_ratio": "12"},
			want:        Signals{LatencyFactor: Float{Known: true, Value: 3, Source: "annotation"}},
		},
		{
			name:        "a latency_ratio annotation wins over a latency_factor label",
			annotations: map[string]string{"latency_ratio": "12"},
			labels:      map[string]string{"latency_factor": "3"},
			want:        Signals{LatencyFactor: Float{Known: true, Value: 12, Source: "annotation"}},
		},
		{
			name:        "long unparseable values are clipped in notes",
			annotations: map[string]string{"recovering": strings.Repeat("é", 40)},
			want:        Signals{Recovering: Bool{Note: `annotation recovering="` + strings.Repeat("é", 30) + `…" unparseable: invalid syntax: want true/false, yes/no, 1/0 or on/off`}},
		},
		{name: "nil maps", want: Signals{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := FromAnnotations(c.annotations, c.labels)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("FromAnnotations =\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestFill(t *testing.T) {
	annotations := Signals{
		ErrorRatio:    known(0.2, "annotation"),
		P99Latency:    Float{Note: `annotation p99_latency="slow" unparseable: invalid syntax`},
		Recovering:    Bool{Note: "no trend yet"},
		AlertSeverity: "warning",
	}
	probe := Signals{Reachable: no("probe"), ErrorRatio: known(0.9, "prometheus"), Recovering: Bool{Note: "other note"}, DataLoss: Bool{Note: "profile says nothing"}, AlertSeverity: "critical"}
	prometheus := Signals{P99Latency: known(3, "prometheus"), LatencyFactor: Float{Note: "no latency query"}}

	got := annotations.Fill(probe).Fill(prometheus)
	want := Signals{
		Reachable:     no("probe"),
		ErrorRatio:    known(0.2, "annotation"),
		P99Latency:    known(3, "prometheus"),
		LatencyFactor: Float{Note: "no latency query"},
		Recovering:    Bool{Note: "no trend yet"},
		DataLoss:      Bool{Note: "profile says nothing"},
		AlertSeverity: "warning",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Fill =\n%+v\nwant\n%+v", got, want)
	}
	if got := (Signals{}).Fill(Signals{AlertSeverity: "info"}); got.AlertSeverity != "info" {
		t.Errorf("empty AlertSeverity not filled: %q", got.AlertSeverity)
	}
}
