package severity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/amtriage/amtriage/internal/clip"
)

// FromAnnotations reads the signals an alert states about itself. Annotations
// are read before labels because annotations are where rule authors put
// values (labels are part of an alert's identity and rarely carry numbers);
// the first that knows wins.
//
// A value that does not parse leaves the signal unknown, with a Note saying
// why, and the label (if any) is tried next: one typo must not hide a usable
// value nor be silently treated as "healthy". An empty value counts as absent,
// since templated annotations render empty when their query has no result.
//
// Names: reachable, error_ratio, latency_factor or latency_ratio (the same
// signal, the SPEC names both),
// p99_latency, latency_baseline, recovering, data_loss or user_action (the
// same signal), impact ("none", in any case, marks a preventive alert).
// AlertSeverity is the `severity` label.
func FromAnnotations(annotations, labels map[string]string) Signals {
	from := []origin{{"annotation", annotations}, {"label", labels}}
	return Signals{
		Reachable:       toBool(lookup(from, ParseBool, "reachable")),
		ErrorRatio:      toFloat(lookup(from, ParseRatio, "error_ratio")),
		LatencyFactor:   toFloat(lookup(from, ParseFactor, "latency_factor", "latency_ratio")),
		P99Latency:      toFloat(lookup(from, ParseSeconds, "p99_latency")),
		LatencyBaseline: toFloat(lookup(from, ParseSeconds, "latency_baseline")),
		Recovering:      toBool(lookup(from, ParseBool, "recovering")),
		DataLoss:        toBool(lookup(from, ParseBool, "data_loss", "user_action")),
		ImpactNone:      toBool(lookup(from, parseImpact, "impact")),
		AlertSeverity:   labels["severity"],
	}
}

// Fill returns s with every unknown signal replaced by other's when other
// knows it: it chains sources in priority order, e.g.
// FromAnnotations(...).Fill(probe).Fill(prometheus). When neither knows a
// signal, s's Note is kept (other's is used only if s has none), so the
// reason a higher-priority source failed is not lost. AlertSeverity is s's
// unless empty.
func (s Signals) Fill(other Signals) Signals {
	s.Reachable = fillBool(s.Reachable, other.Reachable)
	s.ErrorRatio = fillFloat(s.ErrorRatio, other.ErrorRatio)
	s.LatencyFactor = fillFloat(s.LatencyFactor, other.LatencyFactor)
	s.P99Latency = fillFloat(s.P99Latency, other.P99Latency)
	s.LatencyBaseline = fillFloat(s.LatencyBaseline, other.LatencyBaseline)
	s.Recovering = fillBool(s.Recovering, other.Recovering)
	s.DataLoss = fillBool(s.DataLoss, other.DataLoss)
	s.ImpactNone = fillBool(s.ImpactNone, other.ImpactNone)
	if s.AlertSeverity == "" {
		s.AlertSeverity = other.AlertSeverity
	}
	return s
}

func fillBool(s, other Bool) Bool {
	switch {
	case s.Known:
		return s
	case other.Known:
		return other
	case s.Note == "":
		s.Note = other.Note
	}
	return s
}

func fillFloat(s, other Float) Float {
	switch {
	case s.Known:
		return s
	case other.Known:
		return other
	case s.Note == "":
		s.Note = other.Note
	}
	return s
}

// origin is one place FromAnnotations reads from.
type origin struct {
	name   string // the Source: "annotation" or "label"
	values map[string]string
}

// found is the outcome of a lookup; toBool and toFloat turn it into a signal.
type found[T any] struct {
	known  bool
	value  T
	source string
	note   string
}

// lookup tries every name in every origin, origins first, and returns the
// first value that parses. Notes of values that did not parse are kept, even
// when a later one parses, so the responder learns about the typo.
func lookup[T any](from []origin, parse func(string) (T, error), names ...string) found[T] {
	var notes []string
	for _, o := range from {
		for _, name := range names {
			raw, ok := o.values[name]
			if !ok || strings.TrimSpace(raw) == "" {
				continue
			}
			v, err := parse(raw)
			if err != nil {
				notes = append(notes, fmt.Sprintf("%s %s=%q unparseable: %v", o.name, name, clip.Bytes(raw, maxShown), reason(err)))
				continue
			}
			return found[T]{known: true, value: v, source: o.name, note: strings.Join(notes, "; ")}
		}
	}
	return found[T]{note: strings.Join(notes, "; ")}
}

// maxShown is how many bytes of an unparseable value a note repeats: enough to
// recognise a typo, not so much that one runaway annotation fills a page or a
// Slack message.
const maxShown = 64

// reason strips a ParseError down to why it failed; the note around it
// already names the input.
func reason(err error) error {
	if pe, ok := errors.AsType[*ParseError](err); ok {
		return pe.Err
	}
	return err
}

func toBool(f found[bool]) Bool {
	return Bool{Known: f.known, Value: f.value, Source: f.source, Note: f.note}
}

func toFloat(f found[float64]) Float {
	return Float{Known: f.known, Value: f.value, Source: f.source, Note: f.note}
}

// parseImpact: "none" (any case) means no user impact; any other value means
// the rule author declared some impact.
func parseImpact(s string) (bool, error) {
	return strings.EqualFold(strings.TrimSpace(s), "none"), nil
}
