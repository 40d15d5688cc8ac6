package kgoaudit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// fakeClock ticks one microsecond per reading, from a fixed start.
type fakeClock struct{ n atomic.Int64 }

var clockStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	return clockStart.Add(time.Duration(c.n.Add(1)) * time.Microsecond)
}

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

func header(r *kgo.Record, key string) (string, int) {
	var v string
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			if n == 0 {
				v = string(h.Value)
			}
			n++
		}
	}
	return v, n
}

type pos struct {
	p int32
	o int64
}

// TestProduceAndConsumeAreAudited is the whole trip: an audited producer
// sends N records to a 3-partition topic, an audited consumer group reads
// them, and the audit topic (on another cluster) must hold exactly one
// produce and one consume event per record, matching what the clients saw.
func TestProduceAndConsumeAreAudited(t *testing.T) {
	const n = 300
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 3)
	auditC, em := auditCluster(t)
	clk := new(fakeClock)

	prodHooks := kgoaudit.New(em, kgoaudit.WithClock(clk.Now), kgoaudit.WithHost("test-host"))
	producer := kafkatest.Client(t, app,
		kgo.ClientID("app-producer"),
		kgo.DefaultProduceTopic("orders"),
		kgo.WithHooks(prodHooks),
	)

	type acked struct {
		pos
		key, value []byte
		ts         time.Time
	}
	var (
		mu    sync.Mutex
		byID  = map[string]acked{}
		perrs []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		r := &kgo.Record{
			Key:     fmt.Appendf(nil, "order-%d", i),
			Value:   []byte(strings.Repeat("x", i%50)),
			Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("shop")}},
		}
		if i == 0 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: audit.CorrelationHeader, Value: []byte("keep-me")})
		}
		producer.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				perrs = append(perrs, err)
				return
			}
			id, cnt := header(r, audit.CorrelationHeader)
			if cnt != 1 {
				perrs = append(perrs, fmt.Errorf("record %s has %d correlation headers", r.Key, cnt))
			}
			if _, dup := byID[id]; dup {
				perrs = append(perrs, fmt.Errorf("duplicate correlation ID %q", id))
			}
			byID[id] = acked{pos{r.Partition, r.Offset}, r.Key, r.Value, r.Timestamp}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(perrs) > 0 {
		t.Fatalf("produce: %v", errors.Join(perrs...))
	}
	if _, ok := byID["keep-me"]; !ok {
		t.Fatal("the record produced with correlation_id=keep-me lost its ID")
	}

	// One record from an unaudited producer: consumed but not audited.
	plain := kafkatest.Client(t, app, kgo.DefaultProduceTopic("orders"))
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("legacy")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consHooks := kgoaudit.New(em, kgoaudit.WithClock(clk.Now), kgoaudit.WithHost("test-host"))
	consumer := kafkatest.Client(t, app,
		kgo.ClientID("app-consumer"),
		kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(consHooks),
	)
	consumed := map[pos]string{}
	for len(consumed) < n+1 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(consumed), n+1, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			id, _ := header(r, audit.CorrelationHeader)
			consumed[pos{r.Partition, r.Offset}] = id
		})
	}
	consumer.Close()

	evs := auditEvents(t, auditC, em, 2*n)
	produced := map[string]*codecs.Event{}
	consumedIDs := map[string]bool{}
	for _, ev := range evs {
		if ev.Source != kgoaudit.Source || ev.Host != "test-host" || ev.Topic != "orders" {
			t.Errorf("event source/host/topic = %q/%q/%q", ev.Source, ev.Host, ev.Topic)
		}
		switch ev.Kind {
		case codecs.KindProduce:
			if produced[ev.CorrelationID] != nil {
				t.Errorf("two produce events for %q", ev.CorrelationID)
			}
			produced[ev.CorrelationID] = ev
			a, ok := byID[ev.CorrelationID]
			switch {
			case !ok:
				t.Errorf("produce event for unknown ID %q", ev.CorrelationID)
			case ev.Partition != a.p || ev.Offset != a.o:
				t.Errorf("%s: event at %d/%d, promise saw %d/%d", ev.CorrelationID, ev.Partition, ev.Offset, a.p, a.o)
			case ev.Digest != codecs.Digest(a.key, a.value) || int(ev.PayloadSize) != len(a.key)+len(a.value):
				t.Errorf("%s: digest/size %x/%d do not match the record", ev.CorrelationID, ev.Digest, ev.PayloadSize)
			case ev.RecordTsNs != a.ts.UnixNano():
				t.Errorf("%s: record timestamp %d, promise saw %d", ev.CorrelationID, ev.RecordTsNs, a.ts.UnixNano())
			case ev.SendNs <= clockStart.UnixNano() || ev.AckNs <= ev.SendNs:
				t.Errorf("%s: send %d, ack %d: want clock times with ack after send", ev.CorrelationID, ev.SendNs, ev.AckNs)
			case ev.ClientID != "app-producer" || ev.Error != "" || ev.Group != "":
				t.Errorf("%s: client %q, error %q, group %q", ev.CorrelationID, ev.ClientID, ev.Error, ev.Group)
			}
		case codecs.KindConsume:
			if consumedIDs[ev.CorrelationID] {
				t.Errorf("two consume events for %q", ev.CorrelationID)
			}
			consumedIDs[ev.CorrelationID] = true
			if got := consumed[pos{ev.Partition, ev.Offset}]; got != ev.CorrelationID {
				t.Errorf("consume event %q at %d/%d; the record read there has %q", ev.CorrelationID, ev.Partition, ev.Offset, got)
			}
			if ev.Group != "billing" || ev.ClientID != "app-consumer" || ev.ConsumeNs <= clockStart.UnixNano() {
				t.Errorf("%s: group %q client %q consume time %d", ev.CorrelationID, ev.Group, ev.ClientID, ev.ConsumeNs)
			}
		default:
			t.Errorf("event of kind %v", ev.Kind)
		}
	}
	if len(produced) != n || len(consumedIDs) != n {
		t.Fatalf("%d produce and %d consume events, want %d each", len(produced), len(consumedIDs), n)
	}
	for _, ev := range evs {
		if ev.Kind != codecs.KindConsume {
			continue
		}
		p := produced[ev.CorrelationID]
		if p == nil {
			t.Errorf("consume event %q without produce event", ev.CorrelationID)
			continue
		}
		if ev.Digest != p.Digest || ev.PayloadSize != p.PayloadSize || ev.RecordTsNs != p.RecordTsNs {
			t.Errorf("%s: consumed digest/size/ts %x/%d/%d, produced %x/%d/%d", ev.CorrelationID,
				ev.Digest, ev.PayloadSize, ev.RecordTsNs, p.Digest, p.PayloadSize, p.RecordTsNs)
		}
		if ev.ConsumeNs <= p.AckNs {
			t.Errorf("%s: consumed at %d, before its ack at %d", ev.CorrelationID, ev.ConsumeNs, p.AckNs)
		}
	}

	if s := prodHooks.Stats(); s != (kgoaudit.Stats{Produced: n}) {
		t.Errorf("producer hooks %+v, want %d produced", s, n)
	}
	if s := consHooks.Stats(); s != (kgoaudit.Stats{Consumed: n, Unaudited: 1}) {
		t.Errorf("consumer hooks %+v, want %d consumed, 1 unaudited", s, n)
	}
}

