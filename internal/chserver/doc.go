// Package chserver runs a real ClickHouse server as an ordinary child
// process, for kaudit's integration tests and its demo: it writes a minimal
// config.xml and users.xml into a directory of its own, picks free ports on
// 127.0.0.1 (native protocol and HTTP only), starts the server, waits until
// it answers a ping, and stops it gracefully.
//
//	srv, err := chserver.Start(ctx, chserver.Options{Logger: log})
//	if err != nil {
//		return err // carries the tail of the server's log
//	}
//	defer srv.Stop()
//	conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default"})
//
// It works with Debian's clickhouse-server 18.16 (/usr/sbin/clickhouse-server)
// and with the multi-call binary of modern releases ("clickhouse server").
// Ensure installs Debian's package when no binary is found and the process
// runs as root. Tests use the chtest subpackage.
//
// For local clusters (the test kit's), Options.Node makes a server a
// cluster node (ZooKeeper, macros, remote_servers, the distributed DDL
// queue, an interserver port), StartZooKeeper runs Debian's zookeeper
// package as a standalone server, and Server.Kill ends a node as a crash
// would.
package chserver
