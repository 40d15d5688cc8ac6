package e2e_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/proxyscript"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
)

// TestProxyAudit runs the scripted admin operations and traffic (franz-go
// and kadm, kcat, python3-confluent-kafka; SASL PLAIN and SCRAM; some
// requests denied by ACLs) through kaudit-proxy, whose kafka auditors write
// the audit topics in both formats (kaudit and Confluent's CloudEvents);
// kaudit-sink stores each in its own ClickHouse database. In both, the
// admin audit table holds exactly the script's operations (method,
// resource, principal, allowed, error) plus the failed login, and the
// traffic table's records per principal and topic equal what the clients
// produced and consumed.
func TestProxyAudit(t *testing.T) {
	itest.Need(t, "kcat", proxyscript.PythonBin)
	c := proxyscript.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	admin := proxyscript.AdminOpts(c)
	var auds []proxy.Auditor
	var writers []traffic.Writer
	for _, f := range []struct {
		format        auditors.Format
		admin, traffc string
	}{
		{auditors.FormatKaudit, "kaudit.admin", "kaudit.traffic"},
		{auditors.FormatConfluent, "confluent.admin", "confluent.traffic"},
	} {
		k, err := auditors.NewKafka(ctx, auditors.KafkaConfig{ClientOpts: admin, Format: f.format, AdminTopic: f.admin, TrafficTopic: f.traffc})
		if err != nil {
			t.Fatal(err)
		}
		auds = append(auds, k)
		writers = append(writers, k)
	}
	p, err := proxy.New(proxy.Config{Upstream: c.ListenAddrs(), Listen: "127.0.0.1:0", Auditors: auds,
		Observers: []proxy.Observer{traffic.New(traffic.Config{Writers: writers, Proxy: "e2e"})}, Name: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopProxy := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	want := proxyscript.Run(t, c, p.Addr())
	stopProxy() // flushes the traffic window and the auditors
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for _, topics := range [][2]string{{"kaudit.admin", "kaudit.traffic"}, {"confluent.admin", "confluent.traffic"}} {
		t.Run(strings.Split(topics[0], ".")[0], func(t *testing.T) {
			cfg, conn := chtest.Migrated(t)
			r, err := sinks.New(sinks.Config[*sinks.Batch]{Brokers: c.ListenAddrs(), ClientOpts: []kgo.Opt{proxyscript.AdminAuth()}, Group: "sink-" + topics[0],
				Topics: sinks.ProxyTopics(topics[0], topics[1]), NewBatch: sinks.NewBatch, FlushInterval: 200 * time.Millisecond},
				chsink.New(conn, chsink.Config{Database: cfg.Database}))
			if err != nil {
				t.Fatal(err)
			}
			rctx, stopSink := context.WithCancel(ctx)
			sinkDone := make(chan error, 1)
			go func() { sinkDone <- r.Run(rctx) }()
			defer func() {
				stopSink()
				if err := <-sinkDone; err != nil {
					t.Error(err)
				}
			}()
			checkAdmin(ctx, t, conn, cfg.Database, want)
			checkTraffic(ctx, t, conn, cfg.Database, want)
		})
	}
}

// checkAdmin waits for the admin audit table to hold the script's rows
// and the failed login, then compares.
func checkAdmin(ctx context.Context, t *testing.T, conn driver.Conn, db string, want proxyscript.Expected) {
	t.Helper()
	q := "SELECT method, resource_type, resource_name, pattern_type, operation, principal, allowed, error, client_address, client_id FROM " +
		store.Table(db, store.AdminAuditTable) + " FINAL"
	var got []proxyscript.Audit
	var fails []string
	for {
		got, fails = got[:0], fails[:0]
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a proxyscript.Audit
			var allowed uint8
			var addr, clientID string
			if err := rows.Scan(&a.Method, &a.ResourceType, &a.Resource, &a.PatternType, &a.Operation, &a.Principal, &allowed, &a.Error, &addr, &clientID); err != nil {
				t.Fatal(err)
			}
			a.Allowed = allowed == 1
			if !strings.HasPrefix(addr, "127.0.0.1:") || clientID == "" {
				t.Errorf("row without client address or id: %v %q %q", a, addr, clientID)
			}
			if a.Method == "SaslAuthenticate" {
				fails = append(fails, a.Principal)
				continue
			}
			got = append(got, a)
		}
		rows.Close()
		if len(got) >= len(want.Audit) && len(fails) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("admin audit: %d of %d rows, %d failed logins", len(got), len(want.Audit), len(fails))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g, w := proxyscript.Sorted(got), proxyscript.Sorted(want.Audit); !reflect.DeepEqual(g, w) {
		var b strings.Builder
		for i := range max(len(g), len(w)) {
			var gs, ws string
			if i < len(g) {
				gs = g[i].String()
			}
			if i < len(w) {
				ws = w[i].String()
			}
			mark := " "
			if gs != ws {
				mark = "!"
			}
			b.WriteString("\n" + mark + " got  " + gs + "\n  want " + ws)
		}
		t.Errorf("admin audit rows differ from the script's:%s", b.String())
	}
	for _, p := range fails {
		if p != "User:"+proxyscript.MalloryUser {
			t.Errorf("failed login of %s, want only %v", p, want.AuthFailures)
		}
	}
}

// checkTraffic compares the stored Produce and Fetch records per principal
// and topic with what the clients produced and consumed.
func checkTraffic(ctx context.Context, t *testing.T, conn driver.Conn, db string, want proxyscript.Expected) {
	t.Helper()
	q := "SELECT principal, topic, api, consumer_group, sum(records) FROM " + store.Table(db, store.ClientTrafficTable) +
		" FINAL WHERE topic != '' AND api IN ('Produce', 'Fetch') GROUP BY principal, topic, api, consumer_group"
	for {
		produced, fetched := map[proxyscript.Flow]int64{}, map[proxyscript.Flow]int64{}
		groups := map[proxyscript.Flow][]string{}
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var principal, topic, api, group string
			var n uint64
			if err := rows.Scan(&principal, &topic, &api, &group, &n); err != nil {
				t.Fatal(err)
			}
			fl := proxyscript.Flow{Principal: principal, Topic: topic}
			if api == "Produce" {
				produced[fl] += int64(n)
			} else if n > 0 {
				fetched[fl] += int64(n)
				groups[fl] = append(groups[fl], group)
			}
		}
		rows.Close()
		okP, okF := reflect.DeepEqual(nonZero(produced), want.Produced), reflect.DeepEqual(fetched, want.Fetched)
		if okP && okF {
			for fl, g := range want.Groups {
				if !reflect.DeepEqual(groups[fl], []string{g}) {
					t.Errorf("%s fetched %s in groups %v, want %q", fl.Principal, fl.Topic, groups[fl], g)
				}
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("traffic table:\nproduced %v\n    want %v\nfetched %v\n    want %v", produced, want.Produced, fetched, want.Fetched)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func nonZero(m map[proxyscript.Flow]int64) map[proxyscript.Flow]int64 {
	out := map[proxyscript.Flow]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
