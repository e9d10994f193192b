package kube

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/amtriage/amtriage/diagnosis"
	"github.com/amtriage/amtriage/internal/kubetest"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/signal"
)

// TestIntegration runs the informers against a real kube-apiserver (no
// controllers, scheduler or kubelet: the test writes every object and
// status itself) and checks the snapshots built from what they cached.
func TestIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	env := kubetest.Start(t)
	client, requests := countingClient(t, env.Config)

	t.Run("crashloop after rollout", func(t *testing.T) { testCrashLoop(t, env, client, requests) })
	t.Run("unschedulable", func(t *testing.T) { testUnschedulable(t, env, client) })
}

// countingClient is a clientset that counts its HTTP requests.
func countingClient(t *testing.T, cfg *rest.Config) (kubernetes.Interface, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			n.Add(1)
			return rt.RoundTrip(r)
		})
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client, &n
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// startCluster starts a Cluster's informers for the test's duration.
func startCluster(t *testing.T, client kubernetes.Interface, o Options) *Cluster {
	t.Helper()
	c := New(client, o)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		c.Shutdown()
	})
	c.Start(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitForSync(wctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls the snapshot of target until ok accepts it.
func waitFor(t *testing.T, c *Cluster, target Target, ok func(*diagnosis.Snapshot) bool) *diagnosis.Snapshot {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := c.Snapshot(target, time.Now())
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot never complete: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// must fails the test on err and returns v.
func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// world writes objects into one namespace of the API server.
type world struct {
	t   *testing.T
	ctx context.Context
	cs  kubernetes.Interface
	ns  string
}

func (w *world) deployment(name string, replicas int32, rev string, st appsv1.DeploymentStatus) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := must[*appsv1.Deployment](w.t)(w.cs.AppsV1().Deployments(w.ns).Create(w.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{RevisionAnnotation: rev}},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "shop/" + name + ":latest"}}},
			},
		},
	}, metav1.CreateOptions{}))
	st.ObservedGeneration = d.Generation
	d.Status = st
	return must[*appsv1.Deployment](w.t)(w.cs.AppsV1().Deployments(w.ns).UpdateStatus(w.ctx, d, metav1.UpdateOptions{}))
}

func (w *world) replicaSet(d *appsv1.Deployment, hash, rev, image string, replicas int32) *appsv1.ReplicaSet {
	labels := map[string]string{"app": d.Name, "pod-template-hash": hash}
	return must[*appsv1.ReplicaSet](w.t)(w.cs.AppsV1().ReplicaSets(w.ns).Create(w.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Labels: labels,
			Annotations: map[string]string{RevisionAnnotation: rev},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
				Controller: new(true), BlockOwnerDeletion: new(true),
			}},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: d.Name, Image: image}}},
			},
		},
	}, metav1.CreateOptions{}))
}

// pod creates a pod of rs on node (may be empty) and sets its status.
func (w *world) pod(rs *appsv1.ReplicaSet, suffix, node string, st corev1.PodStatus) *corev1.Pod {
	tmpl := rs.Spec.Template
	p := must[*corev1.Pod](w.t)(w.cs.CoreV1().Pods(w.ns).Create(w.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: rs.Name + "-" + suffix, Labels: tmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID,
				Controller: new(true), BlockOwnerDeletion: new(true),
			}},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: tmpl.Spec.Containers},
	}, metav1.CreateOptions{}))
	p.Status = st
	return must[*corev1.Pod](w.t)(w.cs.CoreV1().Pods(w.ns).UpdateStatus(w.ctx, p, metav1.UpdateOptions{}))
}

// warning records a Warning event of pod p.
func (w *world) warning(p *corev1.Pod, reason, msg, component string, last time.Time, count int32) {
	ref := corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: w.ns, Name: p.Name, UID: p.UID}
	must[*corev1.Event](w.t)(w.cs.CoreV1().Events(w.ns).Create(w.ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: p.Name + "."},
		InvolvedObject: ref,
		Type:           corev1.EventTypeWarning, Reason: reason, Message: msg,
		Source:         corev1.EventSource{Component: component},
		FirstTimestamp: metav1.NewTime(last.Add(-10 * time.Minute)),
		LastTimestamp:  metav1.NewTime(last),
		Count:          count,
	}, metav1.CreateOptions{}))
}

