package chdb_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/kaudit/kaudit/internal/chdb"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/store"
)

var srv *chdb.Server

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		if err := srv.Stop(); err != nil && code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func start(t *testing.T) *chdb.Server {
	t.Helper()
	itest.Integration(t)
	if srv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var err error
		if srv, err = chdb.Start(ctx, chdb.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// Through clickhouse-go over HTTP: DDL, a batch insert (PrepareBatch with
// a column list, as the sink writes), a query with bound ? parameters,
// and a server error.
func TestClickHouseGoOverHTTP(t *testing.T) {
	s := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := store.Open(ctx, store.Config{Addr: s.Addr(), Protocol: store.ProtocolHTTP, Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	v, err := admin.ServerVersion()
	if err != nil || v.Version.Major < 26 {
		t.Fatalf("server version %+v, %v; want 26.x", v, err)
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `we'ird`"); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, store.Config{Addr: s.Addr(), Protocol: store.ProtocolHTTP, Database: "we'ird"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE TABLE t (id String, n Int64, at DateTime, xs Array(Float64)) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO t (id, n, at, xs)")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ids := []string{"a", `it's \ "x"`, "c"}
	for i, id := range ids {
		if err := b.Append(id, int64(i*10), at.Add(time.Duration(i)*time.Minute), []float64{float64(i), 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	var n uint64
	var sum int64
	var last time.Time
	err = conn.QueryRow(ctx, "SELECT count(), sum(n), max(at) FROM t WHERE id != ? AND at >= toDateTime(?) AND has(?, id)",
		"c", at.Unix(), []string{"a", ids[1], "c"}).Scan(&n, &sum, &last)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || sum != 10 || !last.Equal(at.Add(time.Minute)) {
		t.Errorf("count %d sum %d max(at) %s; want 2, 10, %s", n, sum, last, at.Add(time.Minute))
	}
	rows, err := conn.Query(ctx, "SELECT id, xs FROM t ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id string
		var xs []float64
		if err := rows.Scan(&id, &xs); err != nil {
			t.Fatal(err)
		}
		if len(xs) != 2 || xs[1] != 0.5 {
			t.Errorf("xs of %s = %v", id, xs)
		}
		got = append(got, id)
	}
	rows.Close()
	if strings.Join(got, "|") != strings.Join(ids, "|") {
		t.Errorf("ids %q, want %q", got, ids)
	}
	err = conn.Exec(ctx, "SELECT * FROM no_such_table")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 60 {
		t.Errorf("query of a missing table: %v; want exception code 60", err)
	}
	// A missing database fails like on a server.
	if c, err := store.Open(ctx, store.Config{Addr: s.Addr(), Protocol: store.ProtocolHTTP, Database: "nope_db"}); err == nil {
		c.Close()
		t.Error("Open of a missing database succeeded")
	}

	// database/sql, as goose uses it: $1 parameters.
	db, err := store.OpenDB(ctx, store.Config{Addr: s.Addr(), Protocol: store.ProtocolHTTP, Database: "we'ird"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "INSERT INTO t (id, n) SELECT $1, $2", "d", 7); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT n FROM t WHERE id = $1", "d").Scan(&sum); err != nil || sum != 7 {
		t.Errorf("database/sql read back %d, %v", sum, err)
	}
}
