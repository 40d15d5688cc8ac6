package emitter_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
)

func Example() {
	auditCluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, audit.DefaultEventsTopic))
	defer auditCluster.Close()

	em, err := emitter.New(emitter.Config{Brokers: auditCluster.ListenAddrs()})
	if err != nil {
		panic(err)
	}
	em.Emit(&codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindProduce,
		CorrelationID: "5f0c3a52-8c1e-4d5b-9a57-0e1c2b3d4f5a",
		Topic:         "orders",
		SendNs:        time.Now().UnixNano(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		panic(err)
	}
	s := em.Stats()
	fmt.Println("sent", s.Sent, "dropped", s.Dropped, "failed", s.Failed)
	// Output: sent 1 dropped 0 failed 0
}
