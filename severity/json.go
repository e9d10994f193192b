package severity

import (
	"encoding/json"
	"slices"
)

// decisionJSON is a Decision as it is encoded. Its eight signal lines are a
// function of its signals, so they are left out and rebuilt when it is read:
// a decision is stored with every alert of a storm. Reasons that do not have
// that shape are written whole.
type decisionJSON struct {
	Severity Level `json:"severity"`
	Rule     int   `json:"rule"`
	// Reason and Notes are the deciding rule's reason and what follows the
	// signal lines; Reasons is every reason, when they are not rebuilt.
	Reason  string   `json:"reason,omitempty"`
	Notes   []string `json:"notes,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	Signals Signals  `json:"signals"`
}

// MarshalJSON implements json.Marshaler.
func (d Decision) MarshalJSON() ([]byte, error) {
	out := decisionJSON{Severity: d.Severity, Rule: d.Rule, Signals: d.Signals}
	if n := 1 + signalCount; len(d.Reasons) >= n && d.Reasons[0] != "" &&
		slices.Equal(d.Reasons[1:n], appendSignalLines(make([]string, 0, signalCount), d.Signals)) {
		out.Reason, out.Notes = d.Reasons[0], d.Reasons[n:]
	} else {
		out.Reasons = d.Reasons
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Decision) UnmarshalJSON(b []byte) error {
	var in decisionJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*d = Decision{Severity: in.Severity, Rule: in.Rule, Reasons: in.Reasons, Signals: in.Signals}
	if in.Reason != "" {
		d.Reasons = make([]string, 0, 1+signalCount+len(in.Notes))
		d.Reasons = append(d.Reasons, in.Reason)
		d.Reasons = appendSignalLines(d.Reasons, in.Signals)
		d.Reasons = append(d.Reasons, in.Notes...)
	}
	return nil
}
