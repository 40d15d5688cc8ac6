package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/sinks/kafka"
)

// blogJSON is an audit record as the source blog's C interceptors write it
// (jansson's compact output, asctime's trailing newline escaped), written by
// hand so that the test does not depend on codecs.AppendInterceptorRecord.
func blogJSON(at time.Time, id, action, topic, client string, partition int32, offset int64) []byte {
	return fmt.Appendf(nil, `{"timestamp":"%s\n","correlation_id":"%s","action":"%s","topic":"%s","client":"%s","partition":%d,"offset":%d}`,
		at.Format(time.ANSIC), id, action, topic, client, partition, offset)
}

// TestIngest: the blog's audit topic (produce records, and consume records
// of two groups, plus one record that is not an audit record) is ingested
// and comes out of the correlator as DELIVERED deliveries in ClickHouse,
// with latencies in whole seconds (the blog's timestamps have a resolution
// of one second); the garbage record lands in the dead-letter topic.
func TestIngest(t *testing.T) {
	itest.Integration(t)
	const m = 200
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "audit_topic", 3)
	p, stopPipeline := e.startPipeline("sink-ingest")

	// Recent times, as live interceptors would write them (the correlator
	// forgets trails an hour after their last event).
	base := time.Now().UTC().Truncate(time.Second).Add(-30 * time.Second)
	var recs []*kgo.Record
	var analyticsSum time.Duration
	for i := range m {
		id := fmt.Sprintf("c0613861-f1a9-47f0-%04x-%012x", i/4096, i)
		part, off := int32(i%4), int64(1000+i)
		late := time.Duration(2+i%3) * time.Second
		analyticsSum += late
		recs = append(recs,
			&kgo.Record{Key: []byte(id), Value: blogJSON(base, id, "produce", "test_topic", "ksb-demo-producer", part, off)},
			// ksb-demo-group reads each message 1s after its ack,
			// analytics 2 to 4s after.
			&kgo.Record{Key: []byte(id), Value: blogJSON(base.Add(time.Second), id, "consume", "test_topic", "ksb-demo-group", part, off)},
			&kgo.Record{Key: []byte(id), Value: blogJSON(base.Add(late), id, "consume", "test_topic", "analytics", part, off)},
		)
	}
	garbage := &kgo.Record{Key: []byte("garbage"), Value: []byte(`{"hello": "this is not an audit record"}`)}
	recs = append(recs[:len(recs)/2], append([]*kgo.Record{garbage}, recs[len(recs)/2:]...)...)
	// Spread by franz-go's default partitioner, as librdkafka's default
	// partitioner spreads the blog's records: not the way goka would.
	prod := kafkatest.Client(t, e.cluster, kgo.DefaultProduceTopic("audit_topic"))
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	in, err := kafka.NewIngest(kafka.IngestConfig{Brokers: e.brokers, Topic: "audit_topic", Format: kafka.FormatInterceptorJSON, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var runErr error
	var stopOnce sync.Once
	stopIngest := func() error {
		stopOnce.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	defer stopIngest()

	deliveries, events := e.table("deliveries"), e.table("events")
	waitFor(t, 90*time.Second, "DELIVERED deliveries in ClickHouse", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED'")
		return got >= 2*m, fmt.Sprintf("%d deliveries, ingest %+v, correlator %+v, sink %+v", got, in.Stats(), p.Correlator.Stats(), p.Sink.Stats())
	})
	waitFor(t, 30*time.Second, "every event in ClickHouse", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + events + " FINAL")
		return got >= 3*m, fmt.Sprintf("%d events", got)
	})
	if err := stopIngest(); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	stopPipeline()

	if s, k := in.Stats(), in.Sink.Stats(); s.Written[kafka.KindEvent] != 3*m || k.Produced != 3*m || k.Dropped != 0 || s.DeadLetter != 1 {
		t.Errorf("ingest stats %+v, sink %+v, want %d emitted, 1 dead letter", s, k, 3*m)
	}
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL"); got != 2*m {
		t.Errorf("%d deliveries, want %d", got, 2*m)
	}
	for _, g := range []string{"ksb-demo-group", "analytics"} {
		got := e.queryUint("SELECT count() FROM "+deliveries+" FINAL WHERE topic = 'test_topic' AND consumer_group = ? AND status = 'DELIVERED' AND producer_client = 'ksb-demo-producer'", g)
		if got != m {
			t.Errorf("group %s: %d DELIVERED, want %d", g, got, m)
		}
	}
	// One-second resolution: no ack latency, end-to-end latencies in
	// whole seconds, and exactly the ones written.
	if bad := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE ack_latency_us != 0 OR e2e_latency_us % 1000000 != 0"); bad != 0 {
		t.Errorf("%d deliveries with an ack latency or a latency that is not whole seconds", bad)
	}
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'ksb-demo-group' AND e2e_latency_us = 1000000"); got != m {
		t.Errorf("%d ksb-demo-group deliveries with a 1s latency, want %d", got, m)
	}
	if got := e.queryUint("SELECT toUInt64(sum(e2e_latency_us)) FROM " + deliveries + " FINAL WHERE consumer_group = 'analytics'"); got != uint64(analyticsSum.Microseconds()) {
		t.Errorf("analytics latencies sum to %dus, want %dus", got, analyticsSum.Microseconds())
	}
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE partition = consume_partition AND offset = consume_offset AND offset >= 1000"); got != 2*m {
		t.Errorf("%d deliveries with the blog's partition and offset, want %d", got, 2*m)
	}
	if got := e.queryUint("SELECT count() FROM "+events+" FINAL WHERE source = ?", codecs.InterceptorJSONSource); got != 3*m {
		t.Errorf("%d blog-json events, want %d", got, 3*m)
	}

	dlq := kafkatest.Consume(t, e.cluster, audit.DefaultDLQTopic, 2, 3*time.Second)
	if len(dlq) != 1 {
		t.Fatalf("%d records in %s, want the garbage one", len(dlq), audit.DefaultDLQTopic)
	}
	d := dlq[0]
	hdr := map[string]string{}
	for _, h := range d.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(d.Key) != "garbage" || string(d.Value) != string(garbage.Value) ||
		hdr[audit.HeaderErrTopic] != "audit_topic" || hdr[audit.HeaderErrStage] != kafka.DeadLetterStage ||
		hdr[audit.HeaderErrPartition] != fmt.Sprint(garbage.Partition) || hdr[audit.HeaderErrOffset] != fmt.Sprint(garbage.Offset) ||
		!strings.Contains(hdr[audit.HeaderErrMessage], "missing") {
		t.Errorf("dead letter %q = %q, headers %v", d.Key, d.Value, hdr)
	}
}
