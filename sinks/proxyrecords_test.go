package sinks_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/sinks"
)

func TestDecodeAdminBothFormats(t *testing.T) {
	ev := &proxy.AuditEvent{
		ID: "id-1", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Method: "DeleteTopics", APIKey: 20, APIVersion: 6,
		CorrelationID: 3, Principal: "User:bob", ClientAddr: "10.0.0.9:4444", ClientID: "tool", Group: "g", Broker: 2,
		Proxy: "p", Allowed: false, ErrorCode: 29,
		Resources: []proxy.Resource{
			{Type: "TOPIC", Name: "a", PatternType: "LITERAL", Operation: "DELETE", Allowed: true},
			{Type: "TOPIC", Name: "b", PatternType: "LITERAL", Operation: "DELETE", ErrorCode: 29, Error: "TOPIC_AUTHORIZATION_FAILED", Detail: "x"},
		},
	}
	for _, f := range []auditors.Format{auditors.FormatKaudit, auditors.FormatConfluent} {
		recs, err := auditors.Encode(ev, f)
		if err != nil {
			t.Fatal(err)
		}
		var rows []sinks.AdminRow
		for _, r := range recs {
			rs, err := sinks.DecodeAdmin(r)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			rows = append(rows, rs...)
		}
		if len(rows) != 2 {
			t.Fatalf("%s: %d rows", f, len(rows))
		}
		for i, row := range rows {
			if row.ResourceIndex != i || !reflect.DeepEqual(row.Resource, ev.Resources[i]) {
				t.Errorf("%s: row %d resource %+v, want %+v", f, i, row.Resource, ev.Resources[i])
			}
			e := row.Event
			if e.ID != ev.ID || !e.Time.Equal(ev.Time) || e.Method != ev.Method || e.Principal != ev.Principal ||
				e.ClientAddr != ev.ClientAddr || e.ClientID != ev.ClientID || e.Group != ev.Group || e.Broker != ev.Broker || e.Allowed != ev.Allowed {
				t.Errorf("%s: row %d event %+v", f, i, e)
			}
		}
	}
	for _, bad := range []string{``, `{}`, `{"type":"audit"}`, `{"specversion":"1.0","data":{}}`, `[1,2]`} {
		if _, err := sinks.DecodeAdmin([]byte(bad)); err == nil {
			t.Errorf("DecodeAdmin(%q) accepted", bad)
		}
	}
	if _, err := sinks.DecodeTraffic([]byte(`{"type":"audit"}`)); err == nil {
		t.Error("DecodeTraffic accepted an audit record")
	}
}
