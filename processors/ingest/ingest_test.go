package ingest_test

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

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/processors/ingest"
)

const eventsPartitions = 6

// blogRecord is a record as the blog's C interceptors write it (jansson,
// compact, asctime's newline escaped), written here by hand so that the test
// does not depend on codecs.AppendInterceptorRecord.
func blogRecord(at time.Time, id, action, topic, client string, partition int32, offset int64) []byte {
	return fmt.Appendf(nil, `{"timestamp":"%s\n","correlation_id":"%s","action":"%s","topic":"%s","client":"%s","partition":%d,"offset":%d}`,
		at.Format(time.ANSIC), id, action, topic, client, partition, offset)
}

// runIngest runs an ingester until stop is called, returning it.
func runIngest(t *testing.T, cfg ingest.Config) (*ingest.Ingester, func()) {
	t.Helper()
	in, err := ingest.New(cfg)
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

func waitStats(t *testing.T, in *ingest.Ingester, timeout time.Duration, cond func(ingest.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(in.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; stats %+v", in.Stats())
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
	kafkatest.CreateTopic(t, c, ingest.DefaultEventsTopic, eventsPartitions)
	kafkatest.CreateTopic(t, c, ingest.DefaultDLQTopic, 1)

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

	cfg := ingest.Config{Brokers: c.ListenAddrs(), Topic: "audit_topic", Format: ingest.FormatInterceptorJSON, BatchSize: 16}
	in, stop := runIngest(t, cfg)
	waitStats(t, in, 30*time.Second, func(s ingest.Stats) bool { return s.Emitted+s.DeadLetter >= 2*ids+2 })
	stop()
	if s := in.Stats(); s.Read != 2*ids+2 || s.Emitted != 2*ids || s.DeadLetter != 2 || s.Batches < 2 {
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
	out := kafkatest.Consume(t, c, ingest.DefaultEventsTopic, 2*ids+1, 3*time.Second)
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

	dlq := kafkatest.Consume(t, c, ingest.DefaultDLQTopic, 3, 3*time.Second)
	if len(dlq) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dlq))
	}
	for _, r := range dlq {
		if header(r, audit.HeaderErrTopic) != "audit_topic" || header(r, audit.HeaderErrStage) != ingest.DeadLetterStage ||
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
	waitStats(t, in2, 30*time.Second, func(s ingest.Stats) bool { return s.Emitted >= 1 })
	time.Sleep(500 * time.Millisecond)
	stop2()
	if s := in2.Stats(); s.Read != 1 || s.Emitted != 1 {
		t.Fatalf("second run: %+v, want only the one new record", s)
	}
}

// A write that fails is retried, and nothing is committed before it
// succeeds: an ingester stopped while the audit cluster refuses its writes
// leaves the records for the next run.
func TestIngestRetriesUntilWritten(t *testing.T) {
	src := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, src, "audit_topic", 1)
	// The audit cluster fails produce requests with a non-retriable error,
	// which the client hands back to the ingester, while refusing is set.
	dst := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, dst, ingest.DefaultEventsTopic, eventsPartitions)
	kafkatest.CreateTopic(t, dst, ingest.DefaultDLQTopic, 1)
	var refusing atomic.Bool
	refusing.Store(true)
	dst.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if !refusing.Load() {
			return nil, nil, false
		}
		dst.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.MessageTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	prod := kafkatest.Client(t, src, kgo.DefaultProduceTopic("audit_topic"))
	at := time.Now().UTC().Truncate(time.Second)
	if err := prod.ProduceSync(context.Background(),
		&kgo.Record{Value: blogRecord(at, "a", "produce", "t", "p", 0, 1)},
		&kgo.Record{Value: blogRecord(at, "a", "consume", "t", "g", 0, 1)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := ingest.Config{
		Brokers: src.ListenAddrs(), AuditBrokers: dst.ListenAddrs(), Topic: "audit_topic", Format: ingest.FormatInterceptorJSON,
		RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: 100 * time.Millisecond,
	}
	in, stop := runIngest(t, cfg)
	waitStats(t, in, 30*time.Second, func(s ingest.Stats) bool { return s.Retries >= 3 })
	stop()
	if s := in.Stats(); s.Read != 2 || s.Emitted != 0 || s.Batches != 0 {
		t.Fatalf("first run: stats %+v, want 2 read and nothing written", s)
	}

	refusing.Store(false)
	in2, stop2 := runIngest(t, cfg)
	waitStats(t, in2, 30*time.Second, func(s ingest.Stats) bool { return s.Emitted == 2 })
	stop2()
	if s := in2.Stats(); s.Read != 2 || s.Batches != 1 {
		t.Fatalf("second run: stats %+v, want the 2 records read again and written once", s)
	}
	if got := kafkatest.Consume(t, dst, ingest.DefaultEventsTopic, 3, 3*time.Second); len(got) != 2 {
		t.Fatalf("%d events in the audit cluster, want 2", len(got))
	}
}

func TestDecoder(t *testing.T) {
	ev := codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindConsume, CorrelationID: "x", Topic: "t", Group: "g", ConsumeNs: 5}
	js, err := json.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := ingest.Decoder(ingest.FormatKaudit, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{js, codecs.AppendEvent(nil, &ev)} {
		got, err := dec(b)
		if err != nil || *got != ev {
			t.Fatalf("kaudit decoder: %+v, %v", got, err)
		}
	}
	if _, err := dec([]byte(`{"timestamp":"Fri Jun  7 13:23:43 2024\n"}`)); err == nil {
		t.Fatal("the kaudit decoder accepted a blog record")
	}
	cest := time.FixedZone("CEST", 2*60*60)
	blog, err := ingest.Decoder(ingest.FormatInterceptorJSON, cest)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, time.June, 7, 13, 23, 43, 0, cest)
	got, err := blog(blogRecord(at, "x", "consume", "t", "g", 0, 1))
	if err != nil || got.ConsumeNs != at.UnixNano() {
		t.Fatalf("blog decoder in CEST: %+v, %v", got, err)
	}
	if _, err := ingest.Decoder("avro", nil); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestNewRefuses(t *testing.T) {
	for name, cfg := range map[string]ingest.Config{
		"no brokers":      {Topic: "a", Format: ingest.FormatInterceptorJSON},
		"no topic":        {Brokers: []string{"b:9092"}, Format: ingest.FormatInterceptorJSON},
		"no format":       {Brokers: []string{"b:9092"}, Topic: "a"},
		"reads own topic": {Brokers: []string{"b:9092"}, Topic: ingest.DefaultEventsTopic, Format: ingest.FormatKaudit},
	} {
		if _, err := ingest.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
