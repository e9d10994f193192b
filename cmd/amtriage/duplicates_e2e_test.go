package main

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	fakegrafana "github.com/amtriage/amtriage/internal/fakes/grafana"
	fakeslack "github.com/amtriage/amtriage/internal/fakes/slack"
)

// SIGKILL while Slack and Grafana have performed a post whose answer has not
// arrived, then restart: the redelivered events find the message and the
// annotation instead of making second ones. Exactly one of each per incident.
func TestSIGKILLAfterReceiverWritesDoesNotDuplicate(t *testing.T) {
	e := newReceiversEnv(t, "")
	e.slack.Fail("chat.postMessage", fakeslack.Fault{Lost: true, Hang: true})
	e.grafana.Fail(fakegrafana.Fault{Lost: true, Hang: true})
	addr := freeAddr(t)
	d := startDaemon(t, e.cfg, addr)
	services := []string{"checkout", "billing", "search"}
	for _, svc := range services {
		postOne(t, d, svc, "7%") // Sev 3: the team channel, an annotation, no page
	}
	waitFor(t, 10*time.Second, "a Slack post and an annotation made, their answers pending", func() bool {
		return len(e.slack.Messages("#alerts")) >= 1 && len(e.grafana.Annotations()) >= 1
	})
	if err := d.kill(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: clean exit")
	}
	again := startDaemon(t, e.cfg, addr)
	waitFor(t, 30*time.Second, "every incident in Slack and Grafana", func() bool {
		return len(e.slack.Messages("#alerts")) >= len(services) && len(e.grafana.Annotations()) >= len(services)
	})
	waitProcessed(t, again)
	time.Sleep(500 * time.Millisecond) // let any duplicate show up

	perService := map[string]int{}
	for _, m := range e.slack.Messages("#alerts") {
		for _, svc := range services {
			if strings.Contains(m.Text, svc) {
				perService[svc]++
			}
		}
	}
	for _, svc := range services {
		if perService[svc] != 1 {
			t.Errorf("%d Slack messages for %s, want 1", perService[svc], svc)
		}
	}
	tags := map[string]int{}
	for _, a := range e.grafana.Annotations() {
		for _, tag := range a.Tags {
			if strings.HasPrefix(tag, "incident:") {
				tags[tag]++
			}
		}
		if !slices.ContainsFunc(a.Tags, func(s string) bool { return strings.HasPrefix(s, "incident:") }) {
			t.Errorf("annotation %d has no incident tag: %v", a.ID, a.Tags)
		}
	}
	if len(tags) != len(services) {
		t.Errorf("annotations for %d incidents, want %d", len(tags), len(services))
	}
	for tag, n := range tags {
		if n != 1 {
			t.Errorf("%d annotations tagged %s, want 1", n, tag)
		}
	}
}

// Repeated SIGKILLs while Sev 1 incidents are declared (channel, invites,
// declaration, announcement, message, annotation), each a few calls after
// the restart: whatever each kill interrupts, the end state has exactly one
// of everything per incident.
func TestRepeatedSIGKILLDuringDeclarationsDoesNotDuplicate(t *testing.T) {
	e := newReceiversEnv(t, "")
	addr := freeAddr(t)
	services := []string{"checkout", "billing", "search", "cart"}
	calls := func() int { return len(e.slack.Calls()) + len(e.grafana.Requests()) }
	for round := 0; round < 5; round++ {
		d := startDaemon(t, e.cfg, addr)
		if round == 0 {
			for _, svc := range services {
				postOne(t, d, svc, "62%") // Sev 1
			}
		}
		from := calls()
		deadline := time.Now().Add(5 * time.Second)
		for calls() < from+3+round && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := d.kill(syscall.SIGKILL); err == nil {
			t.Fatalf("round %d: SIGKILL: clean exit", round)
		}
	}
	d := startDaemon(t, e.cfg, addr)
	waitFor(t, 30*time.Second, "every incident declared and annotated", func() bool {
		return len(e.slack.CreatedChannels()) >= len(services) && len(e.slack.Messages("#incidents")) >= len(services) &&
			len(e.grafana.Annotations()) >= len(services)
	})
	waitProcessed(t, d)
	time.Sleep(500 * time.Millisecond) // let any duplicate show up

	created := e.slack.CreatedChannels()
	if len(created) != len(services) {
		t.Fatalf("%d Sev 1 channels for %d incidents", len(created), len(services))
	}
	for _, c := range created {
		if n := len(e.slack.Messages(c.ID)); n != 2 {
			t.Errorf("%s: %d messages, want the declaration and the incident message", c.Name, n)
		}
		if !slices.Contains(c.Members, "U0123456") {
			t.Errorf("%s: on-call not invited", c.Name)
		}
	}
	if n := len(e.slack.Messages("#incidents")); n != len(services) {
		t.Errorf("%d announcements, want %d", n, len(services))
	}
	if n := len(e.grafana.Annotations()); n != len(services) {
		t.Errorf("%d annotations, want %d", n, len(services))
	}
}
