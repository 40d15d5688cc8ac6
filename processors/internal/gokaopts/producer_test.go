package gokaopts

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const partitions = 6

func newProducer(t *testing.T, c *kfake.Cluster) goka.Producer {
	t.Helper()
	p, err := ProducerBuilder(nil)(c.ListenAddrs(), "test", goka.DefaultHasher())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll returns every record of topic, by partition, in offset order.
func readAll(t *testing.T, c *kfake.Cluster, topic string) map[int32][]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]*kgo.Record{}
	idle := 0
	for idle < 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out[r.Partition] = append(out[r.Partition], r); n++ })
		if n == 0 {
			idle++
		}
	}
	return out
}

// saramaPartition is where sarama's hash partitioner with goka's default
// hasher puts key: where goka expects a table key to be.
func saramaPartition(t *testing.T, key string) int32 {
	t.Helper()
	p := sarama.NewCustomHashPartitioner(fnv.New32a)("")
	n, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every write lands, in order, in the partition sarama's hash partitioner
// would have chosen (the table stays co-partitioned with its input); each
// promise carries the offset of its own record, and the promises of one
// partition finish in the order of their emits.
func TestProducerWritesWhereGokaExpects(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "g-table"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newProducer(t, c)
	const n = 3000
	var mu sync.Mutex
	finished := map[int32][]int{}
	msgs := make([]*sarama.ProducerMessage, n)
	var wg sync.WaitGroup
	for i := range n {
		key := testKey(i)
		var value []byte // every tenth write a delete (a tombstone)
		if i%10 != 0 {
			value = fmt.Appendf(nil, "v%d", i)
		}
		wg.Add(1)
		p.Emit("g-table", key, value).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("emit %d: %v", i, err)
				return
			}
			mu.Lock()
			finished[msg.Partition] = append(finished[msg.Partition], i)
			msgs[i] = msg
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for part, order := range finished {
		if !slices.IsSorted(order) {
			t.Errorf("partition %d: promises finished out of emit order", part)
		}
	}
	table := readAll(t, c, "g-table")
	byOffset := map[[2]int64]*kgo.Record{}
	total := 0
	for part, recs := range table {
		for _, r := range recs {
			byOffset[[2]int64{int64(part), r.Offset}] = r
			total++
			if want := saramaPartition(t, string(r.Key)); part != want {
				t.Errorf("key %s in partition %d, sarama's is %d", r.Key, part, want)
			}
		}
	}
	if total != n {
		t.Fatalf("%d records written, want %d", total, n)
	}
	for i, m := range msgs {
		if m == nil {
			continue
		}
		r := byOffset[[2]int64{int64(m.Partition), m.Offset}]
		want := fmt.Sprintf("v%d", i)
		if i%10 == 0 {
			want = ""
		}
		if r == nil || string(r.Key) != testKey(i) || r.Key == nil || string(r.Value) != want || (i%10 == 0) != (r.Value == nil) {
			t.Fatalf("emit %d: its promise's offset %d/%d holds %v", i, m.Partition, m.Offset, r)
		}
	}
}

// testKey is the key of the i-th emit: every 100th the empty key, which is
// hashed like any other (a null key would be partitioned at random).
func testKey(i int) string {
	if i%100 == 99 {
		return ""
	}
	return fmt.Sprintf("k%d", i%500)
}

// A write the cluster refuses fails its promise with the reason (goka
// then stops the partition) instead of hanging.
func TestProducerFailsRefusedWrites(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "g-table"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "1024"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newProducer(t, c)
	defer p.Close()
	done := make(chan error, 1)
	big := make([]byte, 4096) // random: LZ4 cannot shrink it below the limit
	for i := range big {
		big[i] = byte(rand.Uint32())
	}
	p.Emit("g-table", "k", big).Then(func(err error) { done <- err })
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a record larger than the broker takes was acknowledged")
		}
		t.Logf("refused: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("a refused write neither failed nor finished in 30 s")
	}
}
