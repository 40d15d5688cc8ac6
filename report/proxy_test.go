package report_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
)

// TestProxyReports writes kaudit-proxy rows through the ClickHouse sink
// (twice, as a sink re-reading them would) and reads them back as the
// client-traffic and admin-audit tables.
func TestProxyReports(t *testing.T) {
	itest.Integration(t)
	conn, db, sink := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	m1, m2 := now.Add(-3*time.Minute), now.Add(-2*time.Minute)
	rec := func(at time.Time, principal, client, group, topic, api string, records, bytes int64) traffic.Record {
		return traffic.Record{Type: "traffic", WindowStart: at, WindowEnd: at.Add(time.Minute), Proxy: "p", Instance: "i1",
			Principal: principal, ClientID: client, ClientAddress: "10.0.0.1", Group: group, Topic: topic, API: api,
			Requests: 1, Records: records, Bytes: bytes}
	}
	b := &sinks.Batch{Traffic: []traffic.Record{
		rec(m1, "User:alice", "app", "", "orders", "Produce", 100, 10_000),
		rec(m2, "User:alice", "app", "", "orders", "Produce", 50, 5_000),
		rec(m1, "User:bob", "billing", "billing-g", "orders", "Fetch", 150, 15_000),
		rec(m1, "User:bob", "billing", "billing-g", "", "Fetch", 0, 0), // per-API total: not a flow
		rec(now.Add(-2*time.Hour), "User:old", "x", "", "orders", "Produce", 7, 70),
	}}
	ev := proxy.AuditEvent{ID: "e1", Time: m1.Add(10 * time.Second), Method: "CreateTopics", APIKey: 19, Principal: "User:alice",
		ClientAddr: "10.0.0.1:5000", ClientID: "admin"}
	denied := proxy.AuditEvent{ID: "e2", Time: m2.Add(10 * time.Second), Method: "DeleteTopics", APIKey: 20, Principal: "User:bob",
		ClientAddr: "10.0.0.2:5000", ClientID: "ops"}
	b.Admin = []sinks.AdminRow{
		{Event: ev, ResourceIndex: 0, Resource: proxy.Resource{Type: "TOPIC", Name: "orders", PatternType: "LITERAL", Operation: "CREATE", Allowed: true}},
		{Event: denied, ResourceIndex: 0, Resource: proxy.Resource{Type: "TOPIC", Name: "orders", PatternType: "LITERAL", Operation: "DELETE",
			ErrorCode: 29, Error: "TOPIC_AUTHORIZATION_FAILED"}},
	}
	for range 2 {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	flows, err := report.ClientFlows(ctx, conn, db, report.ClientFilter{Since: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 {
		t.Fatalf("flows %+v, want alice producing and bob consuming", flows)
	}
	if f := flows[0]; f.Principal != "User:alice" || f.Direction != "produce" || f.Records != 150 || f.Bytes != 15_000 || f.Minutes != 2 {
		t.Errorf("alice's flow %+v", f)
	}
	if f := flows[1]; f.Principal != "User:bob" || f.Direction != "consume" || f.Records != 150 || f.Group != "billing-g" {
		t.Errorf("bob's flow %+v", f)
	}
	only, _ := report.ClientFlows(ctx, conn, db, report.ClientFilter{Since: now.Add(-time.Hour), Principal: "User:bob"})
	if len(only) != 1 {
		t.Errorf("principal filter: %+v", only)
	}
	minutes, err := report.TopicMinutes(ctx, conn, db, report.ClientFilter{Since: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(minutes) != 2 || minutes[0].ProducedRecords != 100 || minutes[0].ConsumedRecords != 150 || minutes[1].ProducedRecords != 50 {
		t.Errorf("minutes %+v", minutes)
	}

	audit, err := report.AdminAudit(ctx, conn, db, report.AuditFilter{Since: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 || audit[0].Method != "DeleteTopics" || audit[0].Allowed || audit[1].Method != "CreateTopics" || !audit[1].Allowed {
		t.Fatalf("audit %+v", audit)
	}
	deniedOnly, _ := report.AdminAudit(ctx, conn, db, report.AuditFilter{Since: now.Add(-time.Hour), Denied: true})
	if len(deniedOnly) != 1 || deniedOnly[0].Principal != "User:bob" {
		t.Errorf("denied only: %+v", deniedOnly)
	}
	var out bytes.Buffer
	report.FormatAdminAudit(&out, audit)
	report.FormatClientFlows(&out, flows)
	for _, want := range []string{"DENIED TOPIC_AUTHORIZATION_FAILED", "TOPIC:orders", "User:alice", "billing-g", "14.6 KiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report output lacks %q:\n%s", want, out.String())
		}
	}
}
