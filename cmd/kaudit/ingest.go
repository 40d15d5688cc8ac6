package main

import (
	"fmt"
	"os"
	"time"
	_ "time/tzdata" // --timezone works without the system's zoneinfo

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/sinks/kafka"
)

type ingestCmd struct {
	cli.Kafka      `embed:""`
	cli.AuditKafka `embed:""`
	cli.Log        `embed:""`

	From       string        `help:"Foreign audit topic to read (the librdkafka interceptors' audit.topic)." env:"KAUDIT_INGEST_FROM" required:""`
	Format     string        `help:"Format of its records: interceptor-json (the librdkafka interceptors' JSON; blog-json is its former name) or kaudit (kaudit events, binary or JSON)." env:"KAUDIT_INGEST_FORMAT" default:"interceptor-json" enum:"interceptor-json,blog-json,kaudit"`
	Group      string        `help:"Consumer group of the ingest; offsets are committed once the events are written. A new group starts at the oldest record." env:"KAUDIT_INGEST_GROUP" default:"kaudit-ingest"`
	Timezone   string        `help:"Time zone of interceptor-json timestamps (the writers' local time, e.g. Europe/Berlin). Their resolution is 1s." aliases:"blog-timezone" env:"KAUDIT_INGEST_TIMEZONE,KAUDIT_BLOG_TIMEZONE" default:"UTC"`
	AuditTopic string        `help:"Audit events topic to write." env:"KAUDIT_EVENTS_TOPIC" default:"${events_topic}"`
	DLQTopic   string        `name:"dlq-topic" help:"Dead-letter topic (on the audit cluster) for records that cannot be decoded." env:"KAUDIT_DLQ_TOPIC" default:"${dlq_topic}"`
	Duration   time.Duration `help:"Stop after this long (0: until interrupted)." env:"DURATION"`
}

func (c *ingestCmd) Run() error {
	log := c.Logger(os.Stderr)
	ctx, cancel := cli.RunContext(c.Duration)
	defer cancel()
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return fmt.Errorf("--timezone: %w", err)
	}
	opts, err := c.ClientOpts()
	if err != nil {
		return err
	}
	auditBrokers, auditOpts, err := c.Audit(&c.Kafka)
	if err != nil {
		return err
	}
	in, err := kafka.NewIngest(kafka.IngestConfig{
		Brokers:         c.Brokers,
		ClientOpts:      opts,
		Topic:           c.From,
		Group:           c.Group,
		Format:          c.Format,
		Location:        loc,
		AuditBrokers:    auditBrokers,
		AuditClientOpts: auditOpts,
		EventsTopic:     c.AuditTopic,
		DLQTopic:        c.DLQTopic,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	log.Info("kaudit ingest started", "from", c.From, "group", c.Group, "events_topic", c.AuditTopic, "audit_brokers", auditBrokers)
	err = in.Run(ctx)
	log.Info("kaudit ingest stopped", "stats", in.Stats(), "sink", in.Sink.Stats())
	return err
}
