package severity

import (
	"math"
	"strconv"
	"strings"
)

// signalCount is the number of per-signal lines appendSignalLines writes.
const signalCount = 8

// appendSignalLines appends one line per signal in a fixed order, known or
// not, so that two decisions can be compared line by line and a responder
// sees at once what was measured, where it came from, and what was missing.
func appendSignalLines(dst []string, s Signals) []string {
	return append(dst,
		boolLine("reachable", s.Reachable, strconv.FormatBool),
		floatLine("error_ratio", s.ErrorRatio, percent),
		floatLine("latency_factor", s.LatencyFactor, factor),
		floatLine("p99_latency", s.P99Latency, seconds),
		floatLine("latency_baseline", s.LatencyBaseline, seconds),
		boolLine("recovering", s.Recovering, strconv.FormatBool),
		boolLine("data_loss", s.DataLoss, strconv.FormatBool),
		boolLine("impact", s.ImpactNone, impactText),
	)
}

func impactText(none bool) string {
	if none {
		return "none"
	}
	return "not none"
}

func boolLine(name string, b Bool, format func(bool) string) string {
	if !b.Known {
		return unknownLine(name, b.Note)
	}
	return knownLine(name, format(b.Value), b.Source, b.Note)
}

func floatLine(name string, f Float, format func(float64) string) string {
	if !f.Known {
		return unknownLine(name, f.Note)
	}
	return knownLine(name, format(f.Value), f.Source, f.Note)
}

func knownLine(name, value, source, note string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString(src(source))
	if note != "" {
		b.WriteString(" (")
		b.WriteString(note)
		b.WriteByte(')')
	}
	return b.String()
}

func unknownLine(name, note string) string {
	if note == "" {
		if line, ok := unknownLines[name]; ok {
			return line // one string for every alert: a storm holds millions
		}
		return name + " unknown"
	}
	return name + " unknown: " + note
}

var unknownLines = map[string]string{
	"reachable": "reachable unknown", "error_ratio": "error_ratio unknown", "latency_factor": "latency_factor unknown",
	"p99_latency": "p99_latency unknown", "latency_baseline": "latency_baseline unknown", "recovering": "recovering unknown",
	"data_loss": "data_loss unknown", "impact": "impact unknown",
}

// src renders a signal's source as the runbook-style " [source]" suffix, or
// nothing when the caller did not say where the value came from.
func src(source string) string {
	if source == "" {
		return ""
	}
	return " [" + source + "]"
}

// num formats with at most 4 significant digits and no trailing zeros: the
// precision a responder reads, not the precision a float carries.
func num(v float64) string { return numPrec(v, 4) }

func numPrec(v float64, prec int) string {
	// 'g' switches to an exponent at 10^prec; "12000×" reads better than
	// "1.2e+04×" for any number a responder could meet.
	if a := math.Abs(v); a >= 1e4 && a < 1e15 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', prec, 64)
}

func percent(ratio float64) string { return num(ratio*100) + "%" }
func factor(f float64) string      { return num(f) + "×" }
func seconds(s float64) string     { return num(s) + "s" }

// distinctPercents formats a value that strictly exceeds its threshold with
// just enough digits that the two do not read the same: "50.00001% (> 50%)"
// rather than the puzzling "50% (> 50%)".
func distinctPercents(v, threshold float64) (string, string) {
	a, b := distinct(v*100, threshold*100)
	return a + "%", b + "%"
}

func distinctSeconds(v, threshold float64) (string, string) {
	a, b := distinct(v, threshold)
	return a + "s", b + "s"
}

func distinct(v, threshold float64) (string, string) {
	prec := 4
	for numPrec(v, prec) == numPrec(threshold, prec) && prec < 17 {
		prec++
	}
	return numPrec(v, prec), numPrec(threshold, prec)
}
