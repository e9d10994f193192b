package evidence_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/amtriage/amtriage/incident"
	"github.com/amtriage/amtriage/rules"
	"github.com/amtriage/amtriage/triage/evidence"
	"github.com/amtriage/amtriage/triage/kube"
	"github.com/amtriage/amtriage/triage/prom"

	"github.com/amtriage/amtriage/internal/kubetest"
	"github.com/amtriage/amtriage/internal/promtest"
	"github.com/amtriage/amtriage/store"
	"github.com/amtriage/amtriage/store/boltstore"
)

// crashLog is what the crashing container printed: the test kube-apiserver
// has no kubelet to proxy log reads to, so the test stands in for it.
const crashLog = "starting checkout 1.5.0\nlevel=error msg=\"config: DATABASE_URL not set\"\npanic: missing configuration\n"

// kubeletLogs answers the log subresource (which the API server would
// proxy to the kubelet) and sends everything else to the real API server.
func kubeletLogs(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/log") {
				return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
					Body: io.NopCloser(strings.NewReader(crashLog)), Request: r}, nil
			}
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// crashLoopingRollout writes what a bad rollout leaves in the API server:
// a Deployment at revision 2 whose three pods crash-loop, and the
// kubelet's BackOff Warning events.
func crashLoopingRollout(t *testing.T, cs kubernetes.Interface, ns string, now time.Time) {
	ctx := context.Background()
	labels := map[string]string{"app": "checkout"}
	d := must[*appsv1.Deployment](t)(cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Annotations: map[string]string{kube.RevisionAnnotation: "2"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "checkout", Image: "shop/checkout:1.5.0"}}},
			},
		},
	}, metav1.CreateOptions{}))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 3, UpdatedReplicas: 3, UnavailableReplicas: 3}
	d = must[*appsv1.Deployment](t)(cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}))
	var rs *appsv1.ReplicaSet
	for _, r := range []struct{ hash, rev, image string }{{"6b8f", "1", "shop/checkout:1.4.2"}, {"7d9f", "2", "shop/checkout:1.5.0"}} {
		l := map[string]string{"app": "checkout", "pod-template-hash": r.hash}
		rs = must[*appsv1.ReplicaSet](t)(cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "checkout-" + r.hash, Labels: l, Annotations: map[string]string{kube.RevisionAnnotation: r.rev},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: new(true)}}},
			Spec: appsv1.ReplicaSetSpec{Replicas: new(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: l},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "checkout", Image: r.image}}}}},
		}, metav1.CreateOptions{}))
	}
	for _, suffix := range []string{"a", "b", "c"} {
		p := must[*corev1.Pod](t)(cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: rs.Name + "-" + suffix, Labels: rs.Spec.Template.Labels,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: new(true)}}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: rs.Spec.Template.Spec.Containers},
		}, metav1.CreateOptions{}))
		p.Status = corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "checkout", Image: "shop/checkout:1.5.0", RestartCount: 5,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 2m40s restarting failed container"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2,
					FinishedAt: metav1.NewTime(now.Add(-time.Minute))}},
			}},
		}
		p = must[*corev1.Pod](t)(cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}))
		must[*corev1.Event](t)(cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: p.Name + "."},
			InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID},
			Type:           corev1.EventTypeWarning, Reason: "BackOff", Message: "Back-off restarting failed container checkout in pod " + p.Name,
			Source:         corev1.EventSource{Component: "kubelet"},
			FirstTimestamp: metav1.NewTime(now.Add(-5 * time.Minute)), LastTimestamp: metav1.NewTime(now.Add(-10 * time.Second)), Count: 6,
		}, metav1.CreateOptions{}))
	}
}

