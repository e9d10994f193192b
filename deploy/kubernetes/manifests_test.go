// Package kubernetes_test checks the shipped manifests against a real
// kube-apiserver: they are accepted as written, and the RBAC grants the
// snapshot exactly what it reads and nothing more.
package kubernetes_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/amtriage/amtriage/internal/kubetest"
	"github.com/amtriage/amtriage/rules"
)

// apply creates every object of a multi-document manifest.
func apply(t *testing.T, cfg *rest.Config, file string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plural := map[string]string{"ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles", "Role": "roles", "RoleBinding": "rolebindings",
		"Namespace": "namespaces", "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims",
		"Deployment": "deployments", "Service": "services", "PodDisruptionBudget": "poddisruptionbudgets", "Secret": "secrets"}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		gvk := u.GroupVersionKind()
		if plural[gvk.Kind] == "" {
			t.Fatalf("%s: no resource name for kind %s: add it to the plural map", file, gvk.Kind)
		}
		res := dyn.Resource(schema.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: plural[gvk.Kind]})
		var ri dynamic.ResourceInterface = res
		if ns := u.GetNamespace(); ns != "" {
			ri = res.Namespace(ns)
		}
		// Strict field validation: a misspelt field is an error, as kubectl apply would report.
		if _, err := ri.Create(context.Background(), u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("%s: create %s %s: %v", file, gvk.Kind, u.GetName(), err)
		}
		objs = append(objs, u)
	}
	return objs
}

func TestManifestsAndLeastPrivilege(t *testing.T) {
	env := kubetest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"shop", "other"} {
		if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	objs := apply(t, env.Config, "amtriage.yaml") // creates the amtriage namespace first
	apply(t, env.Config, "rbac.yaml")

	_, written := loadConfigMap(t, objs)
	if written.Store.Postgres != nil {
		t.Error("the single-replica manifest selects PostgreSQL")
	}
	checkAccess(t, env.Config, "system:serviceaccount:amtriage:amtriage")
}

// loadConfigMap runs the ConfigMap's amtriage.yml through rules.Load, the
// validation serve runs, with stand-ins for the files the pod gets from its
// Secrets: every /etc/amtriage/... path it names is created in a temporary
// directory holding fake values. It returns what Load made of it, and the
// file as written (Parse: the pod's paths, no secrets).
func loadConfigMap(t *testing.T, objs []*unstructured.Unstructured) (loaded, written *rules.Config) {
	t.Helper()
	for _, k := range []string{rules.EnvBearerToken, rules.EnvBasicAuthPassword, rules.EnvPagerDutyKey,
		rules.EnvPagerDutyEscKey, rules.EnvSlackToken, rules.EnvGrafanaToken, rules.EnvPostgresDSN} {
		t.Setenv(k, "")
	}
	var text string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			text, _, _ = unstructured.NestedString(o.Object, "data", "amtriage.yml")
		}
	}
	if text == "" {
		t.Fatal("no ConfigMap with an amtriage.yml")
	}
	written, err := rules.Parse([]byte(text))
	if err != nil {
		t.Fatalf("the ConfigMap's amtriage.yml is not a valid configuration: %v", err)
	}
	dir := t.TempDir()
	for _, p := range podPathRE.FindAllString(text, -1) {
		local := filepath.Join(dir, strings.TrimPrefix(p, "/etc/amtriage/"))
		if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
			t.Fatal(err)
		}
		fake := fakeSecret
		if filepath.Base(p) == "dsn" {
			fake = fakeDSN
		}
		if err := os.WriteFile(local, []byte(fake+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "amtriage.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/etc/amtriage/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err = rules.Load(path)
	if err != nil {
		t.Fatalf("the ConfigMap's amtriage.yml does not load with its secret files in place: %v", err)
	}
	return loaded, written
}

// fakeSecret stands in for every secret file (a PagerDuty routing key's
// shape), fakeDSN for the PostgreSQL DSN's.
const (
	fakeSecret = "R0123456789abcdef0123456789abcde"
	fakeDSN    = "postgres://amtriage:not-a-password@postgres.db.svc:5432/amtriage"
)

var podPathRE = regexp.MustCompile(`/etc/amtriage/[A-Za-z0-9._/-]+`)

// checkAccess asks the API server what user (a ServiceAccount) may do: read
// what the snapshot reads in the profiles' namespace, and nothing more.
func checkAccess(t *testing.T, cfg *rest.Config, user string) {
	t.Helper()
	ctx := context.Background()
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: user}
	client, err := kubernetes.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		verb, group, resource, sub, ns string
		allowed                        bool
	}{
		{"list", "", "pods", "", "shop", true},
		{"watch", "", "pods", "", "shop", true},
		{"list", "", "events", "", "shop", true},
		{"watch", "apps", "deployments", "", "shop", true},
		{"list", "apps", "replicasets", "", "shop", true},
		{"get", "", "pods", "log", "shop", true},
		{"list", "", "pods", "", "other", false}, // only the profiles' namespaces
		{"get", "", "secrets", "", "shop", false},
		{"list", "", "configmaps", "", "shop", false},
		{"delete", "", "pods", "", "shop", false},
		{"patch", "apps", "deployments", "", "shop", false}, // may print the rollback command, never run it
		{"create", "", "pods", "exec", "shop", false},
	}
	// The API server's RBAC authorizer learns of new bindings through its
	// informers, a moment after they are created: wait until the first
	// grant is visible before judging any (a CI flake otherwise).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Verb: "list", Resource: "pods", Namespace: "shop"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review: %v", err)
		}
		if r.Status.Allowed || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range cases {
		r, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.sub, Namespace: c.ns}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review: %v", err)
		}
		if r.Status.Allowed != c.allowed {
			t.Errorf("%s %s/%s %s in %s: allowed=%v, want %v", c.verb, c.group, c.resource, c.sub, c.ns, r.Status.Allowed, c.allowed)
		}
	}
	// And for real: listing pods works, reading secrets does not.
	if _, err := client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list pods as the ServiceAccount: %v", err)
	}
	if _, err := client.CoreV1().Secrets("shop").List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("the ServiceAccount can list secrets")
	}
}
