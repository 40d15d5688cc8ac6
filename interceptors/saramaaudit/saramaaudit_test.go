package saramaaudit_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/saramaaudit"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// auditCluster starts a separate cluster holding the audit topic and an
// emitter writing to it.
func auditCluster(t *testing.T) (*kfake.Cluster, *emitter.Emitter) {
	t.Helper()
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 3)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close(context.Background()) })
	return c, em
}

// auditEvents closes em (flushing it) and returns every event in the audit
// topic, failing unless there are exactly n.
func auditEvents(t *testing.T, c *kfake.Cluster, em *emitter.Emitter, n int) []*codecs.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		t.Fatalf("emitter Close: %v", err)
	}
	recs := kafkatest.Consume(t, c, audit.DefaultEventsTopic, n+1, 2*time.Second)
	if len(recs) != n {
		t.Fatalf("audit topic holds %d events, want %d (emitter %+v)", len(recs), n, em.Stats())
	}
	evs := make([]*codecs.Event, 0, n)
	for _, r := range recs {
		ev, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatalf("decode audit event: %v", err)
		}
		if string(r.Key) != ev.CorrelationID {
			t.Errorf("audit record key %q, event correlation ID %q", r.Key, ev.CorrelationID)
		}
		evs = append(evs, ev)
	}
	return evs
}

func saramaConfig(clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.ClientID = clientID
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	return cfg
}

func correlationIDs(hs []sarama.RecordHeader) []string {
	var ids []string
	for _, h := range hs {
		if string(h.Key) == audit.CorrelationHeader {
			ids = append(ids, string(h.Value))
		}
	}
	return ids
}

func recordID(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == audit.CorrelationHeader {
			return string(h.Value)
		}
	}
	return ""
}

