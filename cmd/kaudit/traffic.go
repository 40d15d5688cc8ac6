package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/internal/app/traffic"
	"github.com/kaudit/kaudit/internal/cli"
)

type trafficCmd struct {
	cli.Kafka      `embed:""`
	cli.AuditKafka `embed:""`
	cli.Log        `embed:""`

	AuditTopic string        `help:"Audit events topic." env:"KAUDIT_EVENTS_TOPIC" default:"${events_topic}"`
	Topic      string        `help:"Topic to produce to and consume from." env:"KAUDIT_DEMO_TOPIC" default:"demo.orders"`
	Rate       int           `help:"Messages per second." env:"KAUDIT_DEMO_RATE" default:"100"`
	Count      int           `help:"Stop producing after this many messages (0: never)." env:"KAUDIT_DEMO_COUNT" default:"0"`
	Groups     []string      `help:"Consumer groups; name:poll-interval makes a slow one." env:"KAUDIT_DEMO_GROUPS" default:"billing,analytics:1s" sep:","`
	Duration   time.Duration `help:"Stop after this long (0: until interrupted)." env:"DURATION"`
}

func (c *trafficCmd) Run() error {
	log := c.Logger(os.Stderr)
	ctx, cancel := cli.RunContext(c.Duration)
	defer cancel()
	opts, err := c.ClientOpts()
	if err != nil {
		return err
	}
	auditBrokers, auditOpts, err := c.Audit(&c.Kafka)
	if err != nil {
		return err
	}
	em, err := emitter.New(emitter.Config{Brokers: auditBrokers, ClientOpts: auditOpts, Topic: c.AuditTopic, Logger: log})
	if err != nil {
		return err
	}
	var groups []traffic.Group
	for _, g := range c.Groups {
		name, every, _ := strings.Cut(g, ":")
		grp := traffic.Group{Name: name}
		if every != "" {
			if grp.PollEvery, err = time.ParseDuration(every); err != nil {
				return fmt.Errorf("group %q: %w", g, err)
			}
		}
		groups = append(groups, grp)
	}
	tr, err := traffic.New(traffic.Config{
		Brokers: c.Brokers, ClientOpts: opts, Emitter: em, Topic: c.Topic,
		Rate: c.Rate, Count: c.Count, Groups: groups, Logger: log,
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tr.Produce(gctx) })
	for _, grp := range groups {
		g.Go(func() error { return tr.Consume(gctx, grp) })
	}
	log.Info("kaudit traffic running", "topic", c.Topic, "rate", c.Rate, "groups", c.Groups)
	err = g.Wait()
	cctx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	_ = em.Close(cctx)
	log.Info("kaudit traffic stopped", "produced", tr.Produced(), "failed", tr.Failed(), "audit", em.Stats())
	return err
}
