package silence

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Matcher is one matcher of a silence, as Alertmanager's API v2 has it. The
// matchers amtriage writes are always exact (IsRegex false, IsEqual true).
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	// IsEqual is false for a negative matcher (!= or !~). Alertmanager
	// before 0.22 does not know it and omits it, which means true.
	IsEqual *bool `json:"isEqual,omitempty"`
}

// Equal reports whether the matcher is positive (= or =~).
func (m Matcher) Equal() bool { return m.IsEqual == nil || *m.IsEqual }

// String is the matcher in Alertmanager's syntax, for logs and messages.
func (m Matcher) String() string {
	op := "="
	switch {
	case m.IsRegex && m.Equal():
		op = "=~"
	case m.IsRegex:
		op = "!~"
	case !m.Equal():
		op = "!="
	}
	return fmt.Sprintf("%s%s%q", m.Name, op, m.Value)
}

// scopeLabels say where a problem is: amtriage groups incidents by them
// (triage.ServiceName), so alerts that differ in one of them belong to
// different services and a silence without it would mute the others too.
var scopeLabels = []string{"service", "job", "namespace"}

// unscoped labels say how bad, not where: alertname plus one of them alone
// would mute the alert everywhere.
var unscoped = map[string]bool{"alertname": true, "severity": true}

// ErrTooBroad is wrapped by MatchersFor's refusals: no silence can match
// the incident's alerts, and only them, with exact matchers.
var ErrTooBroad = errors.New("silence would match more than the incident's alerts")

// MatchersFor returns exact matchers for the labels that every alert (a
// label set each) shares, alertname first, the rest by name. The silence
// they make mutes these alerts and any later alert with the same common
// labels: the incident's, not its neighbours'.
//
// The rule: it refuses (an error wrapping ErrTooBroad) when
//   - there are no alerts;
//   - some alert has a scope label (service, job, namespace) that another
//     lacks or has with another value: the alerts span several services;
//   - the alerts share no alertname and no scope label;
//   - nothing but alertname and severity is shared: the silence would mute
//     the alert on every service.
//
// Alerts of several alertnames on one service are silenced by their common
// labels without alertname: every alert of that scope, as amtriage groups
// them into one incident. An empty label value is treated as absent, as
// Alertmanager does.
func MatchersFor(alerts []map[string]string) ([]Matcher, error) {
	if len(alerts) == 0 {
		return nil, fmt.Errorf("no alerts: %w", ErrTooBroad)
	}
	common := map[string]string{}
	for k, v := range alerts[0] {
		if v != "" {
			common[k] = v
		}
	}
	for _, a := range alerts[1:] {
		for k, v := range common {
			if a[k] != v {
				delete(common, k)
			}
		}
	}
	varying := map[string][]string{}
	for _, l := range append([]string{"alertname"}, scopeLabels...) {
		if _, ok := common[l]; !ok {
			if vals := distinct(alerts, l); len(vals) > 0 {
				varying[l] = vals
			}
		}
	}
	return MatchersForCommon(common, varying)
}

// MatchersForCommon is MatchersFor given what the alerts have in common
// (the labels every one has with one value) and, of the labels that vary,
// their values ("<none>" for an alert without it; the list may be cut).
// A label missing from both is one no alert has.
func MatchersForCommon(common map[string]string, varying map[string][]string) ([]Matcher, error) {
	for _, l := range scopeLabels {
		if _, ok := common[l]; ok {
			continue
		}
		if vals, ok := varying[l]; ok {
			return nil, fmt.Errorf("the alerts differ in %s (%s): %w", l, strings.Join(vals, ", "), ErrTooBroad)
		}
	}
	_, named := common["alertname"]
	names := make([]string, 0, len(common))
	scoped := false
	for k, v := range common {
		if v == "" {
			continue
		}
		if k != "alertname" {
			names = append(names, k)
		}
		if !unscoped[k] {
			scoped = true
		}
	}
	switch {
	case !named && !hasScope(common):
		vals := varying["alertname"]
		if vals == nil {
			vals = []string{"<none>"}
		}
		return nil, fmt.Errorf("the alerts do not share one alertname (%s), nor a service, job or namespace: %w", strings.Join(vals, ", "), ErrTooBroad)
	case !scoped:
		return nil, fmt.Errorf("the alerts share only %s: %w", labelList(common), ErrTooBroad)
	}
	sort.Strings(names)
	var out []Matcher
	if named {
		out = append(out, exact("alertname", common["alertname"]))
	}
	for _, k := range names {
		out = append(out, exact(k, common[k]))
	}
	return out, nil
}

// hasScope reports whether the labels name a service, job or namespace.
func hasScope(ls map[string]string) bool {
	for _, l := range scopeLabels {
		if ls[l] != "" {
			return true
		}
	}
	return false
}

func exact(name, value string) Matcher {
	t := true
	return Matcher{Name: name, Value: value, IsEqual: &t}
}

// distinct returns the sorted values of label l across alerts, with
// "<none>" for an alert that lacks it, or nil when no alert has it.
func distinct(alerts []map[string]string, l string) []string {
	seen := map[string]bool{}
	found := false
	for _, a := range alerts {
		v := a[l]
		if v == "" {
			v = "<none>"
		} else {
			found = true
		}
		seen[v] = true
	}
	if !found {
		return nil
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func labelList(ls map[string]string) string {
	var parts []string
	for k, v := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}
