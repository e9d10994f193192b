package kube

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/severity"
)

func TestTargetFor(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		svc    *rules.Service
		want   Target
		ok     bool
	}{
		{"profile deployment", map[string]string{"namespace": "other", "pod": "x"},
			&rules.Service{Namespace: "shop", Deployment: "api"}, Target{Namespace: "shop", Deployment: "api"}, true},
		{"profile selector", nil,
			&rules.Service{Namespace: "shop", Selector: "app=db"}, Target{Namespace: "shop", Selector: "app=db"}, true},
		{"profile without workload falls back to labels", map[string]string{"namespace": "shop", "deployment": "web"},
			&rules.Service{Namespace: "shop"}, Target{Namespace: "shop", Deployment: "web"}, true},
		{"profile workload without namespace falls back to labels", map[string]string{"namespace": "shop", "service": "cart"},
			&rules.Service{Deployment: "api"}, Target{Namespace: "shop", Deployment: "cart"}, true},
		{"pod label", map[string]string{"namespace": "shop", "pod": "api-7d9f-x2", "deployment": "api"},
			nil, Target{Namespace: "shop", Pod: "api-7d9f-x2"}, true},
		{"deployment label", map[string]string{"namespace": "shop", "deployment": "api", "service": "web"},
			nil, Target{Namespace: "shop", Deployment: "api"}, true},
		{"service label as deployment", map[string]string{"namespace": "shop", "service": "api"},
			nil, Target{Namespace: "shop", Deployment: "api"}, true},
		{"namespace only", map[string]string{"namespace": "shop"}, nil, Target{}, false},
		{"no namespace", map[string]string{"pod": "api-1", "service": "api"}, nil, Target{}, false},
		{"nothing", nil, nil, Target{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := TargetFor(tt.labels, tt.svc)
			if got != tt.want || ok != tt.ok {
				t.Errorf("TargetFor = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReducePod(t *testing.T) {
	created := t0.Add(-time.Hour)
	waiting := func(reason, msg string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			setReady(p, false)
			p.Status.ContainerStatuses[0].Ready = false
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
		}
	}
	lastTerminated := func(reason string, code int32, restarts int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].RestartCount = restarts
			p.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code},
			}
		}
	}
	pending := func(p *corev1.Pod) {
		p.Spec.NodeName = ""
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
			Message: "0/3 nodes are available: 3 Insufficient cpu.",
		}}}
	}
	tests := []struct {
		name   string
		mutate []func(*corev1.Pod)
		want   diagnosis.Pod // Name, Created, Node and ReplicaSet are filled in
	}{
		{"healthy", nil, diagnosis.Pod{Phase: "Running", Ready: true}},
		{"crash loop", []func(*corev1.Pod){crashLooping(4)}, diagnosis.Pod{
			Phase: "Running", Restarts: 4, Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container",
			Container: "api", LastTerminated: "Error (exit 1)"}},
		{"crash loop after OOM", []func(*corev1.Pod){crashLooping(7), lastTerminated("OOMKilled", 137, 7)}, diagnosis.Pod{
			Phase: "Running", Restarts: 7, Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container",
			Container: "api", LastTerminated: "OOMKilled (exit 137)"}},
		{"image pull", []func(*corev1.Pod){waiting("ImagePullBackOff", `Back-off pulling image "shop/api:1.5.0"`)}, diagnosis.Pod{
			Phase: "Running", Reason: "ImagePullBackOff", Message: `Back-off pulling image "shop/api:1.5.0"`, Container: "api"}},
		{"err image pull", []func(*corev1.Pod){waiting("ErrImagePull", "not found")}, diagnosis.Pod{
			Phase: "Running", Reason: "ErrImagePull", Message: "not found", Container: "api"}},
		{"config error", []func(*corev1.Pod){waiting("CreateContainerConfigError", `secret "db" not found`)}, diagnosis.Pod{
			Phase: "Running", Reason: "CreateContainerConfigError", Message: `secret "db" not found`, Container: "api"}},
		{"unknown waiting reason", []func(*corev1.Pod){waiting("SomethingNew", "")}, diagnosis.Pod{
			Phase: "Running", Reason: "SomethingNew", Container: "api"}},
		{"creating", []func(*corev1.Pod){waiting("ContainerCreating", "")}, diagnosis.Pod{
			Phase: "Running", Reason: "ContainerCreating", Container: "api"}},
		{"running again after OOM", []func(*corev1.Pod){lastTerminated("OOMKilled", 137, 2)}, diagnosis.Pod{
			Phase: "Running", Ready: true, Restarts: 2, Reason: "OOMKilled", Container: "api", LastTerminated: "OOMKilled (exit 137)"}},
		{"running again after error", []func(*corev1.Pod){lastTerminated("Error", 2, 1)}, diagnosis.Pod{
			Phase: "Running", Ready: true, Restarts: 1, Container: "api", LastTerminated: "Error (exit 2)"}},
		{"termination without reason", []func(*corev1.Pod){lastTerminated("", 143, 1)}, diagnosis.Pod{
			Phase: "Running", Ready: true, Restarts: 1, Container: "api", LastTerminated: "Terminated (exit 143)"}},
		{"exited, not restarted yet", []func(*corev1.Pod){func(p *corev1.Pod) {
			setReady(p, false)
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Message: "boom"}}
		}}, diagnosis.Pod{Phase: "Running", Reason: "Error", Message: "boom", Container: "api"}},
		{"unschedulable", []func(*corev1.Pod){pending}, diagnosis.Pod{
			Phase: "Pending", Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient cpu."}},
		{"evicted", []func(*corev1.Pod){func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "Evicted", "The node was low on resource: memory."
			setReady(p, false)
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}}
		}}, diagnosis.Pod{Phase: "Failed", Reason: "Evicted", Message: "The node was low on resource: memory."}},
		{"init container crash loop", []func(*corev1.Pod){func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			setReady(p, false)
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{
				Name: "migrate", RestartCount: 3,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}},
			}}
			p.Status.ContainerStatuses[0].Ready = false
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
		}}, diagnosis.Pod{Phase: "Pending", Restarts: 3, Reason: "CrashLoopBackOff", Container: "migrate", LastTerminated: "Error (exit 1)"}},
		{"second container is the broken one", []func(*corev1.Pod){func(p *corev1.Pod) {
			setReady(p, false)
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: "sidecar", RestartCount: 9,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}},
			})
			p.Status.ContainerStatuses[0].RestartCount = 1
			p.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}}
		}}, diagnosis.Pod{Phase: "Running", Restarts: 10, Reason: "CrashLoopBackOff", Container: "sidecar", LastTerminated: "OOMKilled (exit 137)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPod("shop", "api-7d9f", "api-7d9f-x2", created, tt.mutate...)
			got := reducePod(p)
			want := tt.want
			want.Name, want.Created, want.ReplicaSet = "api-7d9f-x2", created, "api-7d9f"
			if p.Spec.NodeName != "" {
				want.Node = "node-1"
			}
			if got != want {
				t.Errorf("reducePod:\n got %+v\nwant %+v", got, want)
			}
			// The transform keeps all that the reduction reads.
			tp, _ := transformPod(p.DeepCopy())
			if again := reducePod(tp.(*corev1.Pod)); again != got {
				t.Errorf("reducePod after transform:\n got %+v\nwant %+v", again, got)
			}
		})
	}
}