func testCrashLoop(t *testing.T, env *kubetest.Env, client kubernetes.Interface, requests *atomic.Int64) {
	ns := env.NewNamespace(t, "crash")
	reg := prometheus.NewRegistry()
	metrics := signal.NewMetrics(reg)
	// The informers start on an empty namespace: what follows arrives by watch.
	c := startCluster(t, client, Options{Namespaces: []string{ns}, Registerer: reg, Metrics: metrics})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(gaugeText(1)), "amtriage_kubernetes_informer_synced"); err != nil {
		t.Error(err)
	}

	ctx := context.Background()
	w := &world{t: t, ctx: ctx, cs: env.Client, ns: ns}
	now := time.Now().Truncate(time.Second)
	d := w.deployment("api", 3, "2", appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, UnavailableReplicas: 3})
	w.replicaSet(d, "6b8f", "1", "shop/api:1.4.2", 0)
	rs2 := w.replicaSet(d, "7d9f", "2", "shop/api:1.5.0", 3)
	crashing := corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "api", Image: "shop/api:1.5.0", RestartCount: 4,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container=api",
			}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Error", ExitCode: 1,
				StartedAt: metav1.NewTime(now.Add(-2 * time.Minute)), FinishedAt: metav1.NewTime(now.Add(-2 * time.Minute)),
			}},
		}},
	}
	var pods []*corev1.Pod
	for _, suffix := range []string{"a", "b", "c"} {
		pods = append(pods, w.pod(rs2, suffix, "node-1", crashing))
	}
	for i, p := range pods {
		w.warning(p, "BackOff", "Back-off restarting failed container api in pod "+p.Name, "kubelet",
			now.Add(time.Duration(i-3)*time.Minute), int32(5+i))
	}
	w.warning(pods[0], "Unhealthy", "Readiness probe failed", "kubelet", now.Add(-30*time.Minute), 1)

	target := Target{Namespace: ns, Deployment: "api"}
	s := waitFor(t, c, target, func(s *diagnosis.Snapshot) bool {
		return len(s.Pods) == 3 && s.Pods[0].Reason == "CrashLoopBackOff" && s.Pods[2].Reason == "CrashLoopBackOff" &&
			len(s.Events) == 3 && len(s.Rollouts) == 2 && s.Deployment != nil && s.Deployment.Desired == 3 && s.Deployment.Updated == 3
	})

	if s.Workload != "deployment/api" || s.Namespace != ns || s.PodsTotal != 3 || len(s.Partial) != 0 {
		t.Errorf("snapshot: %q %q total %d partial %q", s.Workload, s.Namespace, s.PodsTotal, s.Partial)
	}
	if want := (diagnosis.Deployment{Name: "api", Desired: 3, Updated: 3, Generation: d.Generation, Revision: 2}); *s.Deployment != want {
		t.Errorf("deployment = %+v, want %+v", *s.Deployment, want)
	}
	for i, p := range s.Pods {
		want := diagnosis.Pod{
			Name: "api-7d9f-" + string(rune('a'+i)), Phase: "Running", Restarts: 4,
			Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container=api", Container: "api",
			LastTerminated: "Error (exit 1)", Node: "node-1", Created: pods[i].CreationTimestamp.Time, ReplicaSet: "api-7d9f",
		}
		if p != want {
			t.Errorf("pod %d:\n got %+v\nwant %+v", i, p, want)
		}
	}
	if r := Reachable(s); !r.Known || r.Value || r.Note != "0/3 pods available" || r.Source != "kubernetes" {
		t.Errorf("Reachable = %+v", r)
	}
	var revs []int64
	for _, r := range s.Rollouts {
		revs = append(revs, r.Revision)
	}
	if !reflect.DeepEqual(revs, []int64{2, 1}) || s.Rollouts[0].Change != "api: shop/api:1.4.2 → shop/api:1.5.0" ||
		s.Rollouts[0].ReplicaSet != "api-7d9f" || s.Rollouts[0].Replicas != 3 || s.Rollouts[0].Created.IsZero() ||
		!reflect.DeepEqual(s.Rollouts[1].Images, []string{"shop/api:1.4.2"}) || s.Rollouts[1].Change != "" {
		t.Errorf("rollouts = %+v", s.Rollouts)
	}
	var events []string
	for _, e := range s.Events {
		events = append(events, e.Object+" "+e.Reason)
	}
	if want := []string{"Pod/api-7d9f-c BackOff", "Pod/api-7d9f-b BackOff", "Pod/api-7d9f-a BackOff"}; !reflect.DeepEqual(events, want) {
		t.Errorf("events = %v, want %v", events, want)
	}
	if e := s.Events[0]; !e.Time.Equal(now.Add(-time.Minute)) || e.Count != 7 || !strings.Contains(e.Message, "Back-off restarting") {
		t.Errorf("event = %+v", e)
	}

	// The alert's pod leads to its deployment.
	if ps := c.Snapshot(Target{Namespace: ns, Pod: "api-7d9f-b"}, time.Now()); ps.Workload != "deployment/api" || len(ps.Pods) != 3 || len(ps.Events) != 3 {
		t.Errorf("pod target: %+v", ps)
	}

	// Snapshots make no API request.
	before := requests.Load()
	for range 100 {
		c.Snapshot(target, time.Now())
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("100 snapshots made %d API requests", n)
	}

	// No kubelet, so the log read fails, fast, and the snapshot is still
	// complete with a note.
	start := time.Now()
	logs, err := c.Logs(ctx, s)
	if err == nil || logs != nil {
		t.Errorf("Logs without a kubelet = %+v, %v", logs, err)
	}
	if d := time.Since(start); d > DefaultLogTimeout+time.Second {
		t.Errorf("Logs took %s", d)
	}
	t.Logf("log read without kubelet: %v (%s)", err, time.Since(start).Round(time.Millisecond))
	before = requests.Load()
	ev := signal.NewEvaluation(time.Now())
	full, ok := c.SnapshotFor(ctx, ev, map[string]string{"namespace": ns, "pod": "api-7d9f-a"}, nil)
	if !ok || full.Logs != nil || len(full.Pods) != 3 || len(full.Events) != 3 || len(full.Rollouts) != 2 || full.Deployment == nil ||
		len(full.Partial) != 1 || !strings.HasPrefix(full.Partial[0], "pod logs not read: logs of pod "+ns+"/api-7d9f-a container api") {
		t.Errorf("SnapshotFor = %+v", full)
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("a failed log read was read again within %s: %d requests", logErrorTTL, n)
	}
	if n := testutil.CollectAndCount(metrics.Requests); n != 1 {
		t.Errorf("log read metric series: %d", n)
	}
	sig, err := c.Signals(ctx, ev, nil, &rules.Service{Namespace: ns, Deployment: "api"})
	if err != nil || !sig.Reachable.Known || sig.Reachable.Value {
		t.Errorf("Signals = %+v, %v", sig, err)
	}
}

