package sinks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
)

func TestLogSinkWritesJSONLines(t *testing.T) {
	var out bytes.Buffer
	s := sinks.NewLogSink(&out, false)
	b := &sinks.Batch{
		Verdicts: []codecs.Verdict{*verdict(1), *verdict(2)},
		Events:   []sinks.EventRecord{{Event: codecs.Event{Version: 1, Kind: codecs.KindProduce, CorrelationID: "e", Topic: "t"}}},
	}
	b.Verdicts[1].Status, b.Verdicts[1].Cause = codecs.StatusLost, "not_consumed"
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want the 2 verdicts (events are off)", len(lines))
	}
	if lines[0]["status"] != "DELIVERED" || lines[1]["status"] != "LOST" || lines[1]["cause"] != "not_consumed" || lines[0]["correlation_id"] != "id-0001" {
		t.Errorf("lines: %v", lines)
	}
}
