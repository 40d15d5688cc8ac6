//go:build rdkafka

package main_test

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestAuditClusterDown: when the audit cluster cannot be reached, the
// application is not slowed down or failed: kcat produces everything, the
// events that do not fit the plugin's queue are dropped and counted, and
// rd_kafka_destroy gives up on the rest after audit.close.timeout.ms.
func TestAuditClusterDown(t *testing.T) {
	const n = 2000
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "orders", 3)
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	stats := filepath.Join(t.TempDir(), "stats.jsonl")
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("message %d", i))
	}
	start := time.Now()
	kcatProduce(t, c.ListenAddrs()[0], "orders", lines, nil, "client.id=app",
		"audit.bootstrap.servers="+dead, "audit.queue.buffering.max.messages=100",
		"audit.close.timeout.ms=1000", "audit.log.level=off", "audit.stats.file="+stats)
	elapsed := time.Since(start)

	if got := len(kafkatest.Consume(t, c, "orders", n, 10*time.Second)); got != n {
		t.Fatalf("%d of %d messages produced", got, n)
	}
	if elapsed > 20*time.Second {
		t.Errorf("kcat took %s with the audit cluster down", elapsed)
	}
	st := readStats(t, stats)
	if len(st) != 1 {
		t.Fatalf("stats %+v", st)
	}
	s := st[0]
	// At most queue (ring) + queue (sender) events can have been
	// accepted; none was sent; every event is accounted for.
	if s.Sent != 0 || s.Dropped < n-200 || s.Produced+s.Dropped != n || s.Failed != s.Produced {
		t.Errorf("stats %+v: want none sent, at least %d dropped, the accepted ones failed", s, n-200)
	}
}

// TestBackpressure: with a tiny queue, a burst overflows it and events are
// dropped (counted, and reported in drop reports that cover exactly the
// messages whose produce event is missing), unless audit.enqueue.timeout.ms
// lets the application thread wait for room, in which case every event is
// sent.
func TestBackpressure(t *testing.T) {
	const n = 1000
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "orders", 3)
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("message %d", i))
	}
	for _, wait := range []string{"0", "5000"} {
		stats := filepath.Join(t.TempDir(), "stats.jsonl")
		audit := "audit-" + wait
		kafkatest.CreateTopic(t, c, audit, 3)
		start := time.Now().UnixNano()
		kcatProduce(t, c.ListenAddrs()[0], "orders", lines, nil, "client.id=app", "audit.topic="+audit,
			"audit.queue.buffering.max.messages=10",
			"audit.enqueue.timeout.ms="+wait, "audit.log.level=off", "audit.stats.file="+stats)
		end := time.Now().UnixNano()
		st := readStats(t, stats)
		if len(st) != 1 {
			t.Fatalf("stats %+v", st)
		}
		s := st[0]
		if s.Produced+s.Dropped != n || s.Sent != s.Produced || s.Failed != 0 {
			t.Fatalf("wait %sms: stats %+v: every event must be sent or dropped", wait, s)
		}
		if wait == "0" && s.Dropped == 0 {
			t.Errorf("no wait: a burst of %d through a queue of 10 dropped nothing: %+v", n, s)
		}
		if wait != "0" && s.Dropped != 0 {
			t.Errorf("with a bounded wait: %d events dropped: %+v", s.Dropped, s)
		}
		// Every message is in the audit topic: as its produce event or
		// counted in a drop report of this client and topic.
		events, dropped := 0, 0
		for _, r := range kafkatest.Consume(t, c, audit, 1<<30, 2*time.Second) {
			ev, err := codecs.DecodeEvent(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			switch ev.Kind {
			case codecs.KindProduce:
				events++
			case codecs.KindDrops:
				if ev.ClientID != "app" || ev.Topic != "orders" || ev.Group != "" || ev.DroppedKind != codecs.KindProduce ||
					ev.Source != "librdkafka" || ev.WindowStartNs < start || ev.WindowEndNs > end {
					t.Errorf("drop report %+v", ev)
				}
				dropped += int(ev.Dropped)
			default:
				t.Errorf("event %+v", ev)
			}
		}
		if events+dropped != n || events != int(s.Sent) || dropped != int(s.Reported) {
			t.Errorf("wait %sms: %d produce events and %d reported drops for %d messages (stats %+v)", wait, events, dropped, n, s)
		}
	}
}
