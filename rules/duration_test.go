package rules

import (
	"encoding/json"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		str     string
		wantErr bool
	}{
		{in: "250ms", want: 250 * time.Millisecond, str: "250ms"},
		{in: "2s", want: 2 * time.Second, str: "2s"},
		{in: "1h30m", want: 90 * time.Minute, str: "1h30m"},
		{in: "1d", want: 24 * time.Hour, str: "1d"},
		{in: "1w", want: 7 * 24 * time.Hour, str: "1w"},
		{in: "168h", want: 168 * time.Hour, str: "1w"},
		{in: "1.5s", want: 1500 * time.Millisecond, str: "1s500ms"},
		{in: "500us", want: 500 * time.Microsecond, str: "500µs"},
		{in: "0", want: 0, str: "0s"},
		{in: "2", wantErr: true},
		{in: "-1s", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := yaml.Unmarshal([]byte("'"+tt.in+"'"), &d)
			if tt.wantErr {
				if err == nil {
					t.Errorf("parsed %q as %v", tt.in, d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Std() != tt.want || d.String() != tt.str {
				t.Errorf("got %v (%q), want %v (%q)", d.Std(), d.String(), tt.want, tt.str)
			}
			// Round trips through YAML and JSON in the same syntax.
			out, err := yaml.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := yaml.Unmarshal(out, &back); err != nil || back != d {
				t.Errorf("yaml round trip: %q → %v, %v", out, back, err)
			}
			js, err := json.Marshal(d)
			if err != nil || string(js) != `"`+tt.str+`"` {
				t.Errorf("json = %s, %v", js, err)
			}
			if err := json.Unmarshal(js, &back); err != nil || back != d {
				t.Errorf("json round trip: %s → %v, %v", js, back, err)
			}
		})
	}
}