// TestAsyncProducer: every message gets one correlation ID (an existing one
// is kept), comes back to the application unchanged, and is reported once
// with the partition and offset sarama returned.
func TestAsyncProducer(t *testing.T) {
	const n = 120
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 3)
	ac, em := auditCluster(t)

	cfg := saramaConfig("shop")
	cfg.Producer.Return.Successes = true
	before := *cfg
	p, err := saramaaudit.NewAsyncProducer(em, app.ListenAddrs(), cfg, saramaaudit.WithHost("test-host"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Producer.Interceptors) != 0 || cfg.Producer.Return != before.Producer.Return {
		t.Fatal("NewAsyncProducer modified the caller's config")
	}
	// One shared headers slice with spare capacity: the audit must not
	// write into its backing array.
	shared := make([]sarama.RecordHeader, 1, 8)
	shared[0] = sarama.RecordHeader{Key: []byte("tenant"), Value: []byte("acme")}
	go func() {
		for i := range n {
			m := &sarama.ProducerMessage{
				Topic:    "orders",
				Key:      sarama.StringEncoder(fmt.Sprintf("k%d", i)),
				Value:    sarama.ByteEncoder(fmt.Appendf(nil, "order %d", i)),
				Metadata: i,
				Headers:  shared,
			}
			if i%10 == 0 {
				m.Headers = []sarama.RecordHeader{{Key: []byte(audit.CorrelationHeader), Value: fmt.Appendf(nil, "upstream-%d", i)}}
			}
			p.Input() <- m
		}
	}()
	acked := map[string]*sarama.ProducerMessage{}
	for len(acked) < n {
		select {
		case m := <-p.Successes():
			i, ok := m.Metadata.(int)
			if !ok {
				t.Fatalf("Metadata came back as %T, want the application's int", m.Metadata)
			}
			ids := correlationIDs(m.Headers)
			if len(ids) != 1 || ids[0] == "" {
				t.Fatalf("message %d has correlation IDs %q, want exactly one", i, ids)
			}
			if i%10 == 0 && ids[0] != fmt.Sprintf("upstream-%d", i) {
				t.Fatalf("message %d: existing ID replaced by %q", i, ids[0])
			}
			acked[ids[0]] = m
		case e := <-p.Errors():
			t.Fatalf("produce error: %v", e)
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out with %d of %d acknowledged", len(acked), n)
		}
	}
	if len(shared) != 1 || string(shared[0].Key) != "tenant" || cap(shared) != 8 || len(shared[:2][1].Key) != 0 {
		t.Fatalf("the application's shared headers slice was written: %+v", shared[:2])
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Produced != n || s.Rejected != 0 || s.Untracked != 0 || s.Panics != 0 {
		t.Fatalf("stats %+v", s)
	}

	// The messages on the wire carry the IDs the application saw.
	for _, r := range kafkatest.Consume(t, app, "orders", n, 10*time.Second) {
		if acked[recordID(r)] == nil {
			t.Fatalf("record %s/%d@%d has unknown correlation ID %q", r.Topic, r.Partition, r.Offset, recordID(r))
		}
	}

	for _, ev := range auditEvents(t, ac, em, n) {
		m := acked[ev.CorrelationID]
		if m == nil {
			t.Fatalf("event for unknown correlation ID %q", ev.CorrelationID)
		}
		key, _ := m.Key.Encode()
		value, _ := m.Value.Encode()
		want := codecs.Event{
			Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: ev.CorrelationID,
			Topic: "orders", Partition: m.Partition, Offset: m.Offset, ClientID: "shop", Host: "test-host",
			Source: saramaaudit.Source, SendNs: ev.SendNs, AckNs: ev.AckNs, RecordTsNs: ev.RecordTsNs,
			PayloadSize: int32(len(key) + len(value)), Digest: codecs.Digest(key, value),
		}
		if *ev != want {
			t.Fatalf("event\n got %+v\nwant %+v", *ev, want)
		}
		if ev.SendNs == 0 || ev.AckNs < ev.SendNs {
			t.Fatalf("send %d, ack %d", ev.SendNs, ev.AckNs)
		}
		delete(acked, ev.CorrelationID)
	}
}

// TestAsyncProducerResults: the application gets exactly the result
// channels its configuration asked for, while every result is reported,
// failures included.
func TestAsyncProducerResults(t *testing.T) {
	const good = 20
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 1)
	ac, em := auditCluster(t)

	cfg := saramaConfig("quiet") // Return.Successes false: sarama's default
	cfg.Producer.MaxMessageBytes = 1000
	p, err := saramaaudit.NewAsyncProducer(em, app.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range good {
		p.Input() <- &sarama.ProducerMessage{Topic: "orders", Value: sarama.StringEncoder(fmt.Sprint(i))}
	}
	big := &sarama.ProducerMessage{Topic: "orders", Value: sarama.ByteEncoder(make([]byte, 2000)), Metadata: "big"}
	p.Input() <- big
	select {
	case e := <-p.Errors():
		if e.Msg != big || e.Msg.Metadata != "big" {
			t.Fatalf("error for %+v", e.Msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no error for the oversized message")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, open := <-p.Successes(); open {
		t.Fatal("a success was forwarded although the configuration did not ask for them")
	}
	var ok, failed int
	for _, ev := range auditEvents(t, ac, em, good+1) {
		switch {
		case ev.Error == "":
			ok++
			if ev.AckNs == 0 || ev.Offset < 0 {
				t.Errorf("acknowledged event without ack time or offset: %+v", *ev)
			}
		default:
			failed++
			if ev.AckNs != 0 || ev.Offset != -1 || ev.SendNs == 0 || !strings.Contains(ev.Error, "MaxMessageBytes") || ev.PayloadSize != 2000 {
				t.Errorf("failure event %+v", *ev)
			}
		}
	}
	if ok != good || failed != 1 {
		t.Fatalf("%d acknowledged and %d failed events, want %d and 1", ok, failed, good)
	}
}

func TestAsyncProducerNeedsHeaders(t *testing.T) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V0_10_2_0
	if _, err := saramaaudit.NewAsyncProducer(nil, []string{"127.0.0.1:1"}, cfg); err == nil || !strings.Contains(err.Error(), "headers") {
		t.Fatalf("err %v, want a refusal of a version without headers", err)
	}
}

func TestSyncProducer(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 2)
	ac, em := auditCluster(t)

	cfg := saramaConfig("sync-shop")
	cfg.Producer.MaxMessageBytes = 1000
	p, err := saramaaudit.NewSyncProducer(em, app.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	one := &sarama.ProducerMessage{Topic: "orders", Key: sarama.StringEncoder("a"), Value: sarama.StringEncoder("first")}
	part, off, err := p.SendMessage(one)
	if err != nil {
		t.Fatal(err)
	}
	batch := []*sarama.ProducerMessage{
		{Topic: "orders", Value: sarama.StringEncoder("second")},
		{Topic: "orders", Value: sarama.ByteEncoder(make([]byte, 2000))},
		{Topic: "orders", Value: sarama.StringEncoder("third")},
	}
	var perrs sarama.ProducerErrors
	if err := p.SendMessages(batch); !errors.As(err, &perrs) || len(perrs) != 1 || perrs[0].Msg != batch[1] {
		t.Fatalf("SendMessages: %v, want one error for the oversized message", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*codecs.Event{}
	for _, ev := range auditEvents(t, ac, em, 4) {
		byID[ev.CorrelationID] = ev
		if ev.ClientID != "sync-shop" || ev.Source != saramaaudit.Source || ev.SendNs == 0 {
			t.Errorf("event %+v", *ev)
		}
	}
	check := func(m *sarama.ProducerMessage, wantErr bool) {
		t.Helper()
		ids := correlationIDs(m.Headers)
		if len(ids) != 1 {
			t.Fatalf("correlation IDs %q", ids)
		}
		ev := byID[ids[0]]
		switch {
		case ev == nil:
			t.Fatalf("no event for %s", ids[0])
		case wantErr && (ev.Error == "" || ev.Offset != -1 || ev.AckNs != 0):
			t.Errorf("failed message reported as %+v", *ev)
		case !wantErr && (ev.Error != "" || ev.Partition != m.Partition || ev.Offset != m.Offset || ev.AckNs < ev.SendNs):
			t.Errorf("message at %d@%d reported as %+v", m.Partition, m.Offset, *ev)
		}
	}
	check(one, false)
	if one.Partition != part || one.Offset != off {
		t.Fatalf("SendMessage returned %d@%d, message says %d@%d", part, off, one.Partition, one.Offset)
	}
	check(batch[0], false)
	check(batch[1], true)
	check(batch[2], false)
}

// TestConsumerGroup: one consume event per message with a correlation ID,
// for the group the interceptor was built for.
func TestConsumerGroup(t *testing.T) {
	const n = 60
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 3)
	ac, em := auditCluster(t)

	prod := kafkatest.Client(t, app, kgo.DefaultProduceTopic("orders"))
	ids := map[string]bool{}
	var recs []*kgo.Record
	for i := range n {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
		if i%6 != 0 { // every 6th message is not audited
			id := fmt.Sprintf("id-%d", i)
			ids[id] = true
			r.Headers = []kgo.RecordHeader{{Key: audit.CorrelationHeader, Value: []byte(id)}}
		}
		recs = append(recs, r)
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := saramaConfig("billing-1")
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cg, err := saramaaudit.NewConsumerGroup(em, app.ListenAddrs(), "billing", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := &collect{want: n, done: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{"orders"}, h); err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
	}
	if h.count() != n {
		t.Fatalf("consumed %d, want %d", h.count(), n)
	}
	if err := cg.Close(); err != nil {
		t.Fatal(err)
	}

	byID := map[string]bool{}
	for _, ev := range auditEvents(t, ac, em, len(ids)) {
		m := h.byID(ev.CorrelationID)
		if m == nil || !ids[ev.CorrelationID] || byID[ev.CorrelationID] {
			t.Fatalf("unexpected event %+v", *ev)
		}
		byID[ev.CorrelationID] = true
		want := codecs.Event{
			Version: codecs.SchemaVersion, Kind: codecs.KindConsume, CorrelationID: ev.CorrelationID,
			Topic: "orders", Partition: m.Partition, Offset: m.Offset, ClientID: "billing-1", Group: "billing",
			Host: ev.Host, Source: saramaaudit.Source, ConsumeNs: ev.ConsumeNs, RecordTsNs: m.Timestamp.UnixNano(),
			PayloadSize: int32(len(m.Key) + len(m.Value)), Digest: codecs.Digest(m.Key, m.Value),
		}
		if *ev != want || ev.ConsumeNs == 0 {
			t.Fatalf("event\n got %+v\nwant %+v", *ev, want)
		}
	}
}

// collect is a consumer group handler keeping what it read.
type collect struct {
	mu   sync.Mutex
	msgs []*sarama.ConsumerMessage
	want int
	done func()
}

func (c *collect) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collect) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collect) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		if len(c.msgs) == c.want {
			c.done()
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *collect) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collect) byID(id string) *sarama.ConsumerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		for _, h := range m.Headers {
			if string(h.Key) == audit.CorrelationHeader && string(h.Value) == id {
				return m
			}
		}
	}
	return nil
}