func TestPodOrder(t *testing.T) {
	created := t0.Add(-time.Hour)
	notReady := func(p *corev1.Pod) { setReady(p, false) }
	restarts := func(n int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Status.ContainerStatuses[0].RestartCount = n }
	}
	imagePull := func(p *corev1.Pod) {
		setReady(p, false)
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}
	}
	pods := []*corev1.Pod{
		newPod("shop", "api-1", "a-healthy", created),
		newPod("shop", "api-1", "b-restarted", created, restarts(3)),
		newPod("shop", "api-1", "c-notready", created, notReady),
		newPod("shop", "api-1", "d-crash", created, crashLooping(2)),
		newPod("shop", "api-1", "e-crash-more", created, crashLooping(5)),
		newPod("shop", "api-1", "f-pull", created, imagePull),
		newPod("shop", "api-1", "g-healthy", created),
	}
	b := &builder{s: &diagnosis.Snapshot{}, pods: pods, set: New(nil, Options{}).all}
	b.finish(t0.Add(-time.Minute), t0)
	var got []string
	for _, p := range b.s.Pods {
		got = append(got, p.Name)
	}
	want := []string{"e-crash-more", "d-crash", "f-pull", "c-notready", "b-restarted", "a-healthy", "g-healthy"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestRollouts(t *testing.T) {
	c := func(images ...string) []corev1.Container {
		var out []corev1.Container
		for _, im := range images {
			name, image, _ := strings.Cut(im, "=")
			out = append(out, container(name, image))
		}
		return out
	}
	rss := []*appsv1.ReplicaSet{
		newReplicaSet("shop", "api", "a1", "1", t0.Add(-72*time.Hour), 0, c("api=shop/api:1.4.1")...),
		newReplicaSet("shop", "api", "c3", "3", t0.Add(-10*time.Minute), 3, c("api=shop/api:1.5.0", "envoy=envoy:1.30")...),
		newReplicaSet("shop", "api", "b2", "2", t0.Add(-24*time.Hour), 0, c("api=shop/api:1.4.2", "cache=redis:7")...),
		newReplicaSet("shop", "api", "d4", "4", t0.Add(-time.Minute), 3, c("api=shop/api:1.5.0", "envoy=envoy:1.30")...),
	}
	sortReplicaSets(rss)
	got := rollouts(rss)
	want := []diagnosis.Rollout{
		{Revision: 4, ReplicaSet: "api-d4", Created: t0.Add(-time.Minute), Images: []string{"shop/api:1.5.0", "envoy:1.30"}, Replicas: 3},
		{Revision: 3, ReplicaSet: "api-c3", Created: t0.Add(-10 * time.Minute), Images: []string{"shop/api:1.5.0", "envoy:1.30"},
			Change: "api: shop/api:1.4.2 → shop/api:1.5.0, envoy: added envoy:1.30, cache: removed redis:7", Replicas: 3},
		{Revision: 2, ReplicaSet: "api-b2", Created: t0.Add(-24 * time.Hour), Images: []string{"shop/api:1.4.2", "redis:7"},
			Change: "api: shop/api:1.4.1 → shop/api:1.4.2, cache: added redis:7", Replicas: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rollouts:\n got %+v\nwant %+v", got, want)
	}
	if r := rollouts(rss[3:]); len(r) != 1 || r[0].Change != "" || r[0].Revision != 1 {
		t.Errorf("single revision: %+v", r)
	}
	if r := rollouts(nil); r != nil {
		t.Errorf("no ReplicaSet: %+v", r)
	}
}

// shop is a deployment api (3 desired, none available) at revision 2
// (shop/api:1.4.2 → 1.5.0), whose three new pods crash, with events.
func shop() []runtime.Object {
	objs := []runtime.Object{
		newDeployment("shop", "api", 3, "2", appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3}),
		newReplicaSet("shop", "api", "6b8f", "1", t0.Add(-48*time.Hour), 0, container("api", "shop/api:1.4.2")),
		newReplicaSet("shop", "api", "7d9f", "2", t0.Add(-8*time.Minute), 3, container("api", "shop/api:1.5.0")),
	}
	for i := range 3 {
		objs = append(objs, newPod("shop", "api-7d9f", fmt.Sprintf("api-7d9f-%d", i), t0.Add(-8*time.Minute), crashLooping(int32(4+i))))
	}
	return objs
}

func TestSnapshotDeployment(t *testing.T) {
	objs := shop()
	objs = append(objs,
		// Events: in the window, before it, Normal, of another object.
		newEvent("shop", "Pod", "api-7d9f-0", "Warning", "BackOff", "Back-off restarting failed container api", t0.Add(-time.Minute)),
		newEvent("shop", "Pod", "api-7d9f-2", "Warning", "BackOff", "Back-off restarting failed container api", t0.Add(-30*time.Second)),
		newEvent("shop", "ReplicaSet", "api-7d9f", "Warning", "FailedCreate", "exceeded quota", t0.Add(-5*time.Minute)),
		newEvent("shop", "Deployment", "api", "Warning", "ProgressDeadlineExceeded", "stuck", t0.Add(-2*time.Minute)),
		newEvent("shop", "Pod", "api-7d9f-1", "Warning", "Unhealthy", "Liveness probe failed", t0.Add(-20*time.Minute)),
		newEvent("shop", "Pod", "api-7d9f-1", "Normal", "Pulled", "pulled", t0.Add(-time.Minute)),
		newEvent("shop", "Pod", "web-1", "Warning", "BackOff", "other workload", t0.Add(-time.Minute)),
		// Another deployment's ReplicaSet and pod, and an orphan of an
		// earlier "api" (another UID).
		newReplicaSet("shop", "web", "1111", "1", t0.Add(-time.Hour), 1, container("web", "shop/web:2")),
		newPod("shop", "web-1111", "web-1111-a", t0.Add(-time.Hour)),
	)
	orphan := newReplicaSet("shop", "api", "0ld0", "9", t0.Add(-100*time.Hour), 0, container("api", "shop/api:0.1"))
	orphan.OwnerReferences[0].UID = "an-earlier-api"
	objs = append(objs, orphan, newPod("shop", "api-0ld0", "api-0ld0-z", t0.Add(-100*time.Hour)))

	c, client := testCluster(t, Options{}, objs...)
	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)

	if s.Namespace != "shop" || s.Workload != "deployment/api" || len(s.Partial) != 0 {
		t.Errorf("snapshot header: %q %q partial %q", s.Namespace, s.Workload, s.Partial)
	}
	if want := (diagnosis.Deployment{Name: "api", Desired: 3, Updated: 3, Generation: 4, Revision: 2}); s.Deployment == nil || *s.Deployment != want {
		t.Errorf("deployment = %+v, want %+v", s.Deployment, want)
	}
	var names []string
	for _, p := range s.Pods {
		names = append(names, p.Name)
		if p.Reason != "CrashLoopBackOff" || p.ReplicaSet != "api-7d9f" || p.LastTerminated != "Error (exit 1)" || p.Node != "node-1" {
			t.Errorf("pod %+v", p)
		}
	}
	if want := []string{"api-7d9f-2", "api-7d9f-1", "api-7d9f-0"}; !reflect.DeepEqual(names, want) || s.PodsTotal != 3 {
		t.Errorf("pods = %v (total %d), want %v", names, s.PodsTotal, want)
	}
	if len(s.Rollouts) != 2 || s.Rollouts[0].Revision != 2 || s.Rollouts[1].Revision != 1 ||
		s.Rollouts[0].Change != "api: shop/api:1.4.2 → shop/api:1.5.0" || s.Rollouts[0].Replicas != 3 {
		t.Errorf("rollouts = %+v", s.Rollouts)
	}
	var evs []string
	for _, e := range s.Events {
		evs = append(evs, e.Object+" "+e.Reason)
	}
	want := []string{"Pod/api-7d9f-2 BackOff", "Pod/api-7d9f-0 BackOff", "Deployment/api ProgressDeadlineExceeded", "ReplicaSet/api-7d9f FailedCreate"}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("events = %v, want %v", evs, want)
	}
	if s.Events[0].Time != t0.Add(-30*time.Second) || s.Events[0].Count != 1 || s.Events[0].Message == "" {
		t.Errorf("event = %+v", s.Events[0])
	}
	if r := Reachable(s); !r.Known || r.Value || r.Note != "0/3 pods available" || r.Source != "kubernetes" {
		t.Errorf("Reachable = %+v", r)
	}
	if n := len(client.Actions()); n != 0 {
		t.Errorf("snapshot made %d API calls: %v", n, client.Actions())
	}
}

