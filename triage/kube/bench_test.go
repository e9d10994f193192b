package kube

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/amtriage/amtriage/diagnosis"
)

var sinkSnapshot *diagnosis.Snapshot

// BenchmarkSnapshot reads snapshots from caches of 10,000 pods (200
// deployments of 2 ReplicaSets × 25 pods in 4 namespaces) and 50,000
// events, put straight into the informers' indexers. Every client action
// is counted: a snapshot must make none. Run with -cpu 1.
func BenchmarkSnapshot(b *testing.B) {
	const (
		namespaces  = 4
		deployments = 200
		podsPerRS   = 25
		eventsTotal = 50_000
	)
	client := fake.NewClientset()
	var calls atomic.Int64
	client.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls.Add(1)
		return false, nil, nil
	})
	c := New(client, Options{Now: func() time.Time { return t0 }})
	var targets, podTargets []Target
	var objs []runtime.Object
	events := 0
	for d := range deployments {
		ns := fmt.Sprintf("team-%d", d%namespaces)
		name := fmt.Sprintf("svc-%03d", d)
		objs = append(objs, newDeployment(ns, name, 2*podsPerRS, "2", appsv1DeploymentAvailable(2*podsPerRS-2)))
		for rev := 1; rev <= 2; rev++ {
			rs := newReplicaSet(ns, name, fmt.Sprintf("h%d", rev), fmt.Sprint(rev), t0.Add(-time.Duration(3-rev)*time.Hour), podsPerRS,
				container("app", fmt.Sprintf("shop/%s:1.%d", name, rev)), container("envoy", "envoy:1.30"))
			objs = append(objs, rs)
			for i := range podsPerRS {
				var m []func(*corev1.Pod)
				if i%10 == 3 {
					m = append(m, crashLooping(int32(i)))
				}
				p := newPod(ns, rs.Name, fmt.Sprintf("%s-%02d", rs.Name, i), t0.Add(-time.Hour), m...)
				objs = append(objs, p)
				// 5 events per pod: 3 Warning (one outside the window), 2 Normal.
				for j := range 5 {
					typ, at := corev1.EventTypeWarning, t0.Add(-time.Duration(j*7+i%4)*time.Minute)
					if j >= 3 {
						typ = corev1.EventTypeNormal
					}
					objs = append(objs, newEvent(ns, "Pod", p.Name, typ, fmt.Sprintf("Reason%d", j), "message", at))
					events++
				}
				if rev == 2 && i == 0 {
					podTargets = append(podTargets, Target{Namespace: ns, Pod: p.Name})
				}
			}
		}
		targets = append(targets, Target{Namespace: ns, Deployment: name})
	}
	add(b, c, objs...)
	c.synced.Store(true)
	if events != eventsTotal {
		b.Fatalf("%d events", events)
	}
	if n := len(c.all.pods.GetStore().ListKeys()); n != deployments*2*podsPerRS {
		b.Fatalf("%d pods", n)
	}
	s := c.Snapshot(targets[0], t0)
	if s.PodsTotal != 2*podsPerRS || len(s.Pods) != diagnosis.MaxPods || len(s.Events) != diagnosis.MaxEvents || len(s.Rollouts) != 2 || len(s.Partial) != 0 {
		b.Fatalf("snapshot: %+v", s)
	}

	run := func(b *testing.B, targets []Target) {
		calls.Store(0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sinkSnapshot = c.Snapshot(targets[i%len(targets)], t0)
			i++
		}
		b.ReportMetric(float64(calls.Load())/float64(b.N), "api_calls/op")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "snapshots/s")
		if calls.Load() != 0 {
			b.Errorf("%d API calls", calls.Load())
		}
	}
	b.Run("deployment", func(b *testing.B) { run(b, targets) })
	b.Run("pod", func(b *testing.B) { run(b, podTargets) })
	b.Run("selector", func(b *testing.B) {
		// A label selector scans its namespace (2,500 pods here).
		var sel []Target
		for _, t := range targets {
			sel = append(sel, Target{Namespace: t.Namespace, Selector: "app=" + t.Deployment})
		}
		run(b, sel)
	})
}
