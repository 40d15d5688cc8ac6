package clickhouse

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// adminColumns is the insert column list of the admin audit table, in the
// order appendAdmin appends; inserted_at takes its default.
var adminColumns = []string{
	"event_time", "event_id", "resource_index", "method", "api_key", "api_version",
	"operation", "resource_type", "resource_name", "pattern_type",
	"principal", "client_address", "client_id", "consumer_group",
	"allowed", "error_code", "error", "detail", "broker", "cluster_id", "proxy",
}

// trafficColumns is the insert column list of the client traffic table.
var trafficColumns = []string{
	"window_start", "window_end", "proxy", "instance",
	"principal", "client_id", "client_address", "consumer_group", "topic", "api_key", "api",
	"requests", "errors", "records", "bytes", "request_bytes", "response_bytes",
}

// writeProxy inserts kaudit-proxy's admin audit rows and traffic records.
func (s *Sink) writeProxy(ctx context.Context, b *sinks.Batch) error {
	if len(b.Admin) > 0 {
		err := s.insert(ctx, store.Table(s.database, store.AdminAuditTable), store.AdminAuditTable, adminColumns, len(b.Admin),
			func(batch driver.Batch, i int) error { return appendAdmin(batch, &b.Admin[i]) })
		if err != nil {
			return err
		}
	}
	if len(b.Traffic) > 0 {
		err := s.insert(ctx, store.Table(s.database, store.ClientTrafficTable), store.ClientTrafficTable, trafficColumns, len(b.Traffic),
			func(batch driver.Batch, i int) error { return appendTraffic(batch, &b.Traffic[i]) })
		if err != nil {
			return err
		}
	}
	return nil
}

func appendAdmin(batch driver.Batch, a *sinks.AdminRow) error {
	e, r := &a.Event, &a.Resource
	return batch.Append(
		dateTime(e.Time.UnixNano()), e.ID, uint16(a.ResourceIndex), e.Method, e.APIKey, e.APIVersion,
		r.Operation, r.Type, r.Name, r.PatternType,
		e.Principal, e.ClientAddr, e.ClientID, e.Group,
		uint8Of(r.Allowed), r.ErrorCode, r.Error, r.Detail, e.Broker, e.ClusterID, e.Proxy,
	)
}

func nonNegative(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func appendTraffic(batch driver.Batch, t *traffic.Record) error {
	return batch.Append(
		dateTime(t.WindowStart.UnixNano()), dateTime(t.WindowEnd.UnixNano()), t.Proxy, t.Instance,
		t.Principal, t.ClientID, t.ClientAddress, t.Group, t.Topic, t.APIKey, t.API,
		nonNegative(t.Requests), nonNegative(t.Errors), nonNegative(t.Records), nonNegative(t.Bytes),
		nonNegative(t.RequestBytes), nonNegative(t.ResponseBytes),
	)
}