func TestSnapshotCaps(t *testing.T) {
	objs := []runtime.Object{
		newDeployment("shop", "api", 30, "1", appsv1.DeploymentStatus{Replicas: 30, AvailableReplicas: 28}),
		newReplicaSet("shop", "api", "7d9f", "1", t0.Add(-time.Hour), 30, container("api", "shop/api:1")),
	}
	for i := range 30 {
		name := fmt.Sprintf("api-7d9f-%02d", i)
		var m []func(*corev1.Pod)
		if i == 7 || i == 8 {
			m = append(m, crashLooping(int32(i)))
		}
		objs = append(objs, newPod("shop", "api-7d9f", name, t0.Add(-time.Hour), m...))
		for j := range 2 {
			objs = append(objs, newEvent("shop", "Pod", name, "Warning", "Unhealthy", "probe failed", t0.Add(-time.Duration(i*2+j)*time.Second)))
		}
	}
	c, _ := testCluster(t, Options{}, objs...)

	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	if len(s.Pods) != diagnosis.MaxPods || s.PodsTotal != 30 || s.Pods[0].Name != "api-7d9f-08" || s.Pods[1].Name != "api-7d9f-07" {
		t.Errorf("pods: %d of %d, first %s %s", len(s.Pods), s.PodsTotal, s.Pods[0].Name, s.Pods[1].Name)
	}
	if len(s.Events) != diagnosis.MaxEvents {
		t.Fatalf("events: %d", len(s.Events))
	}
	for i, e := range s.Events {
		if want := t0.Add(-time.Duration(i) * time.Second); !e.Time.Equal(want) {
			t.Errorf("event %d at %s, want %s (newest first)", i, e.Time, want)
		}
	}
	if r := Reachable(s); r.Known || !strings.Contains(r.Note, "28/30 pods available") {
		t.Errorf("Reachable = %+v", r)
	}

	// The alert's pod is shown even when 20 others sort before it.
	s = c.Snapshot(Target{Namespace: "shop", Pod: "api-7d9f-29"}, t0)
	if s.Workload != "deployment/api" || len(s.Pods) != diagnosis.MaxPods || s.Pods[diagnosis.MaxPods-1].Name != "api-7d9f-29" {
		t.Errorf("pod target: %s, %d pods, last %s", s.Workload, len(s.Pods), s.Pods[len(s.Pods)-1].Name)
	}
}