// TestFailedProduceIsAudited makes the application's broker reject every
// produce: each failed record still yields one produce event, with the
// error, no ack time and no offset.
func TestFailedProduceIsAudited(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "broken", 3)
	app.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		app.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	auditC, em := auditCluster(t)
	hooks := kgoaudit.New(em)
	producer := kafkatest.Client(t, app, kgo.DefaultProduceTopic("broken"), kgo.WithHooks(hooks))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := time.Now().UnixNano()
	ids := map[string]bool{}
	for i := range 3 {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i)}
		err := producer.ProduceSync(ctx, r).FirstErr()
		if !errors.Is(err, kerr.InvalidRecord) {
			t.Fatalf("produce to failing broker: %v, want INVALID_RECORD", err)
		}
		id, _ := header(r, audit.CorrelationHeader)
		ids[id] = true
	}

	for _, ev := range auditEvents(t, auditC, em, 3) {
		if ev.Kind != codecs.KindProduce || !ids[ev.CorrelationID] {
			t.Errorf("unexpected event %+v", ev)
		}
		delete(ids, ev.CorrelationID)
		if !strings.Contains(ev.Error, "INVALID_RECORD") || ev.AckNs != 0 || ev.Offset != -1 || ev.SendNs < before {
			t.Errorf("failed produce event: error %q ack %d offset %d send %d", ev.Error, ev.AckNs, ev.Offset, ev.SendNs)
		}
		if ev.ClientID != "kgo" { // franz-go's default client.id
			t.Errorf("client ID %q, want franz-go's default kgo", ev.ClientID)
		}
	}
	if s := hooks.Stats(); s.Produced != 3 {
		t.Errorf("hooks %+v, want 3 produced", s)
	}
}

