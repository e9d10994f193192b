package kubetest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/amtriage/amtriage/internal/kubetest"
)

// TestSmoke creates the objects a triage test needs — Deployment, owned
// ReplicaSet, Pod with a crash-looping container status, Warning Event — and
// reads them back from the real API server.
func TestSmoke(t *testing.T) {
	env := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()

	if !strings.HasPrefix(env.Config.Host, "https://127.0.0.1:") {
		t.Errorf("API server at %s, want https://127.0.0.1:PORT", env.Config.Host)
	}
	v, err := env.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != kubetest.KubeVersion {
		t.Errorf("server version %q, want %q", v.GitVersion, kubetest.KubeVersion)
	}

	ns := env.NewNamespace(t, "smoke")
	labels := map[string]string{"app": "web"}

	dep, err := env.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	// No controller-manager: the ReplicaSet a Deployment would own is made by hand.
	rs, err := env.Client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "web-5d4f8c7b9",
			Labels:      labels,
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "3"},
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(dep, appsv1.SchemeGroupVersion.WithKind("Deployment")),
			},
		},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create replicaset: %v", err)
	}

	tmpl := podTemplate(labels)
	pod, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "web-5d4f8c7b9-abcde",
			Labels: labels,
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet")),
			},
		},
		Spec: tmpl.Spec,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}

	// No kubelet: container status is set through the status subresource.
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:         "app",
			Image:        "example.invalid/web:1",
			RestartCount: 5,
			State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"},
			},
			LastTerminationState: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"},
			},
		}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pod status: %v", err)
	}

	_, err = env.Client.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + "."},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID, APIVersion: "v1",
		},
		Type:           corev1.EventTypeWarning,
		Reason:         "BackOff",
		Message:        "Back-off restarting failed container app",
		Count:          5,
		FirstTimestamp: metav1.Now(),
		LastTimestamp:  metav1.Now(),
		Source:         corev1.EventSource{Component: "kubelet"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create event: %v", err)
	}

	// Read everything back.
	gotRS, err := env.Client.AppsV1().ReplicaSets(ns).Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get replicaset: %v", err)
	}
	if got := gotRS.Annotations["deployment.kubernetes.io/revision"]; got != "3" {
		t.Errorf("replicaset revision annotation %q, want 3", got)
	}
	if owner := metav1.GetControllerOf(gotRS); owner == nil || owner.UID != dep.UID || owner.Kind != "Deployment" {
		t.Errorf("replicaset controller %+v, want Deployment %s", owner, dep.UID)
	}

	gotPod, err := env.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	if owner := metav1.GetControllerOf(gotPod); owner == nil || owner.UID != rs.UID {
		t.Errorf("pod controller %+v, want ReplicaSet %s", owner, rs.UID)
	}
	if len(gotPod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod container statuses %+v, want 1 (status not persisted?)", gotPod.Status.ContainerStatuses)
	}
	cs := gotPod.Status.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 5 {
		t.Errorf("container status %+v, want Waiting CrashLoopBackOff with 5 restarts", cs)
	}
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 1 {
		t.Errorf("last termination state %+v, want exit code 1", cs.LastTerminationState)
	}
	if gotPod.Status.Phase != corev1.PodRunning {
		t.Errorf("pod phase %q, want Running", gotPod.Status.Phase)
	}

	// A field selector on involvedObject, as a triage query would use (the fake
	// clientset ignores field selectors; the real server does not).
	events, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod.Name + ",type=Warning",
	})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	if len(events.Items) != 1 {
		t.Fatalf("got %d warning events for the pod, want 1", len(events.Items))
	}
	if ev := events.Items[0]; ev.InvolvedObject.UID != pod.UID || ev.Reason != "BackOff" || ev.Count != 5 {
		t.Errorf("event %+v, want BackOff x5 for pod %s", ev, pod.UID)
	}
	t.Logf("scenario took %s", time.Since(begin).Round(time.Millisecond))
}

// TestKubeconfig checks that the kubeconfig file works for a separate client,
// as the daemon would use it.
func TestKubeconfig(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.NewNamespace(t, "kubeconfig")

	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", env.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list namespaces with kubeconfig: %v", err)
	}
	var found bool
	for _, n := range list.Items {
		found = found || n.Name == ns
	}
	if !found {
		t.Errorf("namespace %s not in list of %d namespaces", ns, len(list.Items))
	}
}

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "example.invalid/web:1"}},
		},
	}
}