func TestSnapshotEventWindow(t *testing.T) {
	objs := shop()
	ev := func(name string, mutate func(*corev1.Event)) *corev1.Event {
		e := newEvent("shop", "Pod", "api-7d9f-0", "Warning", name, name, time.Time{})
		e.FirstTimestamp, e.LastTimestamp = metav1.Time{}, metav1.Time{}
		mutate(e)
		return e
	}
	objs = append(objs,
		ev("last", func(e *corev1.Event) {
			e.FirstTimestamp = metav1.NewTime(t0.Add(-time.Hour))
			e.LastTimestamp = metav1.NewTime(t0.Add(-1 * time.Minute))
		}),
		ev("series", func(e *corev1.Event) {
			e.EventTime = metav1.NewMicroTime(t0.Add(-time.Hour))
			e.Series = &corev1.EventSeries{Count: 12, LastObservedTime: metav1.NewMicroTime(t0.Add(-2 * time.Minute))}
			e.Count = 0
		}),
		ev("eventtime", func(e *corev1.Event) { e.EventTime = metav1.NewMicroTime(t0.Add(-3 * time.Minute)) }),
		ev("first", func(e *corev1.Event) { e.FirstTimestamp = metav1.NewTime(t0.Add(-4 * time.Minute)) }),
		ev("created", func(e *corev1.Event) { e.CreationTimestamp = metav1.NewTime(t0.Add(-5 * time.Minute)) }),
		ev("old", func(e *corev1.Event) { e.LastTimestamp = metav1.NewTime(t0.Add(-16 * time.Minute)) }),
		ev("edge", func(e *corev1.Event) { e.LastTimestamp = metav1.NewTime(t0.Add(-15 * time.Minute)) }),
		ev("future", func(e *corev1.Event) { e.LastTimestamp = metav1.NewTime(t0.Add(2 * time.Minute)) }),
		ev("skew", func(e *corev1.Event) { e.LastTimestamp = metav1.NewTime(t0.Add(30 * time.Second)) }),
	)
	c, _ := testCluster(t, Options{}, objs...)
	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	var got []string
	for _, e := range s.Events {
		got = append(got, e.Reason)
	}
	if want := []string{"skew", "last", "series", "eventtime", "first", "created"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if s.Events[2].Count != 12 {
		t.Errorf("series count = %d", s.Events[2].Count)
	}

	c, _ = testCluster(t, Options{EventWindow: 150 * time.Second}, objs...)
	s = c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	if len(s.Events) != 3 {
		t.Errorf("2m30s window: %+v", s.Events)
	}
}

func TestSnapshotTargets(t *testing.T) {
	objs := shop()
	sts := newPod("shop", "", "db-0", t0.Add(-time.Hour), crashLooping(2))
	sts.Labels = map[string]string{"app": "db", "tier": "data"}
	sts.OwnerReferences = ownerRef("apps/v1", "StatefulSet", "shop", "db")
	sts1 := newPod("shop", "", "db-1", t0.Add(-time.Hour))
	sts1.Labels = map[string]string{"app": "db", "tier": "data"}
	sts1.OwnerReferences = ownerRef("apps/v1", "StatefulSet", "shop", "db")
	bare := newPod("shop", "", "debug", t0.Add(-time.Hour))
	other := newPod("other", "", "db-9", t0.Add(-time.Hour))
	other.Labels = map[string]string{"app": "db"}
	objs = append(objs, sts, sts1, bare, other,
		newEvent("shop", "StatefulSet", "db", "Warning", "FailedCreate", "quota", t0.Add(-time.Minute)),
		newEvent("shop", "Pod", "gone-1", "Warning", "Evicted", "low memory", t0.Add(-time.Minute)),
	)
	c, _ := testCluster(t, Options{}, objs...)

	tests := []struct {
		name     string
		target   Target
		workload string
		pods     []string
		events   int
		partial  string
	}{
		{"pod of a deployment", Target{Namespace: "shop", Pod: "api-7d9f-1"}, "deployment/api",
			[]string{"api-7d9f-2", "api-7d9f-1", "api-7d9f-0"}, 0, ""},
		{"pod of a statefulset", Target{Namespace: "shop", Pod: "db-1"}, "statefulset/db", []string{"db-0", "db-1"}, 1, ""},
		{"bare pod", Target{Namespace: "shop", Pod: "debug"}, "pod/debug", []string{"debug"}, 0, ""},
		{"gone pod", Target{Namespace: "shop", Pod: "gone-1"}, "pod/gone-1", nil, 1, "pod shop/gone-1 not found"},
		{"selector", Target{Namespace: "shop", Selector: "app=db,tier in (data)"}, "pods app=db,tier in (data)", []string{"db-0", "db-1"}, 0, ""},
		{"bad selector", Target{Namespace: "shop", Selector: "app=(("}, "pods app=((", nil, 0, "invalid selector"},
		{"missing deployment", Target{Namespace: "shop", Deployment: "nope"}, "deployment/nope", nil, 0, "deployment shop/nope not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := c.Snapshot(tt.target, t0)
			var pods []string
			for _, p := range s.Pods {
				pods = append(pods, p.Name)
			}
			if s.Workload != tt.workload || !reflect.DeepEqual(pods, tt.pods) || len(s.Events) != tt.events {
				t.Errorf("snapshot %s pods %v events %+v; want %s %v %d events", s.Workload, pods, s.Events, tt.workload, tt.pods, tt.events)
			}
			if tt.partial == "" && len(s.Partial) > 0 || tt.partial != "" && (len(s.Partial) != 1 || !strings.Contains(s.Partial[0], tt.partial)) {
				t.Errorf("partial = %q, want %q", s.Partial, tt.partial)
			}
		})
	}
}

