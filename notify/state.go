package notify

// ReceiverState is what a receiver remembers about an incident between its
// events — the Slack channel and message ts to update, the Grafana annotation
// id to close — kept durably so a restart updates instead of posting anew.
// Values are JSON-encoded.
type ReceiverState interface {
	LoadReceiverState(receiver, incidentID string, v any) (found bool, err error)
	SaveReceiverState(receiver, incidentID string, v any) error
}
