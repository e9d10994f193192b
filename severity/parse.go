package severity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parse errors, for errors.Is. Alert annotations are written by hand in
// Prometheus rules (or rendered from templates such as {{ $value }}), so the
// messages say what was expected, not only what was wrong.
var (
	ErrEmpty  = errors.New("empty")
	ErrSyntax = errors.New("invalid syntax")
	ErrRange  = errors.New("out of range")
)

// ParseError is the error of every Parse function: which kind of value was
// being parsed, the input as given, and the reason (wrapping ErrEmpty,
// ErrSyntax or ErrRange). FromAnnotations uses the reason alone in its notes,
// since the note already names the annotation and its value.
type ParseError struct {
	Kind  string // "ratio", "duration", "factor" or "boolean"
	Input string
	Err   error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.Input, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// ParseRatio parses a share of requests: "0.37" or "37%" (spaces allowed
// around the number and the sign). The result is in 0..1. A bare number above
// 1 is rejected rather than guessed to be a percentage: "37" could mean 37% or
// be a mistake, and a wrong guess changes the severity.
func ParseRatio(s string) (float64, error) {
	fail := func(err error) (float64, error) { return 0, &ParseError{Kind: "ratio", Input: s, Err: err} }
	in := strings.TrimSpace(s)
	if in == "" {
		return fail(ErrEmpty)
	}
	digits, isPercent := strings.CutSuffix(in, "%")
	v, err := parseFinite(strings.TrimSpace(digits))
	if err != nil {
		return fail(fmt.Errorf("%w: want a ratio like 0.37 or a percentage like 37%%", err))
	}
	if isPercent {
		v = percentToRatio(strings.TrimSpace(digits), v)
	}
	switch {
	case v < 0:
		return fail(fmt.Errorf("%w: negative", ErrRange))
	case v > 1 && isPercent:
		return fail(fmt.Errorf("%w: over 100%%", ErrRange))
	case v > 1:
		return fail(fmt.Errorf("%w: a ratio is 0..1; for a percentage write %q", ErrRange, in+"%"))
	}
	return v + 0, nil // +0 turns -0 into 0
}

// percentToRatio divides a percentage by 100 in decimal, by shifting the
// exponent of the text, so that the result is the float nearest the ratio the
// user wrote: "12.3%" is 0.123 exactly as "0.123" is, where 12.3/100 is not.
// Forms that cannot take an exponent (already have one, hex) are divided.
func percentToRatio(digits string, v float64) float64 {
	if r, err := strconv.ParseFloat(digits+"e-2", 64); err == nil {
		return r
	}
	return v / 100
}

// ParseSeconds parses a latency into seconds: a bare number is seconds
// ("1.2"); otherwise a Go duration ("2.5s", "2500ms", "1m30s") or a
// Prometheus one ("1d", "1w", "1y"). Durations with a sign are accepted as Go
// accepts them, but a negative latency is rejected.
func ParseSeconds(s string) (float64, error) {
	fail := func(err error) (float64, error) { return 0, &ParseError{Kind: "duration", Input: s, Err: err} }
	in := strings.TrimSpace(s)
	if in == "" {
		return fail(ErrEmpty)
	}
	v, err := parseFinite(in)
	if errors.Is(err, ErrSyntax) {
		v, err = parseDuration(in)
	}
	if err != nil {
		return fail(fmt.Errorf("%w: want seconds like 2.5, or a duration like 2.5s, 2500ms or 1d", err))
	}
	if v < 0 {
		return fail(fmt.Errorf("%w: negative", ErrRange))
	}
	return v + 0, nil
}

// ParseFactor parses a latency factor (p99 ÷ normal): "12", "12x", "12×" or
// "1.2". 0 is accepted (it is a measurement, if an odd one); negative and
// non-finite values are not.
func ParseFactor(s string) (float64, error) {
	fail := func(err error) (float64, error) { return 0, &ParseError{Kind: "factor", Input: s, Err: err} }
	in := strings.TrimSpace(s)
	if in == "" {
		return fail(ErrEmpty)
	}
	for _, suffix := range []string{"×", "x", "X"} {
		if digits, ok := strings.CutSuffix(in, suffix); ok {
			in = strings.TrimSpace(digits)
			break
		}
	}
	v, err := parseFinite(in)
	if err != nil {
		return fail(fmt.Errorf("%w: want a factor like 12, 12x or 1.5", err))
	}
	if v < 0 {
		return fail(fmt.Errorf("%w: negative", ErrRange))
	}
	return v + 0, nil
}

// ParseBool parses true/false, yes/no, 1/0 and on/off, in any case: the
// spellings people write in YAML-ish annotations.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "1", "on":
		return true, nil
	case "false", "no", "0", "off":
		return false, nil
	case "":
		return false, &ParseError{Kind: "boolean", Input: s, Err: ErrEmpty}
	}
	return false, &ParseError{Kind: "boolean", Input: s, Err: fmt.Errorf("%w: want true/false, yes/no, 1/0 or on/off", ErrSyntax)}
}

// parseFinite is strconv.ParseFloat without NaN and ±Inf, which ParseFloat
// accepts as "NaN", "Inf", "infinity" but which are never a measurement.
func parseFinite(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%w: too large", ErrRange)
	case err != nil:
		return 0, ErrSyntax
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%w: not a finite number", ErrRange)
	}
	return v, nil
}

// durationUnits maps a unit to seconds as mul/div: sub-second units divide so
// that "2500ms" is exactly 2.5 and "250ms" exactly 0.25 (multiplying by an
// inexact 1e-3 would not always be). d, w and y are Prometheus's, y = 365d.
var durationUnits = map[string]struct{ mul, div float64 }{
	"ns": {1, 1e9},
	"us": {1, 1e6},
	"µs": {1, 1e6}, // U+00B5 micro sign, as Go's time package accepts
	"μs": {1, 1e6}, // U+03BC Greek mu
	"ms": {1, 1e3},
	"s":  {1, 1},
	"m":  {60, 1},
	"h":  {3600, 1},
	"d":  {86400, 1},
	"w":  {7 * 86400, 1},
	"y":  {365 * 86400, 1},
}

// parseDuration parses a sequence of <decimal><unit> ("1h30m", "1.5d") into
// seconds as a float. Unlike time.ParseDuration it has no ±292-year limit
// and knows Prometheus's d, w and y.
func parseDuration(s string) (float64, error) {
	negative := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		negative = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, ErrSyntax
	}
	total := 0.0
	for s != "" {
		i, digits, dot := 0, 0, false
		for ; i < len(s); i++ {
			if c := s[i]; c >= '0' && c <= '9' {
				digits++
			} else if c == '.' && !dot {
				dot = true
			} else {
				break
			}
		}
		if digits == 0 {
			return 0, ErrSyntax
		}
		number := s[:i]
		s = s[i:]
		j := 0
		for j < len(s) && (s[j] < '0' || s[j] > '9') && s[j] != '.' {
			j++
		}
		unit, ok := durationUnits[s[:j]]
		if !ok {
			if j == 0 {
				return 0, fmt.Errorf("%w: missing unit after %s", ErrSyntax, number)
			}
			return 0, fmt.Errorf("%w: unknown unit %q", ErrSyntax, s[:j])
		}
		s = s[j:]
		v, err := strconv.ParseFloat(number, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: too large", ErrRange)
		}
		total += v * unit.mul / unit.div
	}
	if math.IsInf(total, 0) || math.IsNaN(total) {
		return 0, fmt.Errorf("%w: too large", ErrRange)
	}
	if negative {
		total = -total
	}
	return total, nil
}