// TestGokaProducerBuilder: a goka emitter on the audited producer puts each
// key in the partition goka's hasher picks, reports each message, and
// resolves goka's promises.
func TestGokaProducerBuilder(t *testing.T) {
	const n = 50
	const parts = 4
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "events", parts)
	ac, em := auditCluster(t)

	cfg := goka.DefaultConfig()
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	ge, err := goka.NewEmitter(app.ListenAddrs(), "events", new(codec.String),
		goka.WithEmitterProducerBuilder(saramaaudit.ProducerBuilder(em, cfg)),
		goka.WithEmitterTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, goka.NewTopicManagerConfig())),
		goka.WithEmitterClientID("goka-emitter"))
	if err != nil {
		t.Fatal(err)
	}
	keyOf := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		p, err := ge.Emit(key, "v")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		p.ThenWithMessage(func(m *sarama.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("promise: %v", err)
				return
			}
			if ids := correlationIDs(m.Headers); len(ids) == 1 {
				mu.Lock()
				keyOf[ids[0]] = key
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ge.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(keyOf) != n {
		t.Fatalf("%d promises resolved with one correlation ID, want %d", len(keyOf), n)
	}
	for _, ev := range auditEvents(t, ac, em, n) {
		key, ok := keyOf[ev.CorrelationID]
		if !ok {
			t.Fatalf("event for unknown ID %+v", *ev)
		}
		h := fnv.New32a()
		h.Write([]byte(key))
		want := int32(h.Sum32()) % parts
		if want < 0 {
			want = -want
		}
		if ev.Partition != want || ev.ClientID != "goka-emitter" || ev.Source != saramaaudit.Source || ev.Error != "" {
			t.Fatalf("key %s: event %+v, want partition %d", key, *ev, want)
		}
	}
}
