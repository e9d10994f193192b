package rules

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// parseDuration accepts Prometheus syntax first ("1d", "1w", "1h30m", which
// operators copy from alerting rules) and Go syntax as a fallback ("1.5s",
// "500us"). Negative durations make no sense for any key and are rejected.
func parseDuration(s string) (time.Duration, error) {
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("use a duration such as 250ms, 2s, 1h30m or 1d")
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return d, nil
}

// UnmarshalYAML reports a bad duration as a *yaml.TypeError so the decoder
// keeps going and every problem in the file is listed together.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		// Same form as yaml.v3's own type errors, which Parse rewrites.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s into rules.Duration", n.Line, n.ShortTag())}}
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q: %v", n.Line, n.Value, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the same syntax UnmarshalYAML reads, so a config can be
// round-tripped (check-config output).
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText makes JSON and other text encoders print "250ms", not nanoseconds.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText is the inverse of MarshalText, for flags and JSON.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// String prints in Prometheus syntax ("1d", "1h30m", "250ms") when the value
// fits it, else in Go syntax.
func (d Duration) String() string {
	if d >= 0 && time.Duration(d)%time.Millisecond == 0 {
		return model.Duration(d).String()
	}
	return time.Duration(d).String()
}

// Std is the value as a time.Duration, for callers that set timers with it.
func (d Duration) Std() time.Duration { return time.Duration(d) }
