// Package gokaopts builds the goka processor options kaudit's processors
// (the correlator and the learner) share, so they cannot drift apart: the
// sarama settings (inputs read from the oldest offset), the producer
// (franz-go: durable and idempotent), the topic manager's replication,
// local storage, the slog adapter for goka's logs and the client ID; and
// Clients, which closes the sarama clients goka leaves open in the views
// of a processor's lookup tables.
//
//	opts := gokaopts.Options(gokaopts.Config{Base: sar, StorageDir: dir, Replication: 3, ClientID: group, Logger: log})
//	proc, err := goka.NewProcessor(brokers, graph, opts...)
package gokaopts

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is what differs between the processors.
type Config struct {
	// Base is the client configuration (TLS, SASL, version); nil means
	// goka.DefaultConfig(). It is copied, never modified.
	Base *sarama.Config
	// ClientOpts are the same cluster's franz-go options (TLS, SASL), for
	// the producer (ProducerBuilder).
	ClientOpts []kgo.Opt
	// StorageDir holds the local copies of the processor's tables.
	StorageDir string
	// Replication of the topics goka creates (group table, loop).
	Replication int
	// ClientID names the processor's clients.
	ClientID string
	Logger   *slog.Logger
	// Clients, when set, keeps the consumers and topic managers built for
	// the processor and its lookup views, for the caller to close after
	// Run (goka leaves the views' open).
	Clients *Clients
}

// Sarama returns a fresh copy of the base configuration with the settings
// every kaudit processor needs:
//   - inputs are read from the oldest offset when the group has none (an
//     audit event is never skipped because the processor started late);
//   - producers wait for all in-sync replicas and are idempotent, so an
//     acknowledged verdict or table write survives a leader failover and a
//     retry never duplicates it;
//   - errors and successes are returned (goka needs both).
func Sarama(base *sarama.Config) *sarama.Config {
	var c sarama.Config
	if base != nil {
		c = *base
	} else {
		c = *goka.DefaultConfig()
	}
	if !c.Version.IsAtLeast(sarama.V0_11_0_0) {
		c.Version = sarama.V2_0_0_0
	}
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Consumer.Group.Rebalance.Strategy = goka.CopartitioningStrategy
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	if c.Producer.Retry.Max < 1 {
		c.Producer.Retry.Max = 10
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	// Snappy, goka's default: as small as LZ4 on audit records and
	// cheaper to write (see ProducerBuilder).
	c.Producer.Compression = sarama.CompressionSnappy
	return &c
}

// TopicManager returns the topic manager settings for replication.
func TopicManager(replication int) *goka.TopicManagerConfig {
	tm := goka.NewTopicManagerConfig()
	if replication > 0 {
		tm.Table.Replication = replication
		tm.Stream.Replication = replication
	}
	return tm
}

// Options returns the processor options for cfg; tests append
// goka.WithTester.
func Options(cfg Config) []goka.ProcessorOption {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc := Sarama(cfg.Base)
	clients := []goka.ProcessorOption{ // the consumer and topic manager builders
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, TopicManager(cfg.Replication))),
	}
	if cfg.Clients != nil {
		clients = cfg.Clients.Options(sc, TopicManager(cfg.Replication))
	}
	return append([]goka.ProcessorOption{
		goka.WithStorageBuilder(storage.DefaultBuilder(cfg.StorageDir)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithProducerBuilder(ProducerBuilder(cfg.ClientOpts)),
		goka.WithLogger(Logger{L: log}),
		goka.WithClientID(cfg.ClientID),
		goka.WithPartitionChannelSize(PartitionChannel),
	}, clients...)
}

// PartitionChannel is how many input messages goka queues for each
// partition's processing goroutine. goka's default, 10, hands the
// consuming and the processing goroutine each message in turn, waking
// them up every few messages; with 1024 the correlator used 9 % less CPU
// per event (BenchmarkCorrelatorScale, three alternated runs). A stop or
// rebalance leaves what is queued either processed or, not committed,
// read again.
const PartitionChannel = 1024

// Logger adapts slog to goka's logger. goka logs failures (a processor
// error, a failed commit or emit, a partition that stopped) and routine
// state changes through the same Printf, so the text decides the level:
// a message that mentions an error, a failure or a panic is logged at Warn,
// everything else at Debug; every line has component=goka.
type Logger struct{ L *slog.Logger }

func (g Logger) Print(v ...any)                 { g.log(fmt.Sprint(v...)) }
func (g Logger) Println(v ...any)               { g.log(fmt.Sprint(v...)) }
func (g Logger) Printf(format string, v ...any) { g.log(fmt.Sprintf(format, v...)) }

func (g Logger) log(msg string) {
	level := slog.LevelDebug
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "error") || strings.Contains(lower, "fail") || strings.Contains(lower, "panic") {
		level = slog.LevelWarn
	}
	g.L.Log(context.Background(), level, msg, "component", "goka")
}
