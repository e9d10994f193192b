package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// t0 is the evaluation instant of the unit tests.
var t0 = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)

func uid(kind, ns, name string) types.UID {
	return types.UID(fmt.Sprintf("uid-%s-%s-%s", kind, ns, name))
}

func ownerRef(apiVersion, kind, ns, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion: apiVersion, Kind: kind, Name: name, UID: uid(kind, ns, name), Controller: new(true),
	}}
}

func newDeployment(ns, name string, replicas int32, rev string, st appsv1.DeploymentStatus) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: uid("Deployment", ns, name), Generation: 4,
			Annotations: map[string]string{RevisionAnnotation: rev},
			Labels:      labels,
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "shop/" + name + ":latest"}}},
			},
		},
		Status: st,
	}
}

// newReplicaSet makes revision rev of deployment dep (named dep-hash) with
// one container per image, "name=image".
func newReplicaSet(ns, dep, hash, rev string, created time.Time, replicas int32, containers ...corev1.Container) *appsv1.ReplicaSet {
	name := dep + "-" + hash
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: uid("ReplicaSet", ns, name),
			CreationTimestamp: metav1.NewTime(created),
			Annotations:       map[string]string{RevisionAnnotation: rev, "kubectl.kubernetes.io/last-applied-configuration": "{}"},
			Labels:            map[string]string{"app": dep, "pod-template-hash": hash},
			OwnerReferences:   ownerRef("apps/v1", "Deployment", ns, dep),
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(replicas),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers}},
		},
	}
}

func container(name, image string) corev1.Container {
	return corev1.Container{Name: name, Image: image}
}

// newPod makes a running, ready pod of the ReplicaSet rs (namespace ns);
// mutate changes its status.
func newPod(ns, rs, name string, created time.Time, mutate ...func(*corev1.Pod)) *corev1.Pod {
	app := name
	if i := strings.LastIndexByte(rs, '-'); i > 0 {
		app = rs[:i]
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: uid("Pod", ns, name),
			CreationTimestamp: metav1.NewTime(created),
			Labels:            map[string]string{"app": app},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: app, Image: "shop/" + app + ":1"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: app, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			}},
		},
	}
	if rs != "" {
		p.OwnerReferences = ownerRef("apps/v1", "ReplicaSet", ns, rs)
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// crashLooping puts the pod's first container in CrashLoopBackOff after
// restarts, the last one ended by Error exit 1.
func crashLooping(restarts int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		setReady(p, false)
		c := &p.Status.ContainerStatuses[0]
		c.Ready = false
		c.RestartCount = restarts
		c.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container",
		}}
		c.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Reason: "Error", ExitCode: 1,
		}}
	}
}

func setReady(p *corev1.Pod, ready bool) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
			if ready {
				p.Status.Conditions[i].Status = corev1.ConditionTrue
			}
		}
	}
}

func newEvent(ns, kind, name, typ, reason, msg string, last time.Time) *corev1.Event {
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s.%s.%d", name, reason, last.UnixNano()), Namespace: ns,
			CreationTimestamp: metav1.NewTime(last),
		},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name, UID: uid(kind, ns, name)},
		Type:           typ, Reason: reason, Message: msg, Count: 1,
		FirstTimestamp: metav1.NewTime(last.Add(-time.Minute)),
		LastTimestamp:  metav1.NewTime(last),
	}
}

// testCluster is a Cluster on a fake clientset whose informers are never
// started: tests put objects straight into the caches (through the same
// transforms the informers apply) and mark them synced.
func testCluster(tb testing.TB, o Options, objs ...runtime.Object) (*Cluster, *fake.Clientset) {
	tb.Helper()
	client := fake.NewClientset()
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	c := New(client, o)
	add(tb, c, objs...)
	c.synced.Store(true)
	return c, client
}

// add puts objects into the caches, transformed as the informers do.
func add(tb testing.TB, c *Cluster, objs ...runtime.Object) {
	tb.Helper()
	for _, obj := range objs {
		obj = obj.DeepCopyObject()
		var (
			idx cache.Indexer
			tf  cache.TransformFunc
			ns  string
		)
		switch o := obj.(type) {
		case *corev1.Pod:
			ns, tf = o.Namespace, transformPod
			idx = c.setFor(ns).pods.GetIndexer()
		case *appsv1.Deployment:
			ns, tf = o.Namespace, transformDeployment
			idx = c.setFor(ns).deploys.GetIndexer()
		case *appsv1.ReplicaSet:
			ns, tf = o.Namespace, transformReplicaSet
			idx = c.setFor(ns).rss.GetIndexer()
		case *corev1.Event:
			ns, tf = o.Namespace, transformEvent
			idx = c.setFor(ns).events.GetIndexer()
		default:
			tb.Fatalf("add: unexpected %T", obj)
		}
		out, err := tf(obj)
		if err != nil {
			tb.Fatal(err)
		}
		if err := idx.Add(out); err != nil {
			tb.Fatal(err)
		}
	}
}

func appsv1DeploymentAvailable(n int32) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
}