// TestEvidenceOfACrashLoopingRollout gathers a Sev 1's evidence from a
// real kube-apiserver and a real Prometheus, stores it with the incident
// and reads it back: pods, Warning events, log lines and a 30-minute
// range series.
func TestEvidenceOfACrashLoopingRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver and Prometheus")
	}
	exporter := promtest.NewExporter(t, "checkout")
	exporter.SetErrorRatio(0.4)
	p := promtest.Start(t, exporter)
	env := kubetest.Start(t)
	ns := env.NewNamespace(t, "evidence")
	now := time.Now()
	crashLoopingRollout(t, env.Client, ns, now)

	client := must[*kubernetes.Clientset](t)(kubernetes.NewForConfig(kubeletLogs(env.Config)))
	cluster := kube.New(client, kube.Options{Namespaces: []string{ns}})
	ctx, cancel := context.WithCancel(context.Background())
	cluster.Start(ctx)
	defer func() { // informers stop once their context ends
		cancel()
		cluster.Shutdown()
	}()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := cluster.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	ratio := `sum(rate(http_requests_total{service="checkout",code=~"5.."}[5s])) / sum(rate(http_requests_total{service="checkout"}[5s]))`
	p.WaitFor(t, ratio, 60*time.Second, promtest.Near(0.4, 1e-6))
	src := must[*prom.Source](t)(prom.New(rules.PrometheusConfig{URL: p.URL()}, prom.Options{}))

	st := must[*boltstore.Store](t)(boltstore.OpenStore(t.TempDir()))
	defer st.Close()
	inc := &incident.Incident{ID: "checkout-1", Service: "checkout", Status: incident.Firing, Severity: 1, Decisive: "k"}
	if err := st.Apply(&store.Commit{Changes: []*incident.Changes{{Incidents: []*incident.Incident{inc}}}}); err != nil {
		t.Fatal(err)
	}
	profile := &rules.Service{Name: "checkout", Namespace: ns, Deployment: "checkout",
		Queries: rules.ServiceQueries{ErrorRatio: ratio, P99Latency: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[5s])))`}}
	m := evidence.NewMetrics(nil)
	c := evidence.New(evidence.Options{Store: st, Metrics: m, Sources: evidence.Sources{
		Cluster: cluster, Prometheus: src, Profile: func(string) *rules.Service { return profile },
	}})
	declared := time.Now()
	// The informers fill by watch: collect once the pods and events are in.
	deadline := time.Now().Add(15 * time.Second)
	for s := cluster.Snapshot(kube.Target{Namespace: ns, Deployment: "checkout"}, declared); len(s.Pods) < 3 || len(s.Events) < 3; s = cluster.Snapshot(kube.Target{Namespace: ns, Deployment: "checkout"}, declared) {
		if time.Now().After(deadline) {
			t.Fatalf("snapshot never complete: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Save(ctx, incident.Event{Kind: incident.Opened, At: declared, Incident: *inc,
		Alerts: []incident.Alert{{Key: "k", Labels: map[string]string{"alertname": "HighErrorRate", "service": "checkout", "namespace": ns}}}})

	raw, ok, err := st.Evidence("checkout-1")
	if err != nil || !ok {
		t.Fatalf("no evidence stored: %v", err)
	}
	var e evidence.Evidence
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Missing) != 0 {
		t.Errorf("missing: %q", e.Missing)
	}
	if e.Snapshot == nil || len(e.Snapshot.Pods) != 3 || e.Snapshot.Deployment == nil || e.Snapshot.Deployment.Revision != 2 || len(e.Snapshot.Rollouts) != 2 {
		t.Fatalf("snapshot %+v", e.Snapshot)
	}
	for _, pod := range e.Snapshot.Pods {
		if pod.Reason != "CrashLoopBackOff" || pod.Restarts != 5 {
			t.Errorf("pod %+v", pod)
		}
	}
	if len(e.Events) != 3 || e.Events[0].Reason != "BackOff" {
		t.Errorf("events %+v", e.Events)
	}
	if e.Logs == nil || !e.Logs.Previous || strings.Join(e.Logs.Lines, "\n")+"\n" != crashLog {
		t.Errorf("logs %+v", e.Logs)
	}
	if len(e.Queries) != 2 || e.Queries[0].Name != "error_ratio" || e.Queries[0].RangeAnswer == nil || len(e.Queries[0].Series) != 1 {
		t.Fatalf("queries %+v; first %+v", e.Queries, e.Queries[0].RangeAnswer)
	}
	if !e.To.Equal(declared.UTC().Truncate(time.Millisecond)) || e.To.Sub(e.From) != 30*time.Minute {
		t.Errorf("window %s .. %s", e.From, e.To)
	}
	pts := e.Queries[0].Series[0].Points
	if len(pts) == 0 || pts[len(pts)-1].V < 0.39 || pts[len(pts)-1].V > 0.41 {
		t.Errorf("error ratio series %+v", pts)
	}
	for _, pt := range pts {
		if pt.T < e.From.UnixMilli() || pt.T > e.To.UnixMilli() {
			t.Errorf("point %+v outside the window", pt)
		}
	}
	if e.Bytes == 0 || e.Bytes > evidence.MaxBytes {
		t.Errorf("bytes %d", e.Bytes)
	}
}
