//go:build rdkafka

package main_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestBatchConsumeSeek compares, for a Python consumer that another thread
// seeks back every few milliseconds, the offsets returned to the
// application with the plugin's consume events. With poll() they match
// exactly, repeats included. With the batch API (consume(num_messages)),
// librdkafka drops messages of a batch after on_consume ran when a seek
// lands during the call (a librdkafka known issue; see the package doc):
// every message returned still has its event, and the extra events are
// logged.
func TestBatchConsumeSeek(t *testing.T) {
	const n = 500
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "orders", 1)
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("message %d", i))
	}
	kcatProduce(t, c.ListenAddrs()[0], "orders", lines, nil, "audit.topic=produce.audit")
	for _, mode := range []string{"poll", "batch"} {
		t.Run(mode, func(t *testing.T) {
			audit := "audit." + mode
			kafkatest.CreateTopic(t, c, audit, 1)
			out := mustRun(t, 2*time.Minute, "", pythonBin, "testdata/batchseek.py", "--plugin", pluginLib(t),
				"--bootstrap", c.ListenAddrs()[0], "--topic", "orders", "--group", "g-"+mode,
				"--audit-topic", audit, "--n", fmt.Sprint(n), "--mode", mode)
			var py struct {
				Offsets []int64 `json:"offsets"`
				Seeks   int     `json:"seeks"`
			}
			if err := json.Unmarshal([]byte(out), &py); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			returned := map[int64]int{}
			for _, o := range py.Offsets {
				returned[o]++
			}
			events := map[int64]int{}
			for _, r := range kafkatest.Consume(t, c, audit, 1<<30, 3*time.Second) {
				ev, err := codecs.DecodeEvent(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Kind == codecs.KindConsume {
					events[ev.Offset]++
				}
			}
			extra, missing := 0, 0
			for o := range int64(n) {
				if d := events[o] - returned[o]; d > 0 {
					extra += d
				} else {
					missing -= d
				}
			}
			t.Logf("%s: %d messages returned (%d seeks); consume events: %d more than returned, %d fewer", mode,
				len(py.Offsets), py.Seeks, extra, missing)
			if missing > 0 || (mode == "poll" && extra > 0) {
				t.Errorf("%s: %d consume events missing, %d extra", mode, missing, extra)
			}
			if py.Seeks < 10 {
				t.Errorf("only %d seeks: the test did not exercise seeking", py.Seeks)
			}
		})
	}
}
