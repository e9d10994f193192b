package severity

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// parseCase is shared by the float parsers: want is checked when err is nil;
// otherwise err is the sentinel the error must wrap and msg (if set) a part
// of its message.
type parseCase struct {
	in   string
	want float64
	err  error
	msg  string
}

func runParseCases(t *testing.T, parse func(string) (float64, error), cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parse(c.in)
			if c.err == nil {
				if err != nil || got != c.want {
					t.Errorf("(%q) = %v, %v; want %v", c.in, got, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("(%q) = %v, want an error wrapping %v", c.in, got, c.err)
			}
			if !errors.Is(err, c.err) {
				t.Errorf("(%q) error %q does not wrap %q", c.in, err, c.err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(c.in)) {
				t.Errorf("(%q) error %q does not name the input", c.in, err)
			}
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Errorf("(%q) error %q does not say %q", c.in, err, c.msg)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != c.in {
				t.Errorf("(%q) error %#v is not a *ParseError for the input", c.in, err)
			}
		})
	}
}

func TestParseRatio(t *testing.T) {
	runParseCases(t, ParseRatio, []parseCase{
		{in: "0.37", want: 0.37},
		{in: "37%", want: 0.37},
		{in: " 37 % ", want: 0.37},
		{in: "10%", want: 0.1}, // exactly: the 10% boundary must hold
		{in: "5%", want: 0.05},
		{in: "1%", want: 0.01},
		{in: "50%", want: 0.5},
		{in: "12.3%", want: 0.123},
		{in: "100%", want: 1},
		{in: "0%", want: 0},
		{in: "-0", want: 0},
		{in: "1", want: 1},
		{in: "0", want: 0},
		{in: "101%", err: ErrRange, msg: "over 100%"},
		{in: "1.5", err: ErrRange, msg: `a ratio is 0..1; for a percentage write "1.5%"`},
		{in: " 37 ", err: ErrRange, msg: `for a percentage write "37%"`},
		{in: "1e1%", want: 0.1},
		{in: "0x1p-2", want: 0.25},
		{in: "6.731%", want: 0.06731},
		{in: "0.1%", want: 0.001},
		{in: "-0.1", err: ErrRange, msg: "negative"},
		{in: "-5%", err: ErrRange, msg: "negative"},
		{in: "NaN", err: ErrRange, msg: "not a finite number"},
		{in: "Inf", err: ErrRange},
		{in: "-Inf%", err: ErrRange},
		{in: "1e999", err: ErrRange},
		{in: "", err: ErrEmpty},
		{in: "  ", err: ErrEmpty},
		{in: "%", err: ErrSyntax},
		{in: "37%%", err: ErrSyntax},
		{in: "abc", err: ErrSyntax, msg: "want a ratio like 0.37 or a percentage like 37%"},
		{in: "2500ms", err: ErrSyntax},
	})
}

func TestParseSeconds(t *testing.T) {
	runParseCases(t, ParseSeconds, []parseCase{
		{in: "2.5s", want: 2.5},
		{in: "2500ms", want: 2.5},
		{in: "250ms", want: 0.25},
		{in: "1.2", want: 1.2},
		{in: " 3 ", want: 3},
		{in: "0", want: 0},
		{in: "-0s", want: 0},
		{in: "1m", want: 60},
		{in: "1m30s", want: 90},
		{in: "1.5h", want: 5400},
		{in: "1d", want: 86400},
		{in: "1w", want: 7 * 86400},
		{in: "1y", want: 365 * 86400},
		{in: "500us", want: 0.0005},
		{in: "500µs", want: 0.0005},
		{in: "1000000ns", want: 0.001},
		{in: "+2s", want: 2},
		{in: "-1s", err: ErrRange, msg: "negative"},
		{in: "-1", err: ErrRange, msg: "negative"},
		{in: "NaN", err: ErrRange},
		{in: "Inf", err: ErrRange},
		{in: "1e999", err: ErrRange},
		{in: "", err: ErrEmpty},
		{in: "abc", err: ErrSyntax, msg: "want seconds like 2.5"},
		{in: "5q", err: ErrSyntax, msg: `unknown unit "q"`},
		{in: "1m5", err: ErrSyntax, msg: "missing unit"},
		{in: "s", err: ErrSyntax},
		{in: "-", err: ErrSyntax},
		{in: "1..5s", err: ErrSyntax},
		{in: "37%", err: ErrSyntax},
	})
}

func TestParseFactor(t *testing.T) {
	runParseCases(t, ParseFactor, []parseCase{
		{in: "12", want: 12},
		{in: "12x", want: 12},
		{in: "12X", want: 12},
		{in: "12×", want: 12},
		{in: " 12 × ", want: 12},
		{in: "1.2", want: 1.2},
		{in: "0", want: 0},
		{in: "-1", err: ErrRange, msg: "negative"},
		{in: "NaN", err: ErrRange},
		{in: "Infx", err: ErrRange},
		{in: "", err: ErrEmpty},
		{in: "x", err: ErrSyntax},
		{in: "12xx", err: ErrSyntax},
		{in: "abc", err: ErrSyntax, msg: "want a factor like 12, 12x or 1.5"},
	})
}

func TestParseBool(t *testing.T) {
	for _, in := range []string{"true", "TRUE", "True", "yes", "Yes", "1", "on", "ON", " true "} {
		if v, err := ParseBool(in); err != nil || !v {
			t.Errorf("ParseBool(%q) = %v, %v; want true", in, v, err)
		}
	}
	for _, in := range []string{"false", "FALSE", "no", "No", "0", "off", "Off"} {
		if v, err := ParseBool(in); err != nil || v {
			t.Errorf("ParseBool(%q) = %v, %v; want false", in, v, err)
		}
	}
	for in, want := range map[string]error{"": ErrEmpty, " ": ErrEmpty, "maybe": ErrSyntax, "2": ErrSyntax, "t": ErrSyntax, "abc": ErrSyntax} {
		_, err := ParseBool(in)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), strconv.Quote(in)) {
			t.Errorf("ParseBool(%q) error = %v, want one wrapping %v naming the input", in, err, want)
		}
	}
}
