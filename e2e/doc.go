// Package e2e holds kaudit's end-to-end tests: instrumented clients on the
// kfake broker, the correlator and the ClickHouse sink, and a real
// ClickHouse server, checked the way a user would check them — by reading
// ClickHouse.
package e2e
