// Package conformance holds no code, only the tests that kaudit gives the
// same answers on every ClickHouse it supports: Debian's 18.16 server (the
// tests' server), 26.x (what users run; the docker-compose file pins
// 26.8), the latter in the test process through libchdb (internal/chdb),
// and a cluster of two 18.16 shards (kaudit's tables ON CLUSTER, read and
// written through Distributed tables).
//
// On each, the tests apply every migration up, down to nothing and up
// again; load the same fixture of verdicts, events and kaudit-proxy audit
// (admin audit, client traffic) through the sink; then run every statement
// of store's query registry (the rollup refresh, retention, and the report
// queries behind `kaudit report`, `kaudit report --clients` and `--admin`,
// `kaudit trail` and every page of `kaudit web`) through the product's own
// functions, with the values bound by clickhouse-go as the product binds
// them, and every Grafana panel and variable with its macros substituted;
// and they compare the results with 18.16's: same rows, same numbers, same
// rendered pages. A registered statement the tests did not run, or a
// statement they saw that is not registered, fails them; so does SQL
// written in store, report or web outside store.NewQuery.
//
// The fixture's latencies are skewed (log-normal with a tail of seconds),
// and the latency quantiles read from the rollups are checked against
// quantileExact on each engine: within store.LatencyRelativeError (1/256)
// at p50, p90, p99 and p99.9, and identical on every engine.
//
//	go test ./store/conformance/
package conformance
