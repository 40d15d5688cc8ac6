package emitter_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// BenchmarkEmitter is the sustained cost per event of the whole emitter
// pipeline (enqueue, encode, produce to a kfake broker, acknowledgement):
// EnqueueTimeout makes Emit wait for room, so nothing is dropped and the
// rate is the sender's. cpu-ns/event is the CPU time of the whole process
// (the broker's included) per event.
func BenchmarkEmitter(b *testing.B) {
	c := kafkatest.NewCluster(b)
	kafkatest.CreateTopic(b, c, audit.DefaultEventsTopic, 3)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), EnqueueTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ev := event(1) // read-only for the emitter, so one event can be sent many times
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if !em.Emit(ev) {
			b.Fatal("Emit refused")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
	if s := em.Stats(); s.Dropped != 0 || s.Failed != 0 || s.Sent != s.Enqueued {
		b.Fatalf("stats %+v", s)
	}
}

// processCPU is the user+system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