// TestDeadAuditClusterDoesNotBlock audits a producer with an emitter whose
// cluster is unreachable and whose queue is tiny: the application's
// produces all succeed, promptly, and the lost audit events are counted.
func TestDeadAuditClusterDoesNotBlock(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 3)
	em, err := emitter.New(emitter.Config{
		Brokers:    []string{"127.0.0.1:1"}, // nothing listens on port 1
		ClientOpts: []kgo.Opt{kgo.MaxBufferedRecords(1)},
		QueueSize:  2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = em.Close(ctx)
	}()
	hooks := kgoaudit.New(em)
	producer := kafkatest.Client(t, app, kgo.DefaultProduceTopic("orders"), kgo.WithHooks(hooks))

	const n = 5000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var failed atomic.Int64
	start := time.Now()
	for i := range n {
		producer.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if failed.Load() != 0 {
		t.Fatalf("%d application produces failed", failed.Load())
	}
	hs, es := hooks.Stats(), em.Stats()
	t.Logf("%d records in %v; hooks %+v; emitter %+v", n, took, hs, es)
	if hs.Produced+hs.Rejected != n || hs.Rejected != es.Dropped || hs.Produced != es.Enqueued {
		t.Fatalf("hooks %+v and emitter %+v do not account for %d records", hs, es, n)
	}
	// Queue (2) + the worker's hand (1) + client buffer (1).
	if hs.Produced > 4 {
		t.Fatalf("%d events accepted by a dead emitter with 4 slots", hs.Produced)
	}
	if took > 10*time.Second {
		t.Fatalf("producing %d records took %v with a dead audit cluster", n, took)
	}
}

// TestAuditTopicIsNotAudited: records to the emitter's own topic get
// neither a header nor an event, so an audit client cannot loop.
func TestAuditTopicIsNotAudited(t *testing.T) {
	auditC, em := auditCluster(t)
	hooks := kgoaudit.New(em)
	cl := kafkatest.Client(t, auditC, kgo.WithHooks(hooks))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: em.Topic(), Value: []byte("x")}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, n := header(r, audit.CorrelationHeader); n != 0 {
		t.Errorf("audit record got %d correlation headers", n)
	}
	if s := hooks.Stats(); s != (kgoaudit.Stats{}) {
		t.Errorf("hooks %+v, want nothing counted", s)
	}
	if s := em.Stats(); s.Enqueued != 0 {
		t.Errorf("emitter %+v, want nothing enqueued", s)
	}
}

type panicky struct{}

func (panicky) Emit(*codecs.Event) bool { panic("boom") }

// TestPanickingEmitterIsContained: a panic below the hooks is recovered
// and counted; the application's produce and consume go on.
func TestPanickingEmitterIsContained(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "t", 1)
	hooks := kgoaudit.New(panicky{})
	cl := kafkatest.Client(t, app,
		kgo.DefaultProduceTopic("t"),
		kgo.ConsumerGroup("g"),
		kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(hooks),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []*kgo.Record
	for len(got) == 0 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	if len(got) != 1 || string(got[0].Value) != "v" {
		t.Fatalf("consumed %v", got)
	}
	if s := hooks.Stats(); s.Panics != 2 {
		t.Fatalf("hooks %+v, want 2 panics (one produce, one consume event)", s)
	}
}

