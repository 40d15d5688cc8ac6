package kafkatest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

func TestRoundTrip(t *testing.T) {
	c := kafkatest.NewCluster(t)
	if n := len(c.ListenAddrs()); n != 1 {
		t.Fatalf("%d brokers, want 1", n)
	}
	kafkatest.CreateTopic(t, c, "t", 3)

	cl := kafkatest.Client(t, c, kgo.DefaultProduceTopic("t"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts := map[int32]bool{}
	for i := range 30 {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		parts[r.Partition] = true
	}
	if len(parts) != 3 {
		t.Errorf("records went to partitions %v, want 3 partitions", parts)
	}
	// Asking for one more than exists returns what exists at the timeout.
	if got := len(kafkatest.Consume(t, c, "t", 31, time.Second)); got != 30 {
		t.Fatalf("consumed %d records, want 30", got)
	}
}
