//go:build rdkafka

package main_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestForkedChild runs testdata/fork.py: a Python process audits a
// producer, keeps another one open and forks; the child creates a
// producer with the plugin (audit.* properties included) and produces.
// A Go runtime does not survive fork, so the child must not enter it: the
// child's producer works, unaudited (its message still gets a correlation
// ID, added in C), and says so on stderr; the parent stays audited.
func TestForkedChild(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "orders", 3)
	kafkatest.CreateTopic(t, c, "fork.audit", 3)
	r := runCmd(t, 2*time.Minute, "", pythonBin, "testdata/fork.py", "--plugin", pluginLib(t),
		"--bootstrap", c.ListenAddrs()[0], "--topic", "orders", "--audit-topic", "fork.audit")
	if r.err != nil {
		t.Fatalf("fork.py: %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
	}
	var out struct {
		Parent bool           `json:"parent"`
		Child  map[string]int `json:"child"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("fork.py output %q: %v", r.stdout, err)
	}
	if code, ok := out.Child["exit"]; !ok || code != 0 || !out.Parent {
		t.Fatalf("parent delivered %t; child %v (want exit 0); stderr:\n%s", out.Parent, out.Child, r.stderr)
	}
	if !strings.Contains(r.stderr, "forked child") {
		t.Errorf("the child did not say it runs unaudited; stderr:\n%s", r.stderr)
	}

	ids := map[string]string{} // value -> correlation ID
	for _, m := range kafkatest.Consume(t, c, "orders", 2, 10*time.Second) {
		for _, h := range m.Headers {
			if h.Key == audit.CorrelationHeader {
				ids[string(m.Value)] = string(h.Value)
			}
		}
	}
	if len(ids["from the parent"]) != 36 || len(ids["from the child"]) != 36 {
		t.Fatalf("correlation IDs %v, want one on each message", ids)
	}
	evs := readEvents(t, c, "fork.audit", 1)
	if evs[0].CorrelationID != ids["from the parent"] || evs[0].ClientID != "parent" {
		t.Errorf("audit event %+v, want the parent's produce only", evs[0])
	}
}
