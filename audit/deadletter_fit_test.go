package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
)

func TestFitDeadLetter(t *testing.T) {
	rec := &kgo.Record{Topic: "in", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte("small"),
		Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("v")}}}
	dl := audit.DeadLetter(rec, "dlq", "sink", errors.New("bad"))
	if got, cut := audit.FitDeadLetter(dl, 1<<20, false); cut || got != dl {
		t.Fatalf("a small dead letter was cut: %+v", got)
	}

	big := &kgo.Record{Topic: "in", Key: bytes.Repeat([]byte{'k'}, 5000), Value: bytes.Repeat([]byte{'v'}, 2_000_000),
		Headers: []kgo.RecordHeader{{Key: "app", Value: []byte("v")}}}
	dl = audit.DeadLetter(big, "dlq", "sink", errors.New("bad"))
	limit := 1_000_012
	got, cut := audit.FitDeadLetter(dl, limit, false)
	if !cut || audit.RecordSize(got) > limit {
		t.Fatalf("cut %v, size %d, want a stub under %d", cut, audit.RecordSize(got), limit)
	}
	if len(got.Key) != audit.StubBytes || len(got.Value) != audit.StubBytes || got.Topic != "dlq" {
		t.Errorf("stub key %d value %d bytes, topic %s", len(got.Key), len(got.Value), got.Topic)
	}
	h := map[string]string{}
	for _, x := range got.Headers {
		h[x.Key] = string(x.Value)
	}
	if h[audit.HeaderErrMessage] != "bad" || h[audit.HeaderErrStage] != "sink" || h["app"] != "" {
		t.Errorf("stub headers %v: want the Connect ones, without the record's own", h)
	}
	for _, want := range []string{"key 5000 bytes, kept 1024", "value 2000000 bytes, kept 1024", "1 record headers dropped"} {
		if !strings.Contains(h[audit.HeaderTruncated], want) {
			t.Errorf("truncation header %q lacks %q", h[audit.HeaderTruncated], want)
		}
	}
	if min, cut := audit.FitDeadLetter(audit.DeadLetter(rec, "dlq", "sink", errors.New("bad")), limit, true); !cut || min.Headers[len(min.Headers)-1].Key != audit.HeaderTruncated {
		t.Errorf("minimal stub not marked: %+v", min.Headers)
	}
}
