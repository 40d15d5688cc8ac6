//go:build rdkafka

package main_test

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestConfDupAndReload runs a small C client (testdata/dupconf.c): a
// producer made from a copy of a configuration (rd_kafka_conf_dup) audits
// with the original's settings, exactly once per message; messages that
// carry headers keep them, and a correlation_id of their own is kept (also
// one too long for a ring record, which takes the slow path); and a
// second client works after the first one and all configurations are gone.
func TestConfDupAndReload(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "dupconf")
	if out, err := exec.Command("gcc", "-O1", "-Wall", "-o", bin, "testdata/dupconf.c", "-lrdkafka").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "orders", 3)
	kafkatest.CreateTopic(t, c, "dup.audit", 3)
	mustRun(t, time.Minute, "", bin, pluginLib(t), c.ListenAddrs()[0], "orders", "dup.audit")

	longID := strings.Repeat("L", 100)
	msgs := kafkatest.Consume(t, c, "orders", 5, 10*time.Second)
	if len(msgs) != 5 {
		t.Fatalf("%d messages on orders, want 5", len(msgs))
	}
	ids := map[string]string{} // correlation ID -> value
	for _, m := range msgs {
		var got []string
		for _, h := range m.Headers {
			got = append(got, h.Key+"="+string(h.Value))
			if h.Key == audit.CorrelationHeader {
				ids[string(h.Value)] = string(m.Value)
			}
		}
		switch string(m.Value) {
		case "message with a trace header":
			if len(got) != 2 || got[0] != "trace=t-1" {
				t.Errorf("headers %v, want trace=t-1 then correlation_id", got)
			}
		case "message with its own ID":
			if !slices.Equal(got, []string{"correlation_id=dup-fixed-id"}) {
				t.Errorf("headers %v, want the message's own correlation_id only", got)
			}
		case "message with a long ID":
			if !slices.Equal(got, []string{"correlation_id=" + longID}) {
				t.Errorf("headers %v, want the message's own correlation_id only", got)
			}
		default:
			if len(got) != 1 {
				t.Errorf("message %q: headers %v, want one correlation_id", m.Value, got)
			}
		}
	}
	if len(ids) != 5 {
		t.Fatalf("%d distinct correlation IDs on 5 messages: %v", len(ids), ids)
	}

	evs := readEvents(t, c, "dup.audit", 5)
	clients := map[string]int{}
	for _, ev := range evs {
		clients[ev.ClientID]++
		if ev.Kind != codecs.KindProduce || ev.Source != "librdkafka" || ev.Error != "" || ev.AckNs == 0 {
			t.Errorf("event %+v, want an acknowledged produce from librdkafka", ev)
		}
		v, ok := ids[ev.CorrelationID]
		if !ok {
			t.Errorf("event for correlation ID %q, which no message carries", ev.CorrelationID)
		}
		if ev.Digest != codecs.Digest(nil, []byte(v)) || int(ev.PayloadSize) != len(v) {
			t.Errorf("event %s: digest %x size %d, want those of %q", ev.CorrelationID, ev.Digest, ev.PayloadSize, v)
		}
	}
	if clients["dup-producer"] != 4 || clients["second-producer"] != 1 {
		t.Errorf("events per client %v, want dup-producer 4, second-producer 1", clients)
	}
	for _, id := range []string{"dup-fixed-id", longID} {
		if _, ok := ids[id]; !ok {
			t.Errorf("the message's own correlation ID %q was replaced", id)
		}
	}
}

// TestPluginIsNodelete: a Go runtime cannot be unloaded, and librdkafka
// dlclose()s a plugin with the last configuration that loaded it; the Go
// linker marks c-shared libraries NODELETE, which keeps the plugin loaded
// (TestConfDupAndReload and the Python test create clients after that).
func TestPluginIsNodelete(t *testing.T) {
	f, err := elf.Open(pluginLib(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := f.DynValue(elf.DT_FLAGS_1)
	if err != nil || len(flags) != 1 || elf.DynFlag1(flags[0])&elf.DF_1_NODELETE == 0 {
		t.Fatalf("DT_FLAGS_1 = %v (%v), want DF_1_NODELETE", flags, err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool { return s.Name == "conf_init" && elf.ST_TYPE(s.Info) == elf.STT_FUNC }) {
		t.Error("the plugin does not export conf_init")
	}
}
