package saramaaudit_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/saramaaudit"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// BenchmarkAsyncProducer produces 100-byte messages through sarama's async
// producer to an in-process broker, plain and audited (events to a second
// in-process broker), reading every success.
func BenchmarkAsyncProducer(b *testing.B) {
	value := make([]byte, 100)
	for _, audited := range []bool{false, true} {
		name := "plain"
		if audited {
			name = "audited"
		}
		b.Run(name, func(b *testing.B) {
			app := kafkatest.NewCluster(b)
			kafkatest.CreateTopic(b, app, "orders", 3)
			cfg := sarama.NewConfig()
			cfg.Version = sarama.V2_1_0_0
			cfg.Producer.Return.Successes = true
			cfg.Producer.Flush.Frequency = time.Millisecond
			var p sarama.AsyncProducer
			var em *emitter.Emitter
			var err error
			if audited {
				ac := kafkatest.NewCluster(b)
				kafkatest.CreateTopic(b, ac, audit.DefaultEventsTopic, 3)
				if em, err = emitter.New(emitter.Config{Brokers: ac.ListenAddrs()}); err != nil {
					b.Fatal(err)
				}
				p, err = saramaaudit.NewAsyncProducer(em, app.ListenAddrs(), cfg)
			} else {
				p, err = sarama.NewAsyncProducer(app.ListenAddrs(), cfg)
			}
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range b.N {
					select {
					case <-p.Successes():
					case e := <-p.Errors():
						b.Error(e)
						return
					}
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p.Input() <- &sarama.ProducerMessage{Topic: "orders", Value: sarama.ByteEncoder(value)}
			}
			<-done
			b.StopTimer()
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if em != nil {
				if err := em.Close(context.Background()); err != nil {
					b.Fatal(err)
				}
				if s := em.Stats(); s.Sent != uint64(b.N) {
					b.Fatalf("emitter %+v, want %d sent", s, b.N)
				}
			}
		})
	}
}
