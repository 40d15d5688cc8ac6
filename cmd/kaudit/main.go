// Command kaudit is kaudit's tool box: the demo, a development broker, the
// ClickHouse migrations, demo traffic against a real cluster, and the trail
// of one message.
//
//	kaudit demo --duration 30s
//	kaudit migrate --clickhouse-addr clickhouse:9000
//	kaudit trail 6f1c0e0a-...
//	kaudit report --since 1h
//	kaudit web --addr 127.0.0.1:8080
//	kaudit retention --keep 30d
//	kaudit alerts --alertmanager-url http://alertmanager:9093
package main

import (
	"os"

	"github.com/alecthomas/kong"
	"github.com/kaudit/kaudit/internal/cli"
)

type app struct {
	Demo      demoCmd      `cmd:"" help:"Run the whole pipeline on an embedded broker and a local ClickHouse, with demo traffic."`
	Broker    brokerCmd    `cmd:"" help:"Run the embedded development broker (kfake) until interrupted."`
	Migrate   migrateCmd   `cmd:"" help:"Apply the ClickHouse migrations (idempotent)."`
	Traffic   trafficCmd   `cmd:"" help:"Send audited demo traffic to a Kafka cluster: a producer and consumer groups."`
	Trail     trailCmd     `cmd:"" help:"Print the audit trail of one message from ClickHouse."`
	Report    reportCmd    `cmd:"" help:"Print deliveries per topic and consumer group: expected, delivered, lost, late, duplicate, corrupted, completeness, latencies."`
	Web       webCmd       `cmd:"" help:"Serve the web dashboard (overview, charts, anomalies, trails) and keep the rollups current."`
	Retention retentionCmd `cmd:"" help:"Drop ClickHouse day partitions older than --keep."`
	Ingest    ingestCmd    `cmd:"" help:"Re-emit a foreign audit topic (the librdkafka interceptors' JSON) as kaudit events."`
	Expect    expectCmd    `cmd:"" help:"Manage the expected consumer groups of topics (kaudit.expectations)."`
	Alerts    alertsCmd    `cmd:"" help:"Evaluate the SLOs of the expectations on ClickHouse and send burn-rate alerts to Alertmanager and webhooks (long-lived)."`
	Health    healthCmd    `cmd:"" help:"Probe a kaudit process's /healthz or /readyz; exits 1 unless it answers 2xx (for container healthchecks)."`
}

func main() {
	var a app
	kctx := kong.Parse(&a, cli.Vars(),
		kong.Name("kaudit"),
		kong.Description("kaudit audits every message's trip through Kafka."),
		kong.UsageOnError(),
	)
	if err := kctx.Run(); err != nil {
		os.Stderr.WriteString("kaudit: " + err.Error() + "\n")
		os.Exit(1)
	}
}
