// Package kafkatest holds small helpers for tests that need a real
// Kafka-protocol broker: an in-process kfake cluster, clients pointing at
// it, topic creation and a bounded read of a topic.
//
// Everything registers its own cleanup with t.Cleanup, so a test only says
// what it needs:
//
//	c := kafkatest.NewCluster(t)
//	kafkatest.CreateTopic(t, c, "orders", 3)
//	cl := kafkatest.Client(t, c, kgo.DefaultProduceTopic("orders"))
//	// ... produce with cl ...
//	recs := kafkatest.Consume(t, c, "orders", 10, 10*time.Second)
package kafkatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// NewCluster starts a one-broker kfake cluster on a free loopback port and
// closes it when the test ends. opts are applied after NumBrokers(1), so
// they may override it (kfake.Ports also sets the broker count).
func NewCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	all := append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Client returns a franz-go client seeded with c's brokers and configured
// with opts; it is closed when the test ends (before the cluster, since
// cleanups run last-registered first).
func Client(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic name with the given number of partitions on c
// and fails the test if the broker refuses (an existing topic is fine only
// if it was created by an earlier call; kfake reports TOPIC_ALREADY_EXISTS,
// which fails the test so that partition counts never silently differ).
func CreateTopic(t testing.TB, c *kfake.Cluster, name string, partitions int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatalf("kafkatest: new admin client: %v", err)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = name
	rt.NumPartitions = int32(partitions)
	rt.ReplicationFactor = 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000

	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("kafkatest: create topic %q: %v", name, err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("kafkatest: create topic %q: %d topics in response", name, len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("kafkatest: create topic %q: %v", name, err)
	}
}

// Consume reads topic from the start with a fresh group-less client until
// it has n records or timeout passes, and returns what it read. It fails the
// test on a fetch error; on timeout it returns the records read so far (the
// caller asserts on the count), so a test can also check that no more than
// n records exist by asking for n+1 with a short timeout.
func Consume(t testing.TB, c *kfake.Cluster, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("kafkatest: new consumer: %v", err)
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, err)
			}
		})
		if ferr != nil {
			t.Fatalf("kafkatest: consume %q: %v", topic, ferr)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
