package kube

import (
	"github.com/amtriage/amtriage/rules"
)

// Target is the workload a snapshot looks at: a Deployment, the pods of a
// label selector, or one pod (and through its owner, its workload).
// Exactly one of Deployment, Pod and Selector is set.
type Target struct {
	Namespace  string
	Deployment string
	Pod        string
	Selector   string
}

// key identifies the target in an evaluation's memo.
func (t Target) key() string {
	switch {
	case t.Deployment != "":
		return t.Namespace + "/deployment/" + t.Deployment
	case t.Pod != "":
		return t.Namespace + "/pod/" + t.Pod
	default:
		return t.Namespace + "/selector/" + t.Selector
	}
}

// TargetFor finds the workload of an alert: the service profile's namespace
// with its deployment or selector, else the alert's labels: namespace with
// pod, deployment or service (a service taken as the deployment of that
// name), in that order. Without a namespace there is none.
func TargetFor(labels map[string]string, svc *rules.Service) (Target, bool) {
	if svc != nil && svc.Namespace != "" {
		switch {
		case svc.Deployment != "":
			return Target{Namespace: svc.Namespace, Deployment: svc.Deployment}, true
		case svc.Selector != "":
			return Target{Namespace: svc.Namespace, Selector: svc.Selector}, true
		}
	}
	ns := labels["namespace"]
	if ns == "" {
		return Target{}, false
	}
	switch {
	case labels["pod"] != "":
		return Target{Namespace: ns, Pod: labels["pod"]}, true
	case labels["deployment"] != "":
		return Target{Namespace: ns, Deployment: labels["deployment"]}, true
	case labels["service"] != "":
		return Target{Namespace: ns, Deployment: labels["service"]}, true
	}
	return Target{}, false
}