// TestGroupLessConsumer: without a group nothing is audited unless
// WithGroup names the consumer.
func TestGroupLessConsumer(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "t", 1)
	auditC, em := auditCluster(t)
	producer := kafkatest.Client(t, app, kgo.DefaultProduceTopic("t"), kgo.WithHooks(kgoaudit.New(em)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]kgoaudit.Opt{nil, {kgoaudit.WithGroup("direct-reader")}} {
		hooks := kgoaudit.New(em, opts...)
		cl := kafkatest.Client(t, app, kgo.ConsumeTopics("t"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hooks))
		for n := 0; n == 0 && ctx.Err() == nil; {
			n = len(cl.PollFetches(ctx).Records())
		}
		want := kgoaudit.Stats{Ungrouped: 1}
		if opts != nil {
			want = kgoaudit.Stats{Consumed: 1}
		}
		if s := hooks.Stats(); s != want {
			t.Errorf("WithGroup %v: hooks %+v, want %+v", opts != nil, s, want)
		}
	}
	evs := auditEvents(t, auditC, em, 2)
	groups := map[string]int{}
	for _, ev := range evs {
		groups[ev.Kind.String()+"/"+ev.Group]++
	}
	if groups["produce/"] != 1 || groups["consume/direct-reader"] != 1 {
		t.Errorf("events by kind/group: %v", groups)
	}
}

// TestShareGroupConsumer: a share-group consumer is audited under its
// share group's name.
func TestShareGroupConsumer(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "t", 1)
	auditC, em := auditCluster(t)
	producer := kafkatest.Client(t, app, kgo.DefaultProduceTopic("t"), kgo.WithHooks(kgoaudit.New(em)))
	hooks := kgoaudit.New(em)
	consumer := kafkatest.Client(t, app, kgo.ShareGroup("shared"), kgo.ConsumeTopics("t"), kgo.WithHooks(hooks))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got int
	for got == 0 && ctx.Err() == nil {
		// Produce until the share group (which starts at the latest
		// offset) has joined and hands a record out.
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		got = len(consumer.PollFetches(pctx).Records())
		pcancel()
	}
	if got == 0 {
		t.Fatal("share group consumer read nothing")
	}
	consumer.Close()
	if s := hooks.Stats(); s.Consumed != uint64(got) || s.Ungrouped != 0 {
		t.Fatalf("hooks %+v after %d records polled", s, got)
	}
	produced := int(em.Stats().Enqueued) - got
	consumes := 0
	for _, ev := range auditEvents(t, auditC, em, produced+got) {
		if ev.Kind == codecs.KindConsume {
			consumes++
			if ev.Group != "shared" {
				t.Errorf("consume event group %q, want shared", ev.Group)
			}
		}
	}
	if consumes != got {
		t.Errorf("%d consume events for %d records", consumes, got)
	}
}

// TestSharedHeaderSliceIsNotWritten produces records concurrently from
// several goroutines that all share one header slice (with spare capacity,
// with an application header, with an empty correlation_id to be filled
// in): the hooks must not write into the application's slice, every record
// must get its own correlation ID, and (under -race) no race is reported.
func TestSharedHeaderSliceIsNotWritten(t *testing.T) {
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "shared", 3)
	_, em := auditCluster(t)
	producer := kafkatest.Client(t, app, kgo.DefaultProduceTopic("shared"), kgo.WithHooks(kgoaudit.New(em)))

	empty := make([]kgo.RecordHeader, 0, 4)
	withApp := append(make([]kgo.RecordHeader, 0, 4), kgo.RecordHeader{Key: "app", Value: []byte("shop")})
	withEmptyID := append(make([]kgo.RecordHeader, 0, 4),
		kgo.RecordHeader{Key: audit.CorrelationHeader}, kgo.RecordHeader{Key: "app", Value: []byte("shop")})
	shared := [][]kgo.RecordHeader{empty, withApp, withEmptyID}
	before := make([][]kgo.RecordHeader, len(shared))
	for i, hs := range shared {
		before[i] = append([]kgo.RecordHeader(nil), hs[:cap(hs)]...)
	}

	const goroutines, each = 6, 200
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := &kgo.Record{Value: fmt.Appendf(nil, "%d-%d", g, i), Headers: shared[(g+i)%len(shared)]}
				producer.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
					}
				})
			}
		}()
	}
	wg.Wait()
	if err := producer.Flush(ctx); err != nil || failed.Load() > 0 {
		t.Fatalf("flush: %v, %d failed", err, failed.Load())
	}
	for i, hs := range shared {
		if got := hs[:cap(hs)]; fmt.Sprint(got) != fmt.Sprint(before[i]) {
			t.Errorf("shared header slice %d changed:\n got %v\nwant %v", i, got, before[i])
		}
	}
	ids := map[string]bool{}
	for _, r := range kafkatest.Consume(t, app, "shared", goroutines*each, 20*time.Second) {
		id, n := header(r, audit.CorrelationHeader)
		if n != 1 || len(id) != 36 {
			t.Fatalf("record %s: %d correlation headers, first %q", r.Value, n, id)
		}
		if ids[id] {
			t.Fatalf("correlation ID %s on two records", id)
		}
		ids[id] = true
		if app, _ := header(r, "app"); app != "shop" && len(r.Headers) > 1 {
			t.Errorf("record %s lost its app header: %v", r.Value, r.Headers)
		}
	}
	if len(ids) != goroutines*each {
		t.Fatalf("%d distinct correlation IDs for %d records", len(ids), goroutines*each)
	}
}

