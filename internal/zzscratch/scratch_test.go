package zzscratch

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/internal/chdb"
	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/store"
)

func run(conn driver.Conn, q string) string {
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		return "ERR " + err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		dest := make([]any, len(rows.ColumnTypes()))
		for i, ct := range rows.ColumnTypes() {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return "SCANERR " + err.Error()
		}
		for _, d := range dest {
			fmt.Fprintf(&b, "%v\t", reflect.ValueOf(d).Elem().Interface())
		}
		b.WriteString("\n")
	}
	if err := rows.Err(); err != nil {
		b.WriteString("ERR " + err.Error())
	}
	types := []string{}
	for _, ct := range rows.ColumnTypes() {
		types = append(types, ct.DatabaseTypeName())
	}
	return strings.Join(types, ",") + "\n" + b.String()
}

func TestScratch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	old, err := chserver.Start(ctx, chserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Stop()
	nw, err := chdb.Start(ctx, chdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	c1, err := store.Open(ctx, store.Config{Addr: old.Addr(), Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := store.Open(ctx, store.Config{Addr: nw.Addr(), Database: "default", Protocol: store.ProtocolHTTP})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile("/tmp/q.sql")
	for _, q := range strings.Split(string(raw), ";;\n") {
		if strings.TrimSpace(q) == "" {
			continue
		}
		fmt.Printf("=== %s\n--18.16: %s--26.x:  %s\n", q, run(c1, q), run(c2, q))
	}
}
