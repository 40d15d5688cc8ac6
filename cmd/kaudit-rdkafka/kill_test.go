//go:build rdkafka

package main_test

import (
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestKillNine SIGKILLs an audited kcat producer while it produces (the
// package doc's crash-safety claim): the events still in the plugin are
// lost, never corrupted or invented. Every audit record in the topic
// decodes, and is the produce event of a message that is in the
// application's topic at the partition and offset it names; no drop
// report claims what the kill lost.
func TestKillNine(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "orders", 3)
	kafkatest.CreateTopic(t, c, "kill.audit", 3)
	cmd := exec.Command("kcat", append([]string{"-P", "-b", c.ListenAddrs()[0], "-t", "orders"},
		auditArgs(t, "audit.topic=kill.audit", "audit.log.level=off")...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Feed kcat until some of its messages are audited, then kill it with
	// more on the way.
	written := 0
	write := func(n int) {
		for range n {
			if _, err := io.WriteString(stdin, fmt.Sprintf("message %d\n", written)); err != nil {
				t.Fatalf("write to kcat: %v", err)
			}
			written++
		}
	}
	deadline := time.Now().Add(time.Minute)
	for audited := 0; audited == 0; {
		write(2000)
		if time.Now().After(deadline) {
			t.Fatal("no audit event within a minute")
		}
		audited = len(kafkatest.Consume(t, c, "kill.audit", 1, 200*time.Millisecond))
	}
	write(2000)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("kcat ended with %v, want killed by SIGKILL", err)
	}

	type pos struct {
		p int32
		o int64
	}
	messages := map[pos]string{} // correlation ID at each position of orders
	for _, r := range kafkatest.Consume(t, c, "orders", written+1, 3*time.Second) {
		for _, h := range r.Headers {
			if h.Key == audit.CorrelationHeader {
				messages[pos{r.Partition, r.Offset}] = string(h.Value)
			}
		}
	}
	events := 0
	for _, r := range kafkatest.Consume(t, c, "kill.audit", 1<<30, 3*time.Second) {
		ev, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatalf("audit record %q after kill -9: %v", r.Value, err)
		}
		switch {
		case ev.Kind == codecs.KindDrops:
			t.Errorf("drop report %+v: nothing was dropped while kcat lived", ev)
		case ev.Kind != codecs.KindProduce || messages[pos{ev.Partition, ev.Offset}] != ev.CorrelationID:
			t.Errorf("event %+v is not the produce event of the message at %d/%d (%q)",
				ev, ev.Partition, ev.Offset, messages[pos{ev.Partition, ev.Offset}])
		}
		events++
	}
	t.Logf("%d lines written, %d messages in the topic, %d audited before the kill", written, len(messages), events)
	if events == 0 || events > len(messages) {
		t.Fatalf("%d produce events for %d messages", events, len(messages))
	}
}
