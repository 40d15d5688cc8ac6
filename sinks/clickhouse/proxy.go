package clickhouse

import (
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// AdminAudit is kaudit-proxy's admin audit table: one row per resource of
// an audited request; inserted_at takes its default.
var AdminAudit = &Table[sinks.AdminRow]{Name: store.AdminAuditTable, Columns: []Column[sinks.AdminRow]{
	DateTime("event_time", func(a *sinks.AdminRow) int64 { return a.Event.Time.UnixNano() }),
	String("event_id", func(a *sinks.AdminRow) string { return a.Event.ID }),
	Int("resource_index", func(a *sinks.AdminRow) uint16 { return uint16(a.ResourceIndex) }),
	String("method", func(a *sinks.AdminRow) string { return a.Event.Method }),
	Int("api_key", func(a *sinks.AdminRow) int16 { return a.Event.APIKey }),
	Int("api_version", func(a *sinks.AdminRow) int16 { return a.Event.APIVersion }),
	String("operation", func(a *sinks.AdminRow) string { return a.Resource.Operation }),
	String("resource_type", func(a *sinks.AdminRow) string { return a.Resource.Type }),
	String("resource_name", func(a *sinks.AdminRow) string { return a.Resource.Name }),
	String("pattern_type", func(a *sinks.AdminRow) string { return a.Resource.PatternType }),
	String("principal", func(a *sinks.AdminRow) string { return a.Event.Principal }),
	String("client_address", func(a *sinks.AdminRow) string { return a.Event.ClientAddr }),
	String("client_id", func(a *sinks.AdminRow) string { return a.Event.ClientID }),
	String("consumer_group", func(a *sinks.AdminRow) string { return a.Event.Group }),
	Bool("allowed", func(a *sinks.AdminRow) bool { return a.Resource.Allowed }),
	Int("error_code", func(a *sinks.AdminRow) int16 { return a.Resource.ErrorCode }),
	String("error", func(a *sinks.AdminRow) string { return a.Resource.Error }),
	String("detail", func(a *sinks.AdminRow) string { return a.Resource.Detail }),
	Int("broker", func(a *sinks.AdminRow) int32 { return a.Event.Broker }),
	String("cluster_id", func(a *sinks.AdminRow) string { return a.Event.ClusterID }),
	String("proxy", func(a *sinks.AdminRow) string { return a.Event.Proxy }),
}}

// ClientTraffic is kaudit-proxy's per-minute client traffic table.
var ClientTraffic = &Table[traffic.Record]{Name: store.ClientTrafficTable, Columns: []Column[traffic.Record]{
	DateTime("window_start", func(t *traffic.Record) int64 { return t.WindowStart.UnixNano() }),
	DateTime("window_end", func(t *traffic.Record) int64 { return t.WindowEnd.UnixNano() }),
	String("proxy", func(t *traffic.Record) string { return t.Proxy }),
	String("instance", func(t *traffic.Record) string { return t.Instance }),
	String("principal", func(t *traffic.Record) string { return t.Principal }),
	String("client_id", func(t *traffic.Record) string { return t.ClientID }),
	String("client_address", func(t *traffic.Record) string { return t.ClientAddress }),
	String("consumer_group", func(t *traffic.Record) string { return t.Group }),
	String("topic", func(t *traffic.Record) string { return t.Topic }),
	Int("api_key", func(t *traffic.Record) int16 { return t.APIKey }),
	String("api", func(t *traffic.Record) string { return t.API }),
	Int("requests", func(t *traffic.Record) uint64 { return nonNegative(t.Requests) }),
	Int("errors", func(t *traffic.Record) uint64 { return nonNegative(t.Errors) }),
	Int("records", func(t *traffic.Record) uint64 { return nonNegative(t.Records) }),
	Int("bytes", func(t *traffic.Record) uint64 { return nonNegative(t.Bytes) }),
	Int("request_bytes", func(t *traffic.Record) uint64 { return nonNegative(t.RequestBytes) }),
	Int("response_bytes", func(t *traffic.Record) uint64 { return nonNegative(t.ResponseBytes) }),
}}

func nonNegative(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}
