package rules

// EscalationConfig is the runbook's escalation rule: "If Severity 1 and
// unable to identify cause in 5 minutes", page the senior engineer on call
// (pagerduty.escalation_routing_key_file) and post the escalation message.
type EscalationConfig struct {
	// After is how long a Sev 1 may go without an identified cause, from
	// its declaration. Default 5m; 1s..24h; 0 turns escalation off.
	After Duration `yaml:"after"`
}
