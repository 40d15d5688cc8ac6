package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/internal/devbroker"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// protectedTopic is the topic whose deletion the demo broker refuses.
const protectedTopic = "demo.protected"

// startProxy puts kaudit-proxy in front of the embedded broker: the demo's
// producers and consumer groups go through it (the audit emitter and the
// pipeline talk to the broker directly). Its kafka auditor writes the
// audit and traffic topics the pipeline's sink stores, so the dashboard's
// Clients and Admin audit pages fill. It returns the proxy's bootstrap
// address and a stop function.
func startProxy(ctx context.Context, out io.Writer, broker *devbroker.Broker, log *slog.Logger) (string, func(), error) {
	k, err := auditors.NewKafka(ctx, auditors.KafkaConfig{
		ClientOpts:   []kgo.Opt{kgo.SeedBrokers(broker.Addr())},
		TrafficTopic: auditors.DefaultTrafficTopic, Logger: log,
	})
	if err != nil {
		return "", nil, err
	}
	agg := traffic.New(traffic.Config{Interval: 10 * time.Second, Writers: []traffic.Writer{k}, Proxy: "demo", Logger: log})
	p, err := proxy.New(proxy.Config{
		Upstream: []string{broker.Addr()}, Listen: "127.0.0.1:0", AdvertisedHost: "127.0.0.1",
		Discover: true, Auditors: []proxy.Auditor{k}, Observers: []proxy.Observer{agg}, Name: "demo", Logger: log,
	})
	if err != nil {
		return "", nil, err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	fmt.Fprintf(out, "proxy:      kaudit-proxy at %s in front of the broker (audit to %s and %s)\n", p.Addr(),
		auditors.DefaultAdminTopic, auditors.DefaultTrafficTopic)
	return p.Addr(), func() {
		cancel()
		if err := <-done; err != nil {
			log.Warn("demo: proxy", "err", err)
		}
	}, nil
}

// adminOps runs a few admin operations through the proxy, as an operator
// would: it creates a topic and adds partitions to it, changes its
// retention, and tries to delete a protected topic. The demo broker has no
// ACLs; it refuses that deletion with TOPIC_AUTHORIZATION_FAILED, as a
// broker with ACLs would, so the Admin audit page shows one denied
// operation.
func adminOps(ctx context.Context, out io.Writer, broker *devbroker.Broker, proxyAddr string) error {
	broker.Cluster().ControlKey(int16(kmsg.DeleteTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		broker.Cluster().KeepControl()
		r := req.(*kmsg.DeleteTopicsRequest)
		resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
		refused := false
		for _, t := range r.Topics {
			if t.Topic != nil && *t.Topic == protectedTopic {
				refused = true
			}
		}
		for _, n := range r.TopicNames {
			refused = refused || n == protectedTopic
		}
		if !refused {
			return nil, nil, false
		}
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = kmsg.StringPtr(protectedTopic)
		st.ErrorCode = kerr.TopicAuthorizationFailed.Code
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(proxyAddr), kgo.ClientID("demo-admin"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	const topic = "demo.admin-made"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("demo: create %s: %w", topic, err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, protectedTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("demo: create %s: %w", protectedTopic, err)
	}
	if _, err := adm.UpdatePartitions(ctx, 2, topic); err != nil {
		return fmt.Errorf("demo: partitions of %s: %w", topic, err)
	}
	retention := "86400000"
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &retention}}, topic); err != nil {
		return fmt.Errorf("demo: configs of %s: %w", topic, err)
	}
	r, err := adm.DeleteTopic(ctx, protectedTopic)
	if err == nil {
		err = r.Err
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		return fmt.Errorf("demo: deleting %s: got %v, want it refused", protectedTopic, err)
	}
	fmt.Fprintf(out, "admin:      created %s, added a partition, set its retention; deleting %s was refused (see Admin audit)\n", topic, protectedTopic)
	return nil
}