// pauseProduce makes c hold every produce request until the returned
// resume is called (at the latest when the test ends).
func pauseProduce(t *testing.T, c *kfake.Cluster) (resume func()) {
	t.Helper()
	release := make(chan struct{})
	var once sync.Once
	resume = func() { once.Do(func() { close(release) }) }
	t.Cleanup(resume)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	return resume
}

// TestConsumeDropsAreReported consumes 2000 records with an emitter whose
// queue is tiny while the audit broker stalls: most consume events are
// dropped, and once the broker is back the drop reports in the audit
// topic cover exactly the polled records whose consume event is missing,
// under the consumer's client ID, topic and group.
func TestConsumeDropsAreReported(t *testing.T) {
	const n = 2000
	app := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, app, "orders", 3)
	auditC := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, auditC, audit.DefaultEventsTopic, 3)
	resume := pauseProduce(t, auditC)
	em, err := emitter.New(emitter.Config{Brokers: auditC.ListenAddrs(), QueueSize: 8,
		ClientOpts: []kgo.Opt{kgo.MaxBufferedRecords(16)}})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	plain := kafkatest.Client(t, app, kgo.DefaultProduceTopic("orders"))
	for i := range n {
		plain.Produce(ctx, &kgo.Record{Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: audit.CorrelationHeader, Value: fmt.Appendf(nil, "id-%d", i)}}}, nil)
	}
	if err := plain.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	clk := new(fakeClock)
	hooks := kgoaudit.New(em, kgoaudit.WithClock(clk.Now))
	consumer := kafkatest.Client(t, app, kgo.ClientID("billing-1"), kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hooks))
	polled := map[string]bool{}
	for len(polled) < n {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("polled %d of %d", len(polled), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			id, _ := header(r, audit.CorrelationHeader)
			polled[id] = true
		})
	}
	consumer.Close()
	resume()
	if err := em.Close(ctx); err != nil {
		t.Fatal(err)
	}

	arrived, dropped := 0, 0
	for _, r := range kafkatest.Consume(t, auditC, audit.DefaultEventsTopic, 1<<30, 2*time.Second) {
		ev, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case codecs.KindConsume:
			if !polled[ev.CorrelationID] {
				t.Errorf("consume event for %q, which was not polled", ev.CorrelationID)
			}
			arrived++
		case codecs.KindDrops:
			if ev.ClientID != "billing-1" || ev.Topic != "orders" || ev.Group != "billing" || ev.DroppedKind != codecs.KindConsume ||
				ev.Source != kgoaudit.Source || ev.WindowStartNs <= clockStart.UnixNano() || ev.WindowEndNs > clk.Now().UnixNano() {
				t.Errorf("drop report %+v", ev)
			}
			dropped += int(ev.Dropped)
		default:
			t.Errorf("event %+v", ev)
		}
	}
	t.Logf("%d polled: %d consume events arrived, %d reported dropped; hooks %+v", n, arrived, dropped, hooks.Stats())
	if arrived+dropped != n || dropped < n/2 {
		t.Fatalf("%d consume events + %d reported drops for %d polled records", arrived, dropped, n)
	}
}
