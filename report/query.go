package report

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// queryAll runs sql with args and returns every row, each scanned into a
// new T by scan; errors say what was being read ("report: what: ...").
func queryAll[T any](ctx context.Context, conn driver.Conn, what, sql string, args []any, scan func(driver.Rows, *T) error) ([]T, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("report: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, fmt.Errorf("report: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: %s: %w", what, err)
	}
	return out, nil
}
