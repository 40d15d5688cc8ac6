package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// runCLI runs kaudit with args as a user types them, in this process.
func runCLI(t *testing.T, args ...string) error {
	t.Helper()
	var a app
	parser, err := kong.New(&a, cli.Vars(), kong.Name("kaudit"), kong.Exit(func(int) { t.Fatalf("kaudit %v exited", args) }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return err
	}
	return kctx.Run()
}

// saslCluster is a kfake cluster requiring SASL PLAIN, which records every
// username and password offered to it.
type saslCluster struct {
	*kfake.Cluster
	mu     sync.Mutex
	offers []string // "user:password"
}

func newSASLCluster(t *testing.T, user, pass string, topics ...string) *saslCluster {
	c := &saslCluster{Cluster: kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", user, pass), kfake.SeedTopics(3, topics...))}
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		// PLAIN: authzid NUL user NUL password.
		parts := strings.Split(string(kreq.(*kmsg.SASLAuthenticateRequest).SASLAuthBytes), "\x00")
		if len(parts) == 3 {
			c.mu.Lock()
			c.offers = append(c.offers, parts[1]+":"+parts[2])
			c.mu.Unlock()
		}
		return nil, nil, false
	})
	return c
}

func (c *saslCluster) offered() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.offers...)
}

// sawOnly fails unless every credential offered to c is want (and at least
// one was, if any is required).
func (c *saslCluster) sawOnly(t *testing.T, name, want string, required bool) {
	t.Helper()
	offers := c.offered()
	if required && len(offers) == 0 {
		t.Errorf("%s cluster: no credentials offered, want %s", name, want)
	}
	for _, o := range offers {
		if o != want {
			t.Errorf("%s cluster was offered %q; only %q may go there", name, o, want)
		}
	}
}

// consumeAs reads topic with the given credentials until it has n records
// or a few seconds passed.
func consumeAs(t *testing.T, c *saslCluster, user, pass, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, c.Cluster, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out []*kgo.Record
	for ctx.Err() == nil && len(out) < n {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	return out
}

// kaudit traffic and kaudit ingest never send the application cluster's
// credentials to --audit-brokers: the audit cluster gets the --audit-*
// settings, or none.
func TestAuditClusterGetsOnlyItsOwnCredentials(t *testing.T) {
	appCreds := []string{"--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "app", "--sasl-password", "app-secret"}
	auditCreds := []string{"--audit-security-protocol", "SASL_PLAINTEXT", "--audit-sasl-username", "auditor", "--audit-sasl-password", "audit-secret"}

	t.Run("traffic without audit credentials", func(t *testing.T) {
		app := newSASLCluster(t, "app", "app-secret", "orders")
		aud := newSASLCluster(t, "auditor", "audit-secret", audit.DefaultEventsTopic)
		args := append([]string{"traffic", "--brokers", app.ListenAddrs()[0], "--audit-brokers", aud.ListenAddrs()[0],
			"--topic", "orders", "--rate", "50", "--count", "10", "--groups", "g", "--duration", "1500ms"}, appCreds...)
		if err := runCLI(t, args...); err != nil {
			t.Fatal(err)
		}
		app.sawOnly(t, "application", "app:app-secret", true)
		aud.sawOnly(t, "audit", "none", false)
	})

	t.Run("traffic with audit credentials", func(t *testing.T) {
		app := newSASLCluster(t, "app", "app-secret", "orders")
		aud := newSASLCluster(t, "auditor", "audit-secret", audit.DefaultEventsTopic)
		args := append(append([]string{"traffic", "--brokers", app.ListenAddrs()[0], "--audit-brokers", aud.ListenAddrs()[0],
			"--topic", "orders", "--rate", "50", "--count", "10", "--groups", "g", "--duration", "2s"}, appCreds...), auditCreds...)
		if err := runCLI(t, args...); err != nil {
			t.Fatal(err)
		}
		app.sawOnly(t, "application", "app:app-secret", true)
		aud.sawOnly(t, "audit", "auditor:audit-secret", true)
		if n := len(consumeAs(t, aud, "auditor", "audit-secret", audit.DefaultEventsTopic, 20)); n < 20 {
			t.Errorf("%d audit events on the audit cluster, want 10 produce and 10 consume events", n)
		}
	})

	t.Run("ingest with audit credentials", func(t *testing.T) {
		app := newSASLCluster(t, "app", "app-secret", "foreign")
		aud := newSASLCluster(t, "auditor", "audit-secret", audit.DefaultEventsTopic, audit.DefaultDLQTopic)
		prod := kafkatest.Client(t, app.Cluster, kgo.SASL(plain.Auth{User: "app", Pass: "app-secret"}.AsMechanism()), kgo.DefaultProduceTopic("foreign"))
		at := time.Now().UTC().Truncate(time.Second)
		var recs []*kgo.Record
		for i := range 5 {
			id := fmt.Sprintf("c-%d", i)
			e := codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: id, Topic: "t", Partition: 0, Offset: int64(i), ClientID: "p", SendNs: at.UnixNano(), AckNs: at.UnixNano()}
			recs = append(recs, &kgo.Record{Key: []byte(id), Value: codecs.AppendInterceptorRecord(nil, &e)})
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{"ingest", "--brokers", app.ListenAddrs()[0], "--audit-brokers", aud.ListenAddrs()[0],
			"--from", "foreign", "--duration", "1s"}, appCreds...), auditCreds...)
		if err := runCLI(t, args...); err != nil {
			t.Fatal(err)
		}
		app.sawOnly(t, "application", "app:app-secret", true)
		aud.sawOnly(t, "audit", "auditor:audit-secret", true)
		if n := len(consumeAs(t, aud, "auditor", "audit-secret", audit.DefaultEventsTopic, 5)); n != 5 {
			t.Errorf("%d events ingested into the audit cluster, want 5", n)
		}
	})

	t.Run("ingest without audit credentials", func(t *testing.T) {
		app := newSASLCluster(t, "app", "app-secret", "foreign")
		aud := newSASLCluster(t, "auditor", "audit-secret", audit.DefaultEventsTopic, audit.DefaultDLQTopic)
		args := append([]string{"ingest", "--brokers", app.ListenAddrs()[0], "--audit-brokers", aud.ListenAddrs()[0],
			"--from", "foreign", "--duration", "1s"}, appCreds...)
		if err := runCLI(t, args...); err != nil {
			t.Fatal(err)
		}
		aud.sawOnly(t, "audit", "none", false)
	})

	t.Run("audit settings need audit brokers", func(t *testing.T) {
		err := runCLI(t, append([]string{"traffic", "--brokers", "127.0.0.1:1", "--duration", "1s"}, auditCreds...)...)
		if err == nil || !strings.Contains(err.Error(), "--audit-brokers") {
			t.Errorf("--audit-sasl-username without --audit-brokers: %v, want an error naming --audit-brokers", err)
		}
	})
}
