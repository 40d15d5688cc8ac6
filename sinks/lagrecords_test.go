package sinks_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/sinks"
)

// A correlator's report decodes to itself; what no correlator writes is
// refused with a reason naming the problem.
func TestDecodeLag(t *testing.T) {
	want := audit.LagReport{Minute: 1_767_225_600, Topic: "orders", Group: "billing", Instance: "correlator-0@h1",
		OldestAckNs: 1_767_225_551_123_456_789, AgeMs: 48_876, Pending: 21}
	b, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sinks.DecodeLag(b)
	if err != nil || got != want {
		t.Fatalf("DecodeLag(%s) = %+v, %v; want %+v", b, got, err, want)
	}
	// A field a newer correlator adds is ignored.
	if got, err := sinks.DecodeLag([]byte(`{"minute":60,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1,"age_ms":0,"pending":0,"new":true}`)); err != nil || got.Minute != 60 {
		t.Errorf("report with an unknown field: %+v, %v", got, err)
	}
	for _, c := range []struct{ value, reason string }{
		{``, "empty"},
		{`   `, "empty"},
		{`{not json`, "invalid character"},
		{`[1,2]`, "cannot unmarshal array"},
		{`{}`, "no topic, group or instance"},
		{`{"minute":60,"topic":"t","group":"g","oldest_ack_ns":1}`, "no topic, group or instance"},
		{`{"minute":61,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1}`, "not the start of a minute"},
		{`{"minute":-60,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1}`, "not the start of a minute"},
		{`{"minute":4294967340,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1}`, "not the start of a minute"},
		{`{"minute":60,"topic":"t","group":"g","instance":"i"}`, "oldest_ack_ns 0"},
		{`{"minute":60,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1,"age_ms":-5}`, "negative age_ms"},
		{`{"minute":60,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1,"pending":-1}`, "cannot unmarshal number -1"},
		{`{"minute":"60","topic":"t","group":"g","instance":"i","oldest_ack_ns":1}`, "cannot unmarshal string"},
		{`{"minute":60,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1} {}`, "invalid character"},
	} {
		_, err := sinks.DecodeLag([]byte(c.value))
		if err == nil || !strings.Contains(err.Error(), c.reason) || !strings.HasPrefix(err.Error(), "lag record: ") {
			t.Errorf("DecodeLag(%q) = %v, want an error saying %q", c.value, err, c.reason)
		}
	}
}
