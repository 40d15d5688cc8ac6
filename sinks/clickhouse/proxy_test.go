package clickhouse_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
)

// kaudit-proxy's records go through the columnar path kaudit-sink uses
// (chsink.Topics, Batch, WriteColumns): every resource of an admin event
// in both of the proxy's formats becomes a row of admin_audit with its
// values, and a traffic record a row of client_traffic_1m.
func TestProxyRecordsColumnar(t *testing.T) {
	cfg, conn := chtest.Migrated(t)
	ctx := context.Background()
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "kaudit.admin", 1)
	kafkatest.CreateTopic(t, c, "kaudit.traffic", 1)
	at := time.Now().UTC().Truncate(time.Second)
	ev := &proxy.AuditEvent{ID: "ev-1", Time: at, Method: "DeleteTopics", APIKey: 20, APIVersion: 6, Principal: "User:bob",
		ClientAddr: "10.0.0.9:4444", ClientID: "tool", Broker: 2, Proxy: "p1", Allowed: false, ErrorCode: 29,
		Resources: []proxy.Resource{
			{Type: "TOPIC", Name: "a", PatternType: "LITERAL", Operation: "DELETE", Allowed: true},
			{Type: "TOPIC", Name: "b", PatternType: "LITERAL", Operation: "DELETE", ErrorCode: 29, Error: "TOPIC_AUTHORIZATION_FAILED"},
		}}
	var recs []*kgo.Record
	for _, f := range []auditors.Format{auditors.FormatKaudit, auditors.FormatConfluent} {
		vals, err := auditors.Encode(ev, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			recs = append(recs, &kgo.Record{Topic: "kaudit.admin", Value: v})
		}
	}
	tr := traffic.Record{Type: "traffic", WindowStart: at.Add(-time.Minute), WindowEnd: at, Proxy: "p1", Instance: "i1", Principal: "User:bob",
		ClientID: "tool", Topic: "orders", APIKey: 0, API: "Produce", Requests: 7, Records: 70, Bytes: 7000, Errors: -1}
	tv, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, &kgo.Record{Topic: "kaudit.traffic", Value: tv})
	if err := kafkatest.Client(t, c).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sink := chsink.Dial(cfg, chsink.Config{})
	defer sink.Close()
	r, err := sinks.New(sinks.Config[*chsink.Batch]{
		Brokers: c.ListenAddrs(), Group: "proxy-sink", Topics: chsink.Topics("", "", "kaudit.admin", "kaudit.traffic", ""),
		NewBatch: chsink.NewBatch, FlushInterval: 100 * time.Millisecond,
	}, sinks.Sink[*chsink.Batch](sink.Columnar()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for s := r.Stats(); s.Written[sinks.KindTraffic] < 1 || s.Written[sinks.KindAdmin] < uint64(len(recs)-1); s = r.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	rows, err := conn.Query(ctx, "SELECT event_time, event_id, resource_index, method, api_key, api_version, resource_name, operation, principal, allowed, error_code, error, broker, proxy FROM "+
		store.Table(cfg.Database, store.AdminAuditTable)+" FINAL ORDER BY resource_index")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var when time.Time
		var id, method, name, op, principal, errText, px string
		var idx uint16
		var key, ver, code int16
		var allowed uint8
		var broker int32
		if err := rows.Scan(&when, &id, &idx, &method, &key, &ver, &name, &op, &principal, &allowed, &code, &errText, &broker, &px); err != nil {
			t.Fatal(err)
		}
		res := ev.Resources[idx]
		if !when.Equal(at) || id != ev.ID || method != ev.Method || key != ev.APIKey || ver != ev.APIVersion || name != res.Name ||
			op != res.Operation || principal != ev.Principal || (allowed == 1) != res.Allowed || code != res.ErrorCode || errText != res.Error || broker != ev.Broker || px != ev.Proxy {
			t.Errorf("admin row %d: %s %s %d %s %d %d %s %s %s %d %d %q %d %s, want %+v / %+v", idx, when, id, idx, method, key, ver, name, op, principal, allowed, code, errText, broker, px, ev, res)
		}
		n++
	}
	if n != len(ev.Resources) {
		t.Errorf("%d admin rows FINAL, want one per resource (%d); both formats write the same rows", n, len(ev.Resources))
	}
	var reqs, records, bytes, errs uint64
	var api string
	if err := conn.QueryRow(ctx, "SELECT requests, records, bytes, errors, api FROM "+store.Table(cfg.Database, store.ClientTrafficTable)+" FINAL").Scan(&reqs, &records, &bytes, &errs, &api); err != nil {
		t.Fatal(err)
	}
	if reqs != 7 || records != 70 || bytes != 7000 || errs != 0 || api != "Produce" {
		t.Errorf("traffic row: %d requests, %d records, %d bytes, %d errors (negative counts as 0), api %s", reqs, records, bytes, errs, api)
	}
}
