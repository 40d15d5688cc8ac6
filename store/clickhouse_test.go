package store_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/store"
)

func TestWithDefaults(t *testing.T) {
	c := store.Config{}.WithDefaults()
	if c.Addr != store.DefaultAddr || c.Database != store.DefaultDatabase || c.User != store.DefaultUser || c.DialTimeout != store.DefaultDialTimeout ||
		c.Protocol != store.ProtocolNative {
		t.Errorf("defaults not applied: %+v", c)
	}
	set := store.Config{Addr: "h:1", Database: "d", User: "u", Password: "p", DialTimeout: time.Second, Protocol: store.ProtocolHTTP}
	if got := set.WithDefaults(); got != set {
		t.Errorf("WithDefaults changed set fields: %+v", got)
	}
	o := store.Config{Addr: " a:1, b:2 ,", TLS: true}.Options()
	if len(o.Addr) != 2 || o.Addr[0] != "a:1" || o.Addr[1] != "b:2" || o.TLS == nil {
		t.Errorf("Options: addrs %q, TLS %v", o.Addr, o.TLS)
	}
	if _, err := store.Open(context.Background(), store.Config{Protocol: "grpc"}); err == nil || !strings.Contains(err.Error(), "grpc") {
		t.Errorf("Open with an unknown protocol: %v", err)
	}
}

func TestOpenAndQuoteIdent(t *testing.T) {
	srv := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Names with quotes, backquotes and backslashes survive quoting.
	name := chtest.NewDatabase(t).Database + "_we`ird\\'name"
	if err := conn.Exec(ctx, "CREATE DATABASE "+store.QuoteIdent(name)); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+store.QuoteIdent(name))
	if err := conn.Exec(ctx, "CREATE TABLE "+store.Table(name, "t`1")+" (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", name, "t`1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("table t`1 in %q: count %d, %v", name, n, err)
	}

	// The database/sql handle reaches the same database.
	db, err := store.OpenDB(ctx, store.Config{Addr: srv.Addr(), Database: name})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var cur string
	if err := db.QueryRowContext(ctx, "SELECT currentDatabase()").Scan(&cur); err != nil || cur != name {
		t.Errorf("OpenDB current database %q (%v), want %q", cur, err, name)
	}
}

func TestOpenErrors(t *testing.T) {
	srv := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	missing := chtest.NewDatabase(t).Database + "_missing"
	if conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: missing}); err == nil {
		conn.Close()
		t.Error("Open of a missing database succeeded")
	} else if !strings.Contains(err.Error(), missing) {
		t.Errorf("error does not name the database: %v", err)
	}

	// A port nobody listens on fails fast.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	began := time.Now()
	if conn, err := store.Open(ctx, store.Config{Addr: addr, DialTimeout: time.Second}); err == nil {
		conn.Close()
		t.Error("Open of a closed port succeeded")
	} else if !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name the address: %v", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("Open of a closed port took %s", d)
	}
	if db, err := store.OpenDB(ctx, store.Config{Addr: addr, DialTimeout: time.Second}); err == nil {
		db.Close()
		t.Error("OpenDB of a closed port succeeded")
	}
}
