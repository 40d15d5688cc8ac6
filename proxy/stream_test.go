package proxy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/proxy"
)

// TestLargeProduce sends Produce requests far above the cut-through size,
// with acks=all and acks=0, and a client that breaks off in the middle of
// one: what was sent whole arrives whole and is counted; the broken one
// closes only its own connection.
func TestLargeProduce(t *testing.T) {
	itest.Integration(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "big", "big0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sink := newTrafficSink()
	logs := &itest.SyncBuffer{}
	r := start(t, proxy.Config{Upstream: c.ListenAddrs(), Observers: []proxy.Observer{sink.agg}, Logger: testLoggerTo(logs)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	value := bytes.Repeat([]byte("v"), 50_000)
	for _, tc := range []struct {
		topic string
		opts  []kgo.Opt
	}{
		{"big", nil},
		{"big0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.p.Addr()), kgo.DefaultProduceTopic(tc.topic),
			kgo.ProducerLinger(50 * time.Millisecond)}, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			cl.Produce(ctx, &kgo.Record{Value: value, Key: []byte{byte(i)}}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("%s: %v", tc.topic, err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}

	// A client that stops inside a large Produce request.
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks = -1
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "big"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = make([]byte, 300_000)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	frame := req.AppendTo(header(0, 7, 1, "breaker"))
	conn, err := net.Dial("tcp", r.p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(binary.BigEndian.AppendUint32(nil, uint32(len(frame))))
	conn.Write(frame[:150_000])
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "inside a frame (") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the broken request:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	for _, topic := range []string{"big", "big0"} {
		got := 0
		cons, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(50<<20))
		for got < 40 {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: broker has %d of 40 records", topic, got)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if !bytes.Equal(r.Value, value) {
					t.Errorf("%s: a record of %d bytes arrived altered", topic, len(r.Value))
				}
				got++
			})
		}
		cons.Close()
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	produced := sink.produced(t)
	for _, topic := range []string{"big", "big0"} {
		if n := produced[[2]string{proxy.Anonymous, topic}]; n != 40 {
			t.Errorf("observer: %d records produced to %s, want 40", n, topic)
		}
	}
}