func testUnschedulable(t *testing.T, env *kubetest.Env, client kubernetes.Interface) {
	ns := env.NewNamespace(t, "pending")
	ctx := context.Background()
	w := &world{t: t, ctx: ctx, cs: env.Client, ns: ns}
	now := time.Now().Truncate(time.Second)
	d := w.deployment("worker", 2, "1", appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 2, UnavailableReplicas: 2})
	rs := w.replicaSet(d, "5c4d", "1", "shop/worker:2.0", 2)
	const msg = "0/3 nodes are available: 3 Insufficient cpu."
	for _, suffix := range []string{"x", "y"} {
		p := w.pod(rs, suffix, "", corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: msg,
			}},
		})
		w.warning(p, "FailedScheduling", msg, "default-scheduler", now.Add(-time.Minute), 3)
	}

	// All namespaces this time, started after the objects exist: they
	// arrive with the initial list.
	c := startCluster(t, client, Options{})
	s := waitFor(t, c, Target{Namespace: ns, Deployment: "worker"}, func(s *diagnosis.Snapshot) bool {
		return len(s.Pods) == 2 && s.Pods[1].Reason == "Unschedulable" && len(s.Events) == 2
	})
	for _, p := range s.Pods {
		if p.Phase != "Pending" || p.Reason != "Unschedulable" || p.Message != msg || p.Node != "" || p.Ready || p.ReplicaSet != "worker-5c4d" {
			t.Errorf("pod %+v", p)
		}
	}
	for _, e := range s.Events {
		if e.Reason != "FailedScheduling" || e.Message != msg || e.Count != 3 || !strings.HasPrefix(e.Object, "Pod/worker-5c4d-") {
			t.Errorf("event %+v", e)
		}
	}
	if r := Reachable(s); !r.Known || r.Value || r.Note != "0/2 pods available" {
		t.Errorf("Reachable = %+v", r)
	}
	if len(s.Rollouts) != 1 || s.Rollouts[0].Revision != 1 || s.Rollouts[0].Change != "" {
		t.Errorf("rollouts = %+v", s.Rollouts)
	}
	// Nothing ran, so there are no logs to read, and none is tried.
	if logs, err := c.Logs(ctx, s); logs != nil || err != nil {
		t.Errorf("Logs of pending pods = %+v, %v", logs, err)
	}
	// By selector, too.
	if ss := c.Snapshot(Target{Namespace: ns, Selector: "app=worker"}, time.Now()); len(ss.Pods) != 2 || len(ss.Events) != 2 || ss.Deployment != nil {
		t.Errorf("selector snapshot: %+v", ss)
	}
}
