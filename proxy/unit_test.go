package proxy

import (
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestSASLUser(t *testing.T) {
	jwt := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"svc-orders"}`)) + "."
	for _, tc := range []struct {
		mech, token, want string
	}{
		{"PLAIN", "\x00alice\x00secret", "alice"},
		{"PLAIN", "alice\x00alice\x00secret", "alice"},
		{"PLAIN", "garbage", ""},
		{"SCRAM-SHA-256", "n,,n=bob,r=abc", "bob"},
		{"SCRAM-SHA-512", "n,,n=we=2Cird=3Dname,r=x", "we,ird=name"},
		{"scram-sha-512", "y,a=carol,n=carol,r=x", "carol"},
		{"SCRAM-SHA-256", "nonsense", ""},
		{"OAUTHBEARER", "n,,\x01auth=Bearer " + jwt + "\x01\x01", "svc-orders"},
		{"GSSAPI", "opaque", ""},
	} {
		if got := saslUser(tc.mech, []byte(tc.token)); got != tc.want {
			t.Errorf("saslUser(%s, %q) = %q, want %q", tc.mech, tc.token, got, tc.want)
		}
	}
	if saslSteps("SCRAM-SHA-256") != 2 || saslSteps("PLAIN") != 1 {
		t.Error("saslSteps")
	}
}

// batch encodes a record batch of n records (magic 2).
func batch(n int, attrs int16) []byte {
	b := kmsg.RecordBatch{Magic: 2, Attributes: attrs, NumRecords: int32(n), LastOffsetDelta: int32(n - 1)}
	var recs []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte("value")}
		recs = r.AppendTo(recs)
	}
	b.Records = recs
	raw := b.AppendTo(nil)
	// AppendTo leaves Length to the caller: it is what follows it.
	l := len(raw) - 12
	raw[8], raw[9], raw[10], raw[11] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
	return raw
}

func TestCountBatches(t *testing.T) {
	a, b, ctrl := batch(3, 0), batch(5, 1 /* gzip: counted from the header all the same */), batch(1, 0x20)
	all := append(append(append([]byte(nil), a...), b...), ctrl...)
	got := countBatches(all)
	if got.Records != 8 || got.Bytes != int64(len(all)) {
		t.Errorf("countBatches = %+v, want 8 records in %d bytes", got, len(all))
	}
	// A fetch response may end inside a batch: that one is not counted.
	partial := append(append([]byte(nil), a...), b[:30]...)
	if got := countBatches(partial); got.Records != 3 || got.Bytes != int64(len(a)) {
		t.Errorf("with a partial batch: %+v", got)
	}
	if got := countBatches([]byte{1, 2, 3}); got.Records != 0 || got.Bytes != 0 {
		t.Errorf("garbage: %+v", got)
	}
}

func TestErrorCounts(t *testing.T) {
	resp := kmsg.NewPtrProduceResponse()
	for _, codes := range [][]int16{{0, 0, 29}, {6}} {
		tp := kmsg.NewProduceResponseTopic()
		for _, c := range codes {
			p := kmsg.NewProduceResponseTopicPartition()
			p.ErrorCode = c
			tp.Partitions = append(tp.Partitions, p)
		}
		resp.Topics = append(resp.Topics, tp)
	}
	if got, want := errorCounts(resp), map[int16]int{0: 2, 29: 1, 6: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("errorCounts = %v, want %v", got, want)
	}
}

func TestAuditResources(t *testing.T) {
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, n := range []string{"a", "b"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, 3, 1
		req.Topics = append(req.Topics, rt)
	}
	resp := kmsg.NewPtrCreateTopicsResponse()
	for n, code := range map[string]int16{"a": 0, "b": 29} {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic, rt.ErrorCode = n, code
		resp.Topics = append(resp.Topics, rt)
	}
	got := auditResources(req, resp, nil)
	want := []Resource{
		{Type: "TOPIC", Name: "a", PatternType: "LITERAL", Operation: "CREATE", Allowed: true, Detail: "partitions=3 replication_factor=1"},
		{Type: "TOPIC", Name: "b", PatternType: "LITERAL", Operation: "CREATE", Allowed: false, ErrorCode: 29, Error: "TOPIC_AUTHORIZATION_FAILED", Detail: "partitions=3 replication_factor=1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateTopics:\n got %+v\nwant %+v", got, want)
	}
	// Without a response the outcome is unknown: NETWORK_EXCEPTION.
	for _, r := range auditResources(req, nil, nil) {
		if r.Error != "NETWORK_EXCEPTION" || !r.Allowed {
			t.Errorf("no response: %+v", r)
		}
	}
	// An allowed Produce is not audited; a denied one is, by topic.
	preq := kmsg.NewPtrProduceRequest()
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	preq.Topics = append(preq.Topics, pt)
	presp := kmsg.NewPtrProduceResponse()
	prt := kmsg.NewProduceResponseTopic()
	prt.Topic = "t"
	prt.Partitions = append(prt.Partitions, kmsg.NewProduceResponseTopicPartition())
	presp.Topics = append(presp.Topics, prt)
	if rs := auditResources(preq, presp, nil); len(rs) != 0 {
		t.Errorf("allowed produce audited: %+v", rs)
	}
	presp.Topics[0].Partitions[0].ErrorCode = 29
	if rs := auditResources(preq, presp, nil); len(rs) != 1 || rs[0].Allowed || rs[0].Operation != "WRITE" {
		t.Errorf("denied produce: %+v", rs)
	}
}

func TestAuditedKeys(t *testing.T) {
	always, denied := AuditedKeys()
	for _, k := range []int16{19, 20, 21, 30, 31, 33, 37, 42, 44, 45, 47, 51} {
		found := false
		for _, a := range always {
			found = found || a == k
		}
		if !found {
			t.Errorf("%s (%d) is not always audited", APIName(k), k)
		}
	}
	if !reflect.DeepEqual(denied, []int16{0, 1, 8, 11, 36, 68}) {
		t.Errorf("audited when denied: %v", denied)
	}
	if APIName(45) != "AlterPartitionReassignments" || APIName(30) != "CreateAcls" || APIName(0) != "Produce" {
		t.Error("APIName")
	}
}

func TestGroupMapSweep(t *testing.T) {
	g := groupMap{m: map[clientKey]groupSeen{}}
	now := time.Unix(1000, 0)
	k := clientKey{"User:a", "10.0.0.1", "app"}
	g.set(k, "billing", now)
	if g.get(k) != "billing" {
		t.Fatal("group not remembered")
	}
	g.sweep(now.Add(time.Second))
	if g.get(k) != "" {
		t.Fatal("stale group kept")
	}
}
