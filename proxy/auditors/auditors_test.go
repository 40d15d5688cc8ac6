package auditors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

func event() *proxy.AuditEvent {
	return &proxy.AuditEvent{
		ID: "e1", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Method: "CreateTopics", APIKey: 19, APIVersion: 7,
		CorrelationID: 12, Principal: "User:alice", ClientAddr: "10.1.2.3:4567", ClientID: "adminclient-1", ClusterID: "c1",
		Allowed: false, ErrorCode: 29,
		Resources: []proxy.Resource{
			{Type: "TOPIC", Name: "orders", PatternType: "LITERAL", Operation: "CREATE", Allowed: true},
			{Type: "TOPIC", Name: "secret", PatternType: "LITERAL", Operation: "CREATE", Allowed: false, ErrorCode: 29, Error: "TOPIC_AUTHORIZATION_FAILED"},
		},
	}
}

// TestConfluentShape checks the fields SIEM pipelines built for Confluent's
// audit log read.
func TestConfluentShape(t *testing.T) {
	recs, err := auditors.Encode(event(), auditors.FormatConfluent)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d CloudEvents, want one per resource", len(recs))
	}
	var m map[string]any
	if err := json.Unmarshal(recs[1], &m); err != nil {
		t.Fatal(err)
	}
	data := m["data"].(map[string]any)
	get := func(obj map[string]any, keys ...string) any {
		var v any = obj
		for _, k := range keys {
			v = v.(map[string]any)[k]
		}
		return v
	}
	for path, want := range map[string]any{
		"specversion": "1.0", "type": "io.confluent.kafka.server/authorization", "source": "crn:///kafka=c1",
		"subject": "crn:///kafka=c1/topic=secret", "time": "2026-01-02T03:04:05Z",
	} {
		if m[path] != want {
			t.Errorf("%s = %v, want %v", path, m[path], want)
		}
	}
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"methodName"}, "kafka.CreateTopics"},
		{[]string{"authenticationInfo", "principal"}, "User:alice"},
		{[]string{"authorizationInfo", "granted"}, false},
		{[]string{"authorizationInfo", "operation"}, "Create"},
		{[]string{"authorizationInfo", "resourceType"}, "Topic"},
		{[]string{"authorizationInfo", "resourceName"}, "secret"},
		{[]string{"authorizationInfo", "patternType"}, "LITERAL"},
		{[]string{"requestMetadata", "clientAddress"}, "10.1.2.3"},
		{[]string{"request", "clientId"}, "adminclient-1"},
		{[]string{"request", "correlationId"}, "12"},
		{[]string{"result", "status"}, "FAILURE"},
	} {
		if got := get(data, tc.path...); got != tc.want {
			t.Errorf("data.%v = %v, want %v", tc.path, got, tc.want)
		}
	}
}

// TestKafkaAuditor writes events and traffic records to a kfake cluster and
// reads them back from the audit topics.
func TestKafkaAuditor(t *testing.T) {
	itest.Integration(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := auditors.NewKafka(ctx, auditors.KafkaConfig{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, TrafficTopic: auditors.DefaultTrafficTopic,
	})
	if err != nil {
		t.Fatal(err)
	}
	k.Audit(event())
	k.WriteTraffic([]traffic.Record{{Type: "traffic", Principal: "User:alice", Topic: "orders", API: "Produce", Records: 42}})
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := k.Stats(); st.Sent != 2 || st.Dropped != 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(auditors.DefaultAdminTopic, auditors.DefaultTrafficTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]map[string]any{}
	for len(got) < 2 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of 2 records", len(got))
		}
		fs.EachRecord(func(r *kgo.Record) {
			var m map[string]any
			if err := json.Unmarshal(r.Value, &m); err != nil {
				t.Fatal(err)
			}
			got[r.Topic] = m
		})
	}
	if a := got[auditors.DefaultAdminTopic]; a["type"] != "audit" || a["method"] != "CreateTopics" || a["principal"] != "User:alice" || len(a["resources"].([]any)) != 2 {
		t.Errorf("admin record %v", a)
	}
	if tr := got[auditors.DefaultTrafficTopic]; tr["type"] != "traffic" || tr["records"] != 42.0 || tr["topic"] != "orders" {
		t.Errorf("traffic record %v", tr)
	}
}
