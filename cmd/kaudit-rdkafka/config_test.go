//go:build rdkafka

package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestRejectedProperties: an audit.* key the plugin does not know, or a
// value it cannot honour, makes the client fail to start with the plugin's
// message, in kcat and in Python.
func TestRejectedProperties(t *testing.T) {
	c := kafkatest.NewCluster(t)
	brokers := c.ListenAddrs()[0]
	cases := []struct {
		prop, want string
	}{
		{"audit.foo=bar", "kaudit: audit.foo: unknown property"},
		{"audit.topc=x", "kaudit: audit.topc: unknown property (did you mean audit.topic?)"},
		{"audit.sasl.mechanism=GSSAPI", "kaudit: audit.sasl.mechanism: GSSAPI is not supported"},
		{"audit.linger.ms=soon", `kaudit: audit.linger.ms: "soon" is not an integer`},
		{"audit.ssl.ca.location=/nonexistent/ca.pem", "kaudit: audit.ssl.ca.location: open /nonexistent/ca.pem"},
		{"audit.ssl.key.password=secret", "kaudit: audit.ssl.key.password: encrypted private keys are not supported"},
		{"audit.format=xml", `kaudit: audit.format: "xml" is not kaudit or interceptor-json`},
	}
	for _, tc := range cases {
		t.Run(tc.prop, func(t *testing.T) {
			args := append([]string{"-P", "-b", brokers, "-t", "orders"}, auditArgs(t, tc.prop)...)
			r := runCmd(t, 30*time.Second, "never sent\n", "kcat", args...)
			if r.err == nil {
				t.Fatalf("kcat started with %s", tc.prop)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("kcat stderr %q, want %q", r.stderr, tc.want)
			}

			k, v, _ := strings.Cut(tc.prop, "=")
			script := `
import sys
from confluent_kafka import Producer, KafkaException
try:
    Producer({"bootstrap.servers": sys.argv[1], "plugin.library.paths": sys.argv[2], sys.argv[3]: sys.argv[4]})
except KafkaException as e:
    print(e.args[0].str())
    sys.exit(0)
print("started")
sys.exit(1)
`
			r = runCmd(t, 30*time.Second, "", pythonBin, "-c", script, brokers, pluginLib(t), k, v)
			if r.err != nil {
				t.Fatalf("python: %v: %s%s", r.err, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.want) {
				t.Errorf("python error %q, want %q", r.stdout, tc.want)
			}
		})
	}
}