func TestSnapshotPartial(t *testing.T) {
	// ReplicaSets without their deployment: shown, and said.
	objs := shop()[1:]
	c, _ := testCluster(t, Options{}, objs...)
	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	if s.Deployment != nil || len(s.Pods) != 3 || len(s.Rollouts) != 2 || len(s.Partial) != 1 || !strings.Contains(s.Partial[0], "not found; showing its ReplicaSets") {
		t.Errorf("no deployment: %+v", s)
	}
	if r := Reachable(s); r.Known {
		t.Errorf("Reachable without deployment = %+v", r)
	}

	// A deployment without cached ReplicaSets: its selector finds its pods.
	objs = shop()
	c, _ = testCluster(t, Options{}, objs[0], objs[3], objs[4])
	s = c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	if s.Deployment == nil || len(s.Pods) != 2 || len(s.Partial) != 0 {
		t.Errorf("no ReplicaSets: %+v", s)
	}

	// Not synced: said, and what is there is still returned.
	c, _ = testCluster(t, Options{}, shop()...)
	c.synced.Store(false)
	s = c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	if len(s.Pods) != 3 || len(s.Partial) != 1 || !strings.Contains(s.Partial[0], "not synced yet (pods, deployments, replicasets, events)") {
		t.Errorf("not synced: %+v", s.Partial)
	}

	// A namespace that is not watched.
	c = New(nil, Options{Namespaces: []string{"shop", "web", "shop", ""}})
	c.synced.Store(true)
	if len(c.sets) != 2 || c.setFor("other") != nil || c.setFor("web") == nil {
		t.Fatalf("namespaces: %d sets", len(c.sets))
	}
	s = c.Snapshot(Target{Namespace: "other", Deployment: "api"}, t0)
	if len(s.Partial) != 1 || !strings.Contains(s.Partial[0], "namespace other is not watched") || s.Workload != "deployment/api" {
		t.Errorf("not watched: %+v", s)
	}
}

