package kubernetes_test

import (
	"context"
	"os"
	"path"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/amtriage/amtriage/internal/kubetest"
)

const haManifest = "ha/amtriage.yaml"

// The HA manifests, as the API server stored them: two replicas on
// PostgreSQL that roll one at a time, spread over nodes, survive a drain,
// keep no state on a volume and get their DSN from a Secret; the RBAC of
// rbac.yaml serves their ServiceAccount.
func TestHAManifests(t *testing.T) {
	env := kubetest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"shop", "other"} {
		if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	objs := apply(t, env.Config, haManifest)
	apply(t, env.Config, "rbac.yaml")
	for _, o := range objs {
		if o.GetKind() == "PersistentVolumeClaim" {
			t.Errorf("%s has a PersistentVolumeClaim %s", haManifest, o.GetName())
		}
	}
	pvcs, err := env.Client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pvcs.Items) > 0 {
		t.Errorf("PersistentVolumeClaims exist: %v", pvcs.Items)
	}

	d, err := env.Client.AppsV1().Deployments("amtriage").Get(ctx, "amtriage", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Spec.Replicas; r == nil || *r != 2 {
		t.Errorf("replicas = %d, want 2", ptrOr(r, 1))
	}
	if st := d.Spec.Strategy; st.Type != "RollingUpdate" || st.RollingUpdate == nil ||
		!sameInt(st.RollingUpdate.MaxUnavailable, 0) || !sameInt(st.RollingUpdate.MaxSurge, 1) {
		t.Errorf("strategy = %+v, want RollingUpdate with maxUnavailable 0, maxSurge 1", st)
	}
	pods := labels.Set(d.Spec.Template.Labels)
	spec := d.Spec.Template.Spec
	if !spreadByHost(t, spec.Affinity, pods) {
		t.Errorf("no preferred pod anti-affinity on kubernetes.io/hostname against the Deployment's own pods: %+v", spec.Affinity)
	}

	pdb, err := env.Client.PolicyV1().PodDisruptionBudgets("amtriage").Get(ctx, "amtriage", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the PodDisruptionBudget: %v", err)
	}
	if !sameInt(pdb.Spec.MinAvailable, 1) || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB minAvailable = %v maxUnavailable = %v, want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || sel.Empty() || !sel.Matches(pods) {
		t.Errorf("the PDB's selector %v does not select the Deployment's pods %v (%v)", pdb.Spec.Selector, pods, err)
	}

	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readinessProbe = %+v, want GET /readyz", p)
	}

	// The configuration serve would load: PostgreSQL, its DSN from a file.
	cfg, written := loadConfigMap(t, objs)
	if cfg.Store.Postgres == nil {
		t.Fatal("the ConfigMap's amtriage.yml does not set store.postgres")
	}
	if got := string(cfg.Store.Postgres.DSN); got != fakeDSN {
		t.Errorf("DSN = %q, want the stand-in file's %q", got, fakeDSN)
	}
	dsnFile := written.Store.Postgres.DSNFile
	if !path.IsAbs(dsnFile) { // relative to the config file, as serve reads it
		dsnFile = path.Join(path.Dir(configPath(t, c)), dsnFile)
	}

	// Volumes: the ConfigMap and Secrets only; nothing the store could be
	// kept on. The DSN file is a key of a Secret volume.
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
		if v.ConfigMap == nil && v.Secret == nil {
			t.Errorf("volume %s is neither a ConfigMap nor a Secret: %+v", v.Name, v.VolumeSource)
		}
	}
	secret, key := dsnSource(c, vols, dsnFile)
	if secret == "" {
		t.Errorf("dsn_file %s is not mounted from a Secret (mounts %+v)", dsnFile, c.VolumeMounts)
	}
	for _, e := range c.Env {
		if e.Name == "AMTRIAGE_POSTGRES_DSN" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("$AMTRIAGE_POSTGRES_DSN is set, but not from a Secret")
		}
	}
	// The header's kubectl command creates that Secret with that key.
	raw, err := os.ReadFile(haManifest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "create secret generic " + secret + " --from-file=" + key + "="; secret != "" && !strings.Contains(string(raw), want) {
		t.Errorf("%s's header does not show %q", haManifest, want)
	}

	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	checkAccess(t, env.Config, "system:serviceaccount:"+d.Namespace+":"+sa)
}

// configPath is the --config the container runs with.
func configPath(t *testing.T, c corev1.Container) string {
	t.Helper()
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			return c.Args[i+1]
		}
	}
	t.Fatalf("the container has no --config: %v", c.Args)
	return ""
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func sameInt(v *intstr.IntOrString, want int) bool {
	return v != nil && v.Type == intstr.Int && v.IntValue() == want
}

// spreadByHost reports a preferred anti-affinity term that keeps pods (the
// template's labels) off nodes already running one.
func spreadByHost(t *testing.T, a *corev1.Affinity, pods labels.Set) bool {
	t.Helper()
	if a == nil || a.PodAntiAffinity == nil {
		return false
	}
	for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		term := w.PodAffinityTerm
		sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		if err != nil {
			t.Errorf("anti-affinity selector: %v", err)
			continue
		}
		if term.TopologyKey == "kubernetes.io/hostname" && w.Weight > 0 && !sel.Empty() && sel.Matches(pods) {
			return true
		}
	}
	return false
}

// dsnSource finds the Secret and key that the container's file at path
// comes from; "" when it is not mounted from a Secret.
func dsnSource(c corev1.Container, vols map[string]corev1.Volume, file string) (secret, key string) {
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok || v.Secret == nil {
			continue
		}
		rel := ""
		switch {
		case m.SubPath != "" && m.MountPath == file:
			rel = m.SubPath
		case m.SubPath == "" && strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/"):
			rel = strings.TrimPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		default:
			continue
		}
		if len(v.Secret.Items) == 0 {
			return v.Secret.SecretName, rel // every key is a file of its name
		}
		for _, it := range v.Secret.Items {
			if it.Path == rel {
				return v.Secret.SecretName, it.Key
			}
		}
	}
	return "", ""
}
