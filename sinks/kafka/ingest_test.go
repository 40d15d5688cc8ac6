package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/sinks/kafka"
)

const eventsPartitions = 6

// blogRecord is a record as the blog's C interceptors write it (jansson,
// compact, asctime's newline escaped), written here by hand so that the test
// does not depend on codecs.AppendInterceptorRecord.
func blogRecord(at time.Time, id, action, topic, client string, partition int32, offset int64) []byte {
	return fmt.Appendf(nil, `{"timestamp":"%s\n","correlation_id":"%s","action":"%s","topic":"%s","client":"%s","partition":%d,"offset":%d}`,
		at.Format(time.ANSIC), id, action, topic, client, partition, offset)
}

// runIngest runs an ingest until stop is called, returning it.
func runIngest(t *testing.T, cfg kafka.IngestConfig) (*kafka.Ingest, func()) {
	t.Helper()
	in, err := kafka.NewIngest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ingest run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return in, stop
}

// stats are what a test checks of an ingest.
type stats struct {
	Emitted, DeadLetter, Dropped, Batches, Retries uint64
}

// Read is every record taken from the foreign topic.
func (s stats) Read() uint64 { return s.Emitted + s.DeadLetter + s.Dropped }

func statsOf(in *kafka.Ingest) stats {
	r, k := in.Stats(), in.Sink.Stats()
	return stats{Emitted: r.Written[kafka.KindEvent] - k.Dropped, DeadLetter: r.DeadLetter, Dropped: k.Dropped, Batches: r.Batches, Retries: r.Retries}
}

