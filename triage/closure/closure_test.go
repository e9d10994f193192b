package closure

import (
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
)

var t0 = time.Date(2026, 3, 1, 14, 5, 0, 0, time.UTC)

func snap(revision int64, desired int32, pods []diagnosis.Pod, rollouts ...diagnosis.Rollout) *diagnosis.Snapshot {
	return &diagnosis.Snapshot{Deployment: &diagnosis.Deployment{Name: "api", Desired: desired, Revision: revision}, Pods: pods, Rollouts: rollouts}
}

var (
	rev1    = diagnosis.Rollout{Revision: 1, Images: []string{"shop/api:1.4.2"}}
	rev2    = diagnosis.Rollout{Revision: 2, Images: []string{"shop/api:1.5.0"}, Change: "api: shop/api:1.4.2 → shop/api:1.5.0"}
	rev3    = diagnosis.Rollout{Revision: 3, Images: []string{"shop/api:1.4.2"}} // kubectl rollout undo: revision 1's template as 3
	rev3new = diagnosis.Rollout{Revision: 3, Images: []string{"shop/api:1.5.1"}, Change: "api: shop/api:1.5.0 → shop/api:1.5.1"}
	pods    = []diagnosis.Pod{{Name: "api-a", Restarts: 4}, {Name: "api-b", Restarts: 5}}
)

func TestFixApplied(t *testing.T) {
	tests := []struct {
		name          string
		before, after *diagnosis.Snapshot
		want          string
	}{
		{"rollback", snap(2, 2, pods, rev2, rev1), snap(3, 2, nil, rev3, rev2, rev1), "rollback to revision 1 at 2026-03-01 14:05 UTC"},
		{"new image", snap(2, 2, pods, rev2, rev1), snap(3, 2, nil, rev3new, rev2, rev1), "new image: api: shop/api:1.5.0 → shop/api:1.5.1"},
		{"scaled", snap(2, 2, pods, rev2, rev1), snap(2, 4, pods, rev2, rev1), "scaled from 2 to 4 replicas"},
		{"pods restarted (new pods)", snap(2, 2, pods, rev2, rev1), snap(2, 2, []diagnosis.Pod{{Name: "api-c"}, {Name: "api-d"}}, rev2, rev1), "pods restarted"},
		{"nothing changed", snap(2, 2, pods, rev2, rev1), snap(2, 2, pods, rev2, rev1), "none detected"},
		{"no snapshot", nil, snap(2, 2, pods), "none detected (no Kubernetes snapshot to compare)"},
	}
	for _, tt := range tests {
		if got := FixApplied(tt.before, tt.after, t0); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestMessage(t *testing.T) {
	in := Input{
		Started: t0, Ended: t0.Add(27 * time.Minute),
		Diagnosis: &diagnosis.Diagnosis{Category: diagnosis.ConfigOrDeployment, Summary: "CrashLoopBackOff after the rollout of revision 2"},
		Before:    snap(2, 2, pods, rev2, rev1), After: snap(3, 2, nil, rev3, rev2, rev1), AfterAt: t0.Add(30 * time.Minute),
		Impact:       Impact{Known: true, Failed: 1234.4, Minutes: 27},
		Status:       "resolved, verified: pods: passed (2/2 pods ready)",
		MonitorFor:   time.Hour,
		PeakSeverity: 1,
	}
	want := "✅ INCIDENT RESOLVED\n" +
		"Duration: 2026-03-01 14:05 UTC to 2026-03-01 14:32 UTC = 27 minutes\n" +
		"Root Cause: CrashLoopBackOff after the rollout of revision 2\n" +
		"Fix Applied: rollback to revision 1 at 2026-03-01 14:35 UTC\n" +
		"Impact: ~1234 failed requests over 27 minutes\n" +
		"Status: resolved, verified: pods: passed (2/2 pods ready)\n" +
		"Monitoring: Continuing for 1 hour\n" +
		"Post-mortem: due 2026-03-02 14:32 UTC"
	if got := Message(in); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	in.PeakSeverity, in.Diagnosis, in.Impact, in.MonitorFor = 3, nil, Impact{Note: "no requests query"}, 90*time.Minute
	want = "✅ INCIDENT RESOLVED\n" +
		"Duration: 2026-03-01 14:05 UTC to 2026-03-01 14:32 UTC = 27 minutes\n" +
		"Root Cause: not identified\n" +
		"Fix Applied: rollback to revision 1 at 2026-03-01 14:35 UTC\n" +
		"Impact: not measured (no requests query)\n" +
		"Status: resolved, verified: pods: passed (2/2 pods ready)\n" +
		"Monitoring: Continuing for 90 minutes"
	if got := Message(in); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
