package pagerduty

import (
	"strings"
	"testing"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
	fakepd "github.com/amtriage/amtriage/internal/fakes/pagerduty"
)

// The responder sees the diagnosis and the rollback command in the page's
// custom_details; a huge snapshot is dropped before the verdict is.
func TestTriggerCarriesDiagnosis(t *testing.T) {
	fake := fakepd.New()
	defer fake.Close()
	n := newNotifier(t, fake, nil)
	ev := event(incident.Opened, "api", 1, 0, 1)
	const undo = "kubectl rollout undo deployment/api -n shop --to-revision=6"
	ev.Incident.Diagnosis = &diagnosis.Diagnosis{
		Category: diagnosis.ConfigOrDeployment, Summary: "config or bad deployment: 3/3 pods CrashLoopBackOff", Command: undo,
		Snapshot: &diagnosis.Snapshot{Namespace: "shop", Workload: "deployment/api", PodsTotal: 3,
			Pods: []diagnosis.Pod{{Name: "api-1", Phase: "Running", Reason: "CrashLoopBackOff", Restarts: 4}}},
	}
	if _, err := notify1(t, n, ev); err != nil {
		t.Fatal(err)
	}
	d := fake.Triggers("api-0123456789ab")[0].Payload.CustomDetails
	diag, _ := d["diagnosis"].(map[string]any)
	if diag["command"] != undo || diag["category"] != "config_or_deployment" {
		t.Fatalf("custom_details.diagnosis = %v", d["diagnosis"])
	}
	pods, _ := diag["pods"].([]any)
	if pods[0].(map[string]any)["reason"] != "CrashLoopBackOff" {
		t.Fatalf("snapshot pods = %v", pods)
	}

	// Oversized (here by a runaway reason): the snapshot goes, the verdict
	// and the command stay.
	ev = event(incident.Opened, "api", 1, 0, 1)
	ev.Incident.ID = "api-big"
	big := strings.Repeat("x", MaxEventBytes)
	ev.Incident.Reasons = []string{big}
	ev.Incident.Diagnosis = &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment, Summary: "s", Command: undo,
		Snapshot: &diagnosis.Snapshot{Namespace: "shop", Partial: []string{big}}}
	if _, err := notify1(t, n, ev); err != nil {
		t.Fatal(err)
	}
	d = fake.Triggers("api-big")[0].Payload.CustomDetails
	diag, _ = d["diagnosis"].(map[string]any)
	if diag["command"] != undo || diag["partial"] != nil || diag["namespace"] != nil {
		t.Fatalf("oversized: diagnosis = %.200v", d["diagnosis"])
	}
}