func waitStats(t *testing.T, in *kafka.Ingest, timeout time.Duration, cond func(stats) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(statsOf(in)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; stats %+v", statsOf(in))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// gokaPartition is the partition goka (sarama's FNV-1a hash partitioner)
// picks for key.
func gokaPartition(key []byte, n int32) int32 {
	h := fnv.New32a()
	h.Write(key)
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

func TestIngestBlogJSON(t *testing.T) {
	const ids = 40
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "audit_topic", 3)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, eventsPartitions)
	kafkatest.CreateTopic(t, c, audit.DefaultDLQTopic, 1)

	// The blog's records, spread by franz-go's default partitioner as
	// librdkafka's would spread them: not goka's.
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	var recs []*kgo.Record
	for i := range ids {
		id := fmt.Sprintf("c0613861-f1a9-47f0-9b92-%012d", i)
		recs = append(recs,
			&kgo.Record{Key: []byte(id), Value: blogRecord(base, id, "produce", "test_topic", "ksb-demo-producer", int32(i%2), int64(i))},
			&kgo.Record{Key: []byte(id), Value: blogRecord(base.Add(time.Second), id, "consume", "test_topic", "ksb-demo-group", int32(i%2), int64(i))},
		)
	}
	garbage := &kgo.Record{Key: []byte("garbage"), Value: []byte("not an audit record")}
	empty := &kgo.Record{Key: []byte("empty")}
	recs = append(recs, garbage, empty)
	prod := kafkatest.Client(t, c, kgo.DefaultProduceTopic("audit_topic"))
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := kafka.IngestConfig{Brokers: c.ListenAddrs(), Topic: "audit_topic", Format: kafka.FormatInterceptorJSON, BatchSize: 16}
	in, stop := runIngest(t, cfg)
	waitStats(t, in, 30*time.Second, func(s stats) bool { return s.Emitted+s.DeadLetter >= 2*ids+2 })
	stop()
	if s := statsOf(in); s.Read() != 2*ids+2 || s.Emitted != 2*ids || s.DeadLetter != 2 || s.Batches < 2 {
		t.Fatalf("stats %+v", s)
	}

	// Each event is the blog record's, keyed by correlation ID, in the
	// partition goka would pick.
	want := map[string]bool{}
	for _, r := range recs[:2*ids] {
		ev, err := codecs.ParseInterceptorRecord(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		want[string(codecs.AppendEvent(nil, ev))] = true
	}
	out := kafkatest.Consume(t, c, audit.DefaultEventsTopic, 2*ids+1, 3*time.Second)
	if len(out) != 2*ids {
		t.Fatalf("%d events written, want %d", len(out), 2*ids)
	}
	for _, r := range out {
		ev, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != ev.CorrelationID || ev.Source != codecs.InterceptorJSONSource {
			t.Errorf("record key %q, event %+v", r.Key, *ev)
		}
		if p := gokaPartition(r.Key, eventsPartitions); r.Partition != p {
			t.Errorf("event %s in partition %d, goka expects %d", r.Key, r.Partition, p)
		}
		if !want[string(r.Value)] {
			t.Errorf("unexpected event %+v", *ev)
		}
		delete(want, string(r.Value))
	}

	dlq := kafkatest.Consume(t, c, audit.DefaultDLQTopic, 3, 3*time.Second)
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, r := range dlq {
		if header(r, audit.HeaderErrTopic) != "audit_topic" || header(r, audit.HeaderErrStage) != kafka.DeadLetterStage ||
			header(r, audit.HeaderErrOffset) == "" || header(r, audit.HeaderErrPartition) == "" || header(r, audit.HeaderErrMessage) == "" {
			t.Errorf("dead letter %q headers %+v", r.Key, r.Headers)
		}
		switch string(r.Key) {
		case "garbage":
			if string(r.Value) != string(garbage.Value) || !strings.Contains(header(r, audit.HeaderErrMessage), "interceptor-json record") {
				t.Errorf("garbage dead letter: %q, reason %q", r.Value, header(r, audit.HeaderErrMessage))
			}
		case "empty":
			if len(r.Value) != 0 || !strings.Contains(header(r, audit.HeaderErrMessage), "empty") {
				t.Errorf("empty dead letter: %q, reason %q", r.Value, header(r, audit.HeaderErrMessage))
			}
		default:
			t.Errorf("unexpected dead letter %q", r.Key)
		}
	}

	// The offsets were committed: a new run of the same group reads only
	// what came after.
	later := &kgo.Record{Key: []byte("later"), Value: blogRecord(base, "later", "produce", "test_topic", "p", 0, 99)}
	if err := prod.ProduceSync(context.Background(), later).FirstErr(); err != nil {
		t.Fatal(err)
	}
	in2, stop2 := runIngest(t, cfg)
	waitStats(t, in2, 30*time.Second, func(s stats) bool { return s.Emitted >= 1 })
	stop2()
	if s := statsOf(in2); s.Read() != 1 || s.Emitted != 1 {
		t.Fatalf("second run: %+v, want only the one new record", s)
	}
}

// A write that fails is retried, and nothing is committed before it
// succeeds: an ingest stopped while the audit cluster refuses its writes
// (its ACLs being fixed) leaves the records for the next run.
func TestIngestRetriesUntilWritten(t *testing.T) {
	src := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, src, "audit_topic", 1)
	// The audit cluster fails produce requests with a non-retriable error,
	// which the client hands back to the sink, while refusing is set.
	dst := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, dst, audit.DefaultEventsTopic, eventsPartitions)
	kafkatest.CreateTopic(t, dst, audit.DefaultDLQTopic, 1)
	var refusing atomic.Bool
	refusing.Store(true)
	kafkatest.FailProduces(dst, kerr.TopicAuthorizationFailed.Code, refusing.Load)

	prod := kafkatest.Client(t, src, kgo.DefaultProduceTopic("audit_topic"))
	at := time.Now().UTC().Truncate(time.Second)
	if err := prod.ProduceSync(context.Background(),
		&kgo.Record{Value: blogRecord(at, "a", "produce", "t", "p", 0, 1)},
		&kgo.Record{Value: blogRecord(at, "a", "consume", "t", "g", 0, 1)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := kafka.IngestConfig{
		Brokers: src.ListenAddrs(), AuditBrokers: dst.ListenAddrs(), Topic: "audit_topic", Format: kafka.FormatInterceptorJSON,
		RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: 100 * time.Millisecond,
	}
	in, stop := runIngest(t, cfg)
	waitStats(t, in, 30*time.Second, func(s stats) bool { return s.Retries >= 3 })
	stop()
	if s := statsOf(in); s.Emitted != 0 || s.Batches != 0 || s.Dropped != 0 {
		t.Fatalf("first run: stats %+v, want nothing written or dropped", s)
	}
	if got := committedOffset(t, src, kafka.DefaultGroup, "audit_topic"); got > 0 {
		t.Fatalf("first run committed offset %d while nothing was written", got)
	}

	refusing.Store(false)
	in2, stop2 := runIngest(t, cfg)
	waitStats(t, in2, 30*time.Second, func(s stats) bool { return s.Emitted == 2 })
	stop2()
	if s := statsOf(in2); s.Read() != 2 || s.Batches != 1 {
		t.Fatalf("second run: stats %+v, want the 2 records read again and written once", s)
	}
	if got := kafkatest.Consume(t, dst, audit.DefaultEventsTopic, 3, 3*time.Second); len(got) != 2 {
		t.Fatalf("%d events in the audit cluster, want 2", len(got))
	}
}

// decodeOne runs a decoder on one value and returns the event it wrote.
func decodeOne(t *testing.T, dec sinks.Decoder[*kafka.Batch], value []byte) (*codecs.Event, error) {
	t.Helper()
	b := kafka.NewBatch()
	if err := dec(b, &kgo.Record{Value: value}); err != nil {
		if len(b.Records) != 0 {
			t.Errorf("a failed decode left %d records in the batch", len(b.Records))
		}
		return nil, err
	}
	if len(b.Records) != 1 {
		t.Fatalf("decoder wrote %d records, want 1", len(b.Records))
	}
	ev, err := codecs.DecodeEvent(b.Records[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Records[0].Key) != ev.CorrelationID {
		t.Errorf("record key %q, want the correlation ID %q", b.Records[0].Key, ev.CorrelationID)
	}
	return ev, nil
}

func TestDecoder(t *testing.T) {
	ev := codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindConsume, CorrelationID: "x", Topic: "t", Group: "g", ConsumeNs: 5}
	js, err := json.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := kafka.Decoder(kafka.FormatKaudit, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{js, codecs.AppendEvent(nil, &ev)} {
		got, err := decodeOne(t, dec, b)
		if err != nil || *got != ev {
			t.Fatalf("kaudit decoder: %+v, %v", got, err)
		}
	}
	if _, err := decodeOne(t, dec, []byte(`{"timestamp":"Fri Jun  7 13:23:43 2024\n"}`)); err == nil {
		t.Fatal("the kaudit decoder accepted a blog record")
	}
	cest := time.FixedZone("CEST", 2*60*60)
	for _, format := range []string{kafka.FormatInterceptorJSON, "blog-json"} {
		blog, err := kafka.Decoder(format, cest)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2024, time.June, 7, 13, 23, 43, 0, cest)
		got, err := decodeOne(t, blog, blogRecord(at, "x", "consume", "t", "g", 0, 1))
		if err != nil || got.ConsumeNs != at.UnixNano() {
			t.Fatalf("%s decoder in CEST: %+v, %v", format, got, err)
		}
	}
	if _, err := kafka.Decoder("avro", nil); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestNewRefuses(t *testing.T) {
	for name, cfg := range map[string]kafka.IngestConfig{
		"no brokers":      {Topic: "a", Format: kafka.FormatInterceptorJSON},
		"no topic":        {Brokers: []string{"b:9092"}, Format: kafka.FormatInterceptorJSON},
		"no format":       {Brokers: []string{"b:9092"}, Topic: "a"},
		"reads own topic": {Brokers: []string{"b:9092"}, Topic: audit.DefaultEventsTopic, Format: kafka.FormatKaudit},
		"negative batch":  {Brokers: []string{"b:9092"}, Topic: "a", Format: kafka.FormatKaudit, BatchSize: -1},
	} {
		if _, err := kafka.NewIngest(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// committedOffset is the group's committed offset of topic, summed over
// partitions.
func committedOffset(t *testing.T, c *kfake.Cluster, group, topic string) int64 {
	t.Helper()
	offs, err := kadm.NewClient(kafkatest.Client(t, c)).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// An event too large for the audit cluster (a kaudit event with a 1.2 MB
// error text, over the producer's limit) is refused for good: it is dropped
// and counted, and the ingest does not retry it forever; the events around
// it are written and committed.
func TestIngestDropsEventTooLargeToWrite(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "foreign", 1)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, eventsPartitions)
	kafkatest.CreateTopic(t, c, audit.DefaultDLQTopic, 1)
	ev := func(id string, errText string) *kgo.Record {
		e := codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: id, Topic: "t", SendNs: 1, AckNs: 2, Error: errText}
		return &kgo.Record{Topic: "foreign", Key: []byte(id), Value: codecs.AppendEvent(nil, &e)}
	}
	prod := kafkatest.Client(t, c, kgo.ProducerBatchMaxBytes(4<<20))
	if err := prod.ProduceSync(context.Background(), ev("a", ""), ev("huge", strings.Repeat("x", 1_200_000)), ev("b", "")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	in, stop := runIngest(t, kafka.IngestConfig{Brokers: c.ListenAddrs(), Topic: "foreign", Format: kafka.FormatKaudit, FlushInterval: 50 * time.Millisecond})
	waitStats(t, in, 30*time.Second, func(s stats) bool { return s.Dropped == 1 && s.Emitted == 2 })
	deadline := time.Now().Add(20 * time.Second)
	for committedOffset(t, c, kafka.DefaultGroup, "foreign") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the ingest did not commit past the dropped event; stats %+v", statsOf(in))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	got := kafkatest.Consume(t, c, audit.DefaultEventsTopic, 3, 3*time.Second)
	if len(got) != 2 {
		t.Fatalf("%d events written, want a and b", len(got))
	}
	for _, r := range got {
		if k := string(r.Key); k != "a" && k != "b" {
			t.Errorf("unexpected event %q", k)
		}
	}
}
