// Package diagnosis is the runbook's Step 3 ("quick diagnosis") as a pure
// function: from a Kubernetes snapshot, the alert and the measured signals
// to a category, the evidence and, where it applies, the exact command to
// undo a bad rollout. It does no I/O; triage/kube builds the snapshots.
package diagnosis

import "time"

// Snapshot is what a responder would gather with kubectl in the first
// minutes, read from informer caches at one instant.
type Snapshot struct {
	Namespace string `json:"namespace"`
	// Workload names what was looked at: "deployment/api", "pods app=api".
	Workload   string      `json:"workload"`
	Deployment *Deployment `json:"deployment,omitempty"`
	// Pods of the workload, the most broken first, at most MaxPods.
	Pods      []Pod `json:"pods"`
	PodsTotal int   `json:"podsTotal"`
	// Events are Warning events of the deployment, its ReplicaSets and its
	// pods in the event window, newest first, at most MaxEvents.
	Events []Event `json:"events,omitempty"`
	// Rollouts are the deployment's ReplicaSets, newest revision first, at
	// most MaxRollouts.
	Rollouts []Rollout `json:"rollouts,omitempty"`
	// Logs are a few error lines of one failing pod; nil when none was read.
	Logs *Logs `json:"logs,omitempty"`
	// Partial says what could not be gathered and why (cache not synced,
	// workload not found, log read failed…): the snapshot is still usable.
	Partial []string `json:"partial,omitempty"`
}

// Caps keep one snapshot small enough for a Slack message and a PagerDuty
// event (512 KiB in all).
const (
	MaxPods     = 20
	MaxEvents   = 10
	MaxRollouts = 3
	MaxLogLines = 5
)

// Deployment is a deployment's scale and rollout state.
type Deployment struct {
	Name       string `json:"name"`
	Desired    int32  `json:"desired"`
	Updated    int32  `json:"updated"`
	Ready      int32  `json:"ready"`
	Available  int32  `json:"available"`
	Generation int64  `json:"generation"`
	// Revision is the deployment's current revision annotation.
	Revision int64 `json:"revision,omitempty"`
}

// Pod is one pod's state, reduced to what explains a failure.
type Pod struct {
	Name     string `json:"name"`
	Phase    string `json:"phase"` // Pending, Running, Succeeded, Failed, Unknown
	Ready    bool   `json:"ready"`
	Restarts int32  `json:"restarts"`
	// Reason is the most telling state: a container's waiting reason
	// (CrashLoopBackOff, ImagePullBackOff, CreateContainerConfigError…), its
	// last termination (OOMKilled, Error), or for a Pending pod the
	// scheduler's (Unschedulable).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Container is the container Reason is about.
	Container string `json:"container,omitempty"`
	// LastTerminated is the previous container's termination reason and
	// exit code, e.g. "Error (exit 1)", "OOMKilled (exit 137)".
	LastTerminated string    `json:"lastTerminated,omitempty"`
	Node           string    `json:"node,omitempty"`
	Created        time.Time `json:"created"`
	// ReplicaSet owning the pod, to tell old pods from new after a rollout.
	ReplicaSet string `json:"replicaSet,omitempty"`
}

// Event is one Warning event.
type Event struct {
	Time    time.Time `json:"time"`
	Object  string    `json:"object"` // kind/name, e.g. "Pod/api-7d9f-x2"
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count,omitempty"`
}

// Rollout is one revision of a deployment: a ReplicaSet.
type Rollout struct {
	Revision   int64     `json:"revision"`
	ReplicaSet string    `json:"replicaSet"`
	Created    time.Time `json:"created"`
	Images     []string  `json:"images"`
	// Change is the image change from the previous revision, e.g.
	// "api: shop/api:1.4.2 → shop/api:1.5.0"; empty when only the pod
	// template's other fields changed.
	Change   string `json:"change,omitempty"`
	Replicas int32  `json:"replicas"`
}

// Logs are error or fatal lines of one container.
type Logs struct {
	Pod       string   `json:"pod"`
	Container string   `json:"container"`
	Previous  bool     `json:"previous"` // from the container before its last restart
	Lines     []string `json:"lines"`
}

// Category is the runbook's Step 3 outcome.
type Category string

// The categories, in the runbook's words.
const (
	ConfigOrDeployment Category = "config_or_deployment" // CrashLoopBackOff, config errors: roll back
	Resources          Category = "resources"            // Pending, Unschedulable, Insufficient: scale or free capacity
	Application        Category = "application"          // running and ready, but failing: the code
	Infrastructure     Category = "infrastructure"       // database or network: escalate
	WhatChanged        Category = "what_changed"         // nothing clear: look at recent changes
	Skipped            Category = "skipped"              // no snapshot: no cluster configured or reachable
)

// Diagnosis is the verdict with its evidence.
type Diagnosis struct {
	Category Category `json:"category"`
	// Summary is one line for a page title or a Slack header.
	Summary string `json:"summary"`
	// Evidence lists the facts that led there, most telling first.
	Evidence []string `json:"evidence,omitempty"`
	// Command is the exact action to take, when there is one: a rollback.
	Command string `json:"command,omitempty"`
	// Rollback is the same undo as data, for the Roll back button: set when
	// a recent rollout has a previous revision to return to (not for an
	// infrastructure verdict, where the rollout is only a suspect).
	Rollback *Rollback `json:"rollback,omitempty"`
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// Rollback is a Deployment's undo: From is the revision the diagnosis saw it
// at (a rollback is refused if it moved on), To the one to return to.
type Rollback struct {
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	From       int64  `json:"from"`
	To         int64  `json:"to"`
}

// Probe is a health probe outcome of the service or of a dependency.
type Probe struct {
	Target  string `json:"target"`  // the profile name
	Outcome string `json:"outcome"` // up, down, crashed, hung, error
	Detail  string `json:"detail,omitempty"`
}
