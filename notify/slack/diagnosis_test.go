package slack

import (
	"strings"
	"testing"
	"time"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/incident"
)

func crashLoopDiagnosis(evil string) *diagnosis.Diagnosis {
	return &diagnosis.Diagnosis{
		Category: diagnosis.ConfigOrDeployment,
		Summary:  "config or bad deployment: 3/3 pods CrashLoopBackOff; revision 7 rolled out 12m before the alert " + evil,
		Command:  "kubectl rollout undo deployment/api -n shop --to-revision=6",
		Evidence: []string{"0/3 pods available", "3 pods CrashLoopBackOff " + evil},
		Snapshot: &diagnosis.Snapshot{
			Namespace: "shop", Workload: "deployment/api",
			Deployment: &diagnosis.Deployment{Name: "api", Desired: 3, Updated: 3, Ready: 0, Available: 0},
			Pods:       []diagnosis.Pod{{Name: "api-7d9f-x2" + evil, Phase: "Running", Reason: "CrashLoopBackOff", Restarts: 4, LastTerminated: "Error (exit 1)"}},
			PodsTotal:  3,
			Rollouts:   []diagnosis.Rollout{{Revision: 7, Created: started.Add(-12 * time.Minute), Change: "api: shop/api:1.4.2 → shop/api:1.5.0"}},
			Events:     []diagnosis.Event{{Time: started, Object: "Pod/api-7d9f-x2", Reason: "BackOff", Message: "Back-off restarting failed container " + evil}},
			Logs:       &diagnosis.Logs{Pod: "api-7d9f-x2", Container: "api", Previous: true, Lines: []string{"FATAL: config key db.url missing " + evil}},
		},
	}
}

func TestMessageCarriesDiagnosisAndRollbackCommand(t *testing.T) {
	e := newEnv(t, nil)
	ev := event(incident.Opened, 2, 0, alert("HighErrorRate", 1))
	ev.Incident.Diagnosis = crashLoopDiagnosis("")
	e.notify(t, ev)
	msgs := e.fake.Messages("#incidents")
	if len(msgs) == 0 {
		t.Fatal("no message in #incidents")
	}
	text := blockText(decodeBlocks(t, msgs[0].Blocks))
	mustContain(t, "blocks", text,
		"🩺 *Diagnosis:* config or bad deployment: 3/3 pods CrashLoopBackOff",
		"*Roll back:* `kubectl rollout undo deployment/api -n shop --to-revision=6`",
		"• 0/3 pods available",
		"deployment/api in `shop` — desired 3, updated 3, ready 0, available 0",
		"`api-7d9f-x2` Running CrashLoopBackOff, not ready, 4 restarts, last exit Error (exit 1)",
		"revision 7 at 14:20 UTC — api: shop/api:1.4.2 → shop/api:1.5.0",
		"BackOff: Back-off restarting failed container",
		"*logs of the previous container* `api-7d9f-x2/api`:\n```\nFATAL: config key db.url missing\n```")
}

func TestDiagnosisTextIsEscaped(t *testing.T) {
	evil := "<!channel> @here <http://evil.example|click>"
	e := newEnv(t, nil)
	ev := event(incident.Opened, 3, 0, alert("HighErrorRate", 1))
	ev.Incident.Diagnosis = crashLoopDiagnosis(evil)
	e.notify(t, ev)
	var shown bool
	for _, c := range e.fake.Calls() {
		for _, s := range c.Strings {
			low := strings.ToLower(s)
			for _, bad := range []string{"<!", "<http://evil", "@here"} {
				if strings.Contains(low, bad) {
					t.Errorf("%s sent %q containing %q", c.Method, s, bad)
				}
			}
			shown = shown || strings.Contains(s, "FATAL: config key db.url missing &lt;!channel&gt;")
		}
	}
	if !shown {
		t.Error("the diagnosis (with its escaped log line) was not posted at all")
	}
}
