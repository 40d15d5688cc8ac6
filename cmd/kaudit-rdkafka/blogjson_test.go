//go:build rdkafka

package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// blogRecord is the source blog's audit record.
type blogRecord struct {
	Timestamp     string `json:"timestamp"`
	CorrelationID string `json:"correlation_id"`
	Action        string `json:"action"`
	Topic         string `json:"topic"`
	Client        string `json:"client"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
}

// TestBlogJSON: with audit.format=blog-json, kcat's produce and group
// consume write exactly the blog's records: its seven keys in its order,
// an asctime timestamp (local time, with asctime's newline), keyed by the
// correlation ID, client = client.id for produce and group.id for consume,
// partition and offset of the message.
func TestBlogJSON(t *testing.T) {
	const n = 5
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "test_topic", 3)
	kafkatest.CreateTopic(t, c, "audit_topic", 3)
	brokers := c.ListenAddrs()[0]
	stats := filepath.Join(t.TempDir(), "stats.jsonl")
	props := []string{"audit.format=blog-json", "audit.topic=audit_topic", "audit.stats.file=" + stats}

	start := time.Now().Add(-time.Second)
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("blog message %d", i))
	}
	kcatProduce(t, brokers, "test_topic", lines, nil, append(props, "client.id=ksb-demo-producer")...)
	kcatGroupConsume(t, brokers, "ksb-demo-group", "test_topic", n, props...)
	end := time.Now().Add(time.Second)
	checkStats(t, readStats(t, stats), map[string]uint64{"ksb-demo-producer": n, "rdkafka": n})

	// Where each message is, by correlation ID.
	type pos struct {
		partition int32
		offset    int64
	}
	where := map[string]pos{}
	for _, m := range kafkatest.Consume(t, c, "test_topic", n, 10*time.Second) {
		for _, h := range m.Headers {
			if h.Key == audit.CorrelationHeader {
				where[string(h.Value)] = pos{m.Partition, m.Offset}
			}
		}
	}
	if len(where) != n {
		t.Fatalf("%d messages with a correlation ID, want %d", len(where), n)
	}

	recs := kafkatest.Consume(t, c, "audit_topic", 2*n+1, 5*time.Second)
	if len(recs) != 2*n {
		t.Fatalf("%d blog records, want %d", len(recs), 2*n)
	}
	actions := map[string]int{}
	wantKeys := []string{"timestamp", "correlation_id", "action", "topic", "client", "partition", "offset"}
	for _, r := range recs {
		if keys := jsonKeys(t, r.Value); !slices.Equal(keys, wantKeys) {
			t.Errorf("record %s: keys %v, want %v", r.Value, keys, wantKeys)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, r.Value); err != nil || !bytes.Equal(compact.Bytes(), r.Value) {
			t.Errorf("record %s is not compact JSON (jansson's JSON_COMPACT)", r.Value)
		}
		var b blogRecord
		if err := json.Unmarshal(r.Value, &b); err != nil {
			t.Fatalf("record %s: %v", r.Value, err)
		}
		if string(r.Key) != b.CorrelationID {
			t.Errorf("record key %q, correlation_id %q", r.Key, b.CorrelationID)
		}
		if !strings.HasSuffix(b.Timestamp, "\n") {
			t.Errorf("timestamp %q lacks asctime's newline", b.Timestamp)
		}
		ts, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006\n", b.Timestamp, time.Local)
		if err != nil {
			t.Errorf("timestamp %q is not asctime text: %v", b.Timestamp, err)
		} else if ts.Before(start.Truncate(time.Second)) || ts.After(end) {
			t.Errorf("timestamp %q outside the test's run [%s, %s]", b.Timestamp, start, end)
		}
		p, ok := where[b.CorrelationID]
		if !ok || p.partition != b.Partition || p.offset != b.Offset || b.Topic != "test_topic" {
			t.Errorf("record %+v: message is at %+v (found %t)", b, p, ok)
		}
		actions[b.Action]++
		switch b.Action {
		case "produce":
			if b.Client != "ksb-demo-producer" {
				t.Errorf("produce record client %q, want the client.id", b.Client)
			}
		case "consume":
			if b.Client != "ksb-demo-group" {
				t.Errorf("consume record client %q, want the group.id", b.Client)
			}
		default:
			t.Errorf("action %q", b.Action)
		}
		// The ingest codec of kaudit reads these records.
		if _, err := codecs.ParseInterceptorRecordIn(r.Value, time.Local); err != nil {
			t.Errorf("codecs.ParseInterceptorRecordIn(%s): %v", r.Value, err)
		}
	}
	if actions["produce"] != n || actions["consume"] != n {
		t.Errorf("actions %v, want %d of each", actions, n)
	}
}

// jsonKeys returns the keys of a JSON object, in order.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not a JSON object", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return keys
}