func TestReachable(t *testing.T) {
	tests := []struct {
		name  string
		s     *diagnosis.Snapshot
		known bool
		note  string
	}{
		{"nil", nil, false, "kubernetes: no deployment found"},
		{"no deployment", &diagnosis.Snapshot{}, false, "kubernetes: no deployment found"},
		{"none available", &diagnosis.Snapshot{Deployment: &diagnosis.Deployment{Desired: 3, Ready: 1}}, true, "0/3 pods available"},
		{"some available", &diagnosis.Snapshot{Deployment: &diagnosis.Deployment{Desired: 3, Available: 1}}, false,
			"kubernetes: 1/3 pods available, which does not prove users can reach it"},
		{"scaled to zero", &diagnosis.Snapshot{Deployment: &diagnosis.Deployment{}}, false, "kubernetes: deployment scaled to 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := severity.Bool{Known: tt.known, Source: "kubernetes", Note: tt.note}
			if got := Reachable(tt.s); got != want {
				t.Errorf("Reachable = %+v, want %+v", got, want)
			}
		})
	}
}

func TestTransforms(t *testing.T) {
	p := newPod("shop", "api-7d9f", "api-7d9f-0", t0, crashLooping(3))
	p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	p.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 10000)}
	p.OwnerReferences = append([]metav1.OwnerReference{{Kind: "Other", Name: "x"}}, p.OwnerReferences...)
	p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}}
	p.Status.ContainerStatuses[0].ImageID = "sha256:abc"
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated.Message = strings.Repeat("é", 2000)
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated.ContainerID = "containerd://abc"
	want := reducePod(p)

	out, err := transformPod(p)
	if err != nil {
		t.Fatal(err)
	}
	tp := out.(*corev1.Pod)
	if tp.ManagedFields != nil || tp.Annotations != nil || tp.Spec.Volumes != nil || tp.Spec.Containers[0].Env != nil ||
		tp.Status.PodIPs != nil || tp.Status.ContainerStatuses[0].ImageID != "" {
		t.Errorf("pod not stripped: %+v", tp)
	}
	if tp.Spec.Containers[0].Image == "" || tp.Spec.NodeName != "node-1" || tp.Labels["app"] != "api" ||
		len(tp.OwnerReferences) != 1 || tp.OwnerReferences[0].Kind != "ReplicaSet" || tp.UID == "" {
		t.Errorf("pod lost what is needed: %+v", tp)
	}
	if m := tp.Status.ContainerStatuses[0].LastTerminationState.Terminated.Message; len(m) > maxMessage || !strings.HasPrefix(m, "éé") {
		t.Errorf("termination message: %d bytes", len(m))
	}
	if got := reducePod(tp); got != want {
		t.Errorf("reduction changed by transform:\n got %+v\nwant %+v", got, want)
	}
	again, _ := transformPod(tp.DeepCopy())
	if !reflect.DeepEqual(again, tp) {
		t.Errorf("pod transform not idempotent")
	}

	rs := newReplicaSet("shop", "api", "7d9f", "2", t0, 3, container("api", "shop/api:1.5.0"))
	rs.Spec.Template.Spec.Containers[0].Args = []string{"--big"}
	out, _ = transformReplicaSet(rs)
	trs := out.(*appsv1.ReplicaSet)
	if !reflect.DeepEqual(trs.Annotations, map[string]string{RevisionAnnotation: "2"}) || trs.Spec.Template.Spec.Containers[0].Args != nil ||
		trs.Spec.Template.Spec.Containers[0].Image != "shop/api:1.5.0" || *trs.Spec.Replicas != 3 || len(trs.OwnerReferences) != 1 {
		t.Errorf("replicaset: %+v", trs)
	}

	d := newDeployment("shop", "api", 3, "2", appsv1.DeploymentStatus{AvailableReplicas: 2})
	d.Annotations["note"] = "x"
	out, _ = transformDeployment(d)
	td := out.(*appsv1.Deployment)
	if !reflect.DeepEqual(td.Annotations, map[string]string{RevisionAnnotation: "2"}) || td.Spec.Template.Spec.Containers != nil ||
		*td.Spec.Replicas != 3 || td.Status.AvailableReplicas != 2 || td.Spec.Selector == nil {
		t.Errorf("deployment: %+v", td)
	}

	e := newEvent("shop", "Pod", "api-1", "Warning", "BackOff", "m", t0)
	e.Source = corev1.EventSource{Component: "kubelet", Host: "node-1"}
	e.Annotations = map[string]string{"a": "b"}
	out, _ = transformEvent(e)
	te := out.(*corev1.Event)
	if te.Source.Component != "" || te.Annotations != nil || te.InvolvedObject.Name != "api-1" || te.Reason != "BackOff" || !te.LastTimestamp.Time.Equal(t0) {
		t.Errorf("event: %+v", te)
	}

	// Other types pass through.
	if out, err := transformPod("x"); out != "x" || err != nil {
		t.Errorf("passthrough: %v %v", out, err)
	}
}

