// Package chdb runs a current ClickHouse (26.x) inside a Go process, for
// the tests: libchdb.so, clickhouse-local as a library, from the npm package
// @chdb/lib-linux-x64-gnu (fetched once with npm and cached, see Ensure),
// loaded without cgo (github.com/ebitengine/purego), so `go build ./...`
// needs nothing but Go.
//
// Open gives a connection to the engine (Query, Insert); Start also serves
// it on 127.0.0.1 through ClickHouse's HTTP interface, so that kaudit's own
// code reaches it through clickhouse-go (protocol HTTP) exactly as it
// reaches a server: clickhouse-go binds the ? parameters on the client, as
// it does for the native protocol (the same function), and decodes the
// Native blocks the engine writes.
//
//	srv, err := chdb.Start(ctx, chdb.Options{})
//	...
//	conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Protocol: store.ProtocolHTTP, Database: "default"})
//
// The engine is one per process, on one data directory, and its tables
// live only in that directory: a process killed at any instant leaves a
// temporary directory behind and nothing else (Start's default directory
// is under the system's temporary directory). The engine's signal handlers
// are disabled: the Go runtime keeps the process's.
package chdb