func TestSnapshotOldReplicaSets(t *testing.T) {
	objs := []runtime.Object{newDeployment("shop", "api", 2, "6", appsv1DeploymentAvailable(2))}
	for rev := 1; rev <= 6; rev++ {
		replicas := int32(0)
		if rev == 6 {
			replicas = 2
		}
		rs := newReplicaSet("shop", "api", fmt.Sprintf("r%d", rev), fmt.Sprint(rev), t0.Add(-time.Duration(10-rev)*time.Hour), replicas,
			container("api", fmt.Sprintf("shop/api:1.%d", rev)))
		if rev == 5 {
			rs.Status.Replicas = 1 // scaling down: its last pod is terminating
		}
		objs = append(objs, rs,
			newEvent("shop", "ReplicaSet", rs.Name, "Warning", "FailedCreate", "rev "+fmt.Sprint(rev), t0.Add(-time.Duration(rev)*time.Second)))
	}
	objs = append(objs,
		newPod("shop", "api-r6", "api-r6-a", t0), newPod("shop", "api-r6", "api-r6-b", t0),
		newPod("shop", "api-r5", "api-r5-a", t0.Add(-time.Hour)),
		// a pod the cache still holds of a ReplicaSet already scaled to zero
		newPod("shop", "api-r4", "api-r4-a", t0.Add(-2*time.Hour)),
	)
	c, _ := testCluster(t, Options{}, objs...)
	s := c.Snapshot(Target{Namespace: "shop", Deployment: "api"}, t0)
	var revs []int64
	for _, r := range s.Rollouts {
		revs = append(revs, r.Revision)
	}
	var pods, events []string
	for _, p := range s.Pods {
		pods = append(pods, p.Name)
	}
	for _, e := range s.Events {
		events = append(events, e.Message)
	}
	if !reflect.DeepEqual(revs, []int64{6, 5, 4}) || !reflect.DeepEqual(pods, []string{"api-r5-a", "api-r6-a", "api-r6-b"}) ||
		!reflect.DeepEqual(events, []string{"rev 4", "rev 5", "rev 6"}) {
		t.Errorf("rollouts %v, pods %v, events %v", revs, pods, events)
	}
	if s.Rollouts[0].Change != "api: shop/api:1.5 → shop/api:1.6" || s.Rollouts[2].Change != "api: shop/api:1.3 → shop/api:1.4" {
		t.Errorf("changes: %+v", s.Rollouts)
	}
}
