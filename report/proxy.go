package report

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/store"
)

// The statements behind the Clients and Admin audit pages and `kaudit
// report --clients/--admin`.
var (
	qClientFlows = store.NewQuery("report.clients.flows", `SELECT topic, principal, client_id, consumer_group,
	       if(api = 'Produce', 'produce', 'consume') AS direction,
	       sum(records), sum(bytes), sum(requests), sum(errors), uniqExact(toStartOfMinute(window_start))
	FROM {client_traffic} FINAL
	WHERE topic != '' AND api IN ('Produce', 'Fetch', 'ShareFetch')
	  AND window_start >= toDateTime(?) AND window_start < toDateTime(?)
	  AND (? = '' OR topic = ?) AND (? = '' OR principal = ?)
	GROUP BY topic, principal, client_id, consumer_group, direction
	ORDER BY topic, direction DESC, sum(records) DESC, principal, client_id, consumer_group
	LIMIT 1000`)
	qTopicMinutes = store.NewQuery("report.clients.topic_minutes", `SELECT toStartOfMinute(window_start) AS m, topic,
	       sumIf(records, api = 'Produce'), sumIf(records, api != 'Produce'),
	       sumIf(bytes, api = 'Produce'), sumIf(bytes, api != 'Produce')
	FROM {client_traffic} FINAL
	WHERE topic != '' AND api IN ('Produce', 'Fetch', 'ShareFetch')
	  AND window_start >= toDateTime(?) AND window_start < toDateTime(?)
	  AND (? = '' OR topic = ?) AND (? = '' OR principal = ?)
	GROUP BY m, topic
	ORDER BY m, topic`)
	qAdminAudit = store.NewQuery("report.admin_audit", `SELECT event_time, method, operation, resource_type, resource_name, pattern_type,
	       principal, client_address, client_id, allowed, error, detail
	FROM {admin_audit} FINAL
	WHERE event_time >= toDateTime(?) AND event_time < toDateTime(?)
	  AND (? = '' OR principal = ?) AND (? = '' OR method = ?) AND (? = '' OR resource_name = ?)
	  AND (? = 0 OR allowed = 0)
	ORDER BY event_time DESC, event_id, resource_index
	LIMIT ?`)
)

// ClientFilter selects kaudit-proxy traffic: windows starting in [Since,
// Until) (zero Until: open-ended), of Topic and Principal when they are not
// empty.
type ClientFilter struct {
	Since, Until     time.Time
	Topic, Principal string
}

func (f ClientFilter) bounds() (from, to int64) {
	return Filter{Since: f.Since, Until: f.Until}.bounds()
}

// ClientFlow is one client's Produce or Fetch traffic on one topic over
// the filter's range (from the per-minute traffic table).
type ClientFlow struct {
	Topic     string
	Principal string
	ClientID  string
	Group     string
	// Direction is "produce" or "consume".
	Direction string
	Records   uint64
	Bytes     uint64
	Requests  uint64
	Errors    uint64
	Minutes   uint64 // distinct minutes with traffic
}

// ClientFlows returns who produces to and consumes from which topic, by
// topic, direction and records (most first).
func ClientFlows(ctx context.Context, conn driver.Conn, db string, f ClientFilter) ([]ClientFlow, error) {
	from, to := f.bounds()
	return queryAll(ctx, conn, "client flows", qClientFlows.SQL(db), []any{from, to, f.Topic, f.Topic, f.Principal, f.Principal},
		func(rows driver.Rows, c *ClientFlow) error {
			return rows.Scan(&c.Topic, &c.Principal, &c.ClientID, &c.Group, &c.Direction, &c.Records, &c.Bytes, &c.Requests, &c.Errors, &c.Minutes)
		})
}

// TopicMinute is one topic's produced and consumed traffic in one minute.
type TopicMinute struct {
	Minute                           time.Time
	Topic                            string
	ProducedRecords, ConsumedRecords uint64
	ProducedBytes, ConsumedBytes     uint64
}

// TopicMinutes returns the per-minute traffic of each topic, by minute.
func TopicMinutes(ctx context.Context, conn driver.Conn, db string, f ClientFilter) ([]TopicMinute, error) {
	from, to := f.bounds()
	return queryAll(ctx, conn, "topic minutes", qTopicMinutes.SQL(db), []any{from, to, f.Topic, f.Topic, f.Principal, f.Principal},
		func(rows driver.Rows, m *TopicMinute) error {
			return rows.Scan(&m.Minute, &m.Topic, &m.ProducedRecords, &m.ConsumedRecords, &m.ProducedBytes, &m.ConsumedBytes)
		})
}

// AuditFilter selects admin audit rows: events in [Since, Until), of
// Principal, Method and Resource (name) when not empty, only denied ones
// with Denied; at most Limit (default 200), newest first.
type AuditFilter struct {
	Since, Until                time.Time
	Principal, Method, Resource string
	Denied                      bool
	Limit                       int
}

// AuditRow is one resource of one audited request.
type AuditRow struct {
	Time          time.Time
	Method        string
	Operation     string
	ResourceType  string
	ResourceName  string
	PatternType   string
	Principal     string
	ClientAddress string
	ClientID      string
	Allowed       bool
	Error         string
	Detail        string
}

// AdminAudit returns who did what, allowed or denied.
func AdminAudit(ctx context.Context, conn driver.Conn, db string, f AuditFilter) ([]AuditRow, error) {
	from := store.UnixSeconds(f.Since)
	to := int64(1<<32 - 1)
	if !f.Until.IsZero() {
		to = store.UnixSeconds(f.Until)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 200
	}
	deniedOnly := uint8(0)
	if f.Denied {
		deniedOnly = 1
	}
	args := []any{from, to, f.Principal, f.Principal, f.Method, f.Method, f.Resource, f.Resource, deniedOnly, limit}
	return queryAll(ctx, conn, "admin audit", qAdminAudit.SQL(db), args, func(rows driver.Rows, a *AuditRow) error {
		var allowed uint8
		if err := rows.Scan(&a.Time, &a.Method, &a.Operation, &a.ResourceType, &a.ResourceName, &a.PatternType,
			&a.Principal, &a.ClientAddress, &a.ClientID, &allowed, &a.Error, &a.Detail); err != nil {
			return err
		}
		a.Allowed = allowed == 1
		return nil
	})
}

// FormatBytes renders a byte count: "512 B", "1.5 KiB", "12.0 MiB".
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// FormatClientFlows prints the client traffic table.
func FormatClientFlows(w io.Writer, rows []ClientFlow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tDIRECTION\tPRINCIPAL\tCLIENT ID\tGROUP\tRECORDS\tBYTES\tRECORDS/MIN\tERRORS")
	for _, r := range rows {
		perMin := float64(r.Records)
		if r.Minutes > 0 {
			perMin /= float64(r.Minutes)
		}
		group := r.Group
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.0f\t%d\n", r.Topic, r.Direction, r.Principal, r.ClientID, group,
			r.Records, FormatBytes(r.Bytes), perMin, r.Errors)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no client traffic recorded by kaudit-proxy)")
	}
	return tw.Flush()
}

// FormatAdminAudit prints the admin audit table.
func FormatAdminAudit(w io.Writer, rows []AuditRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tPRINCIPAL\tMETHOD\tOPERATION\tRESOURCE\tOUTCOME\tCLIENT")
	for _, r := range rows {
		outcome := "allowed"
		if !r.Allowed {
			outcome = "DENIED"
		}
		if r.Error != "" {
			outcome += " " + r.Error
		}
		res := r.ResourceType + ":" + r.ResourceName
		if r.PatternType != "" && r.PatternType != "LITERAL" {
			res += " (" + r.PatternType + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s %s\n", r.Time.UTC().Format(time.DateTime), r.Principal, r.Method,
			r.Operation, res, outcome, r.ClientID, r.ClientAddress)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no admin operations audited by kaudit-proxy)")
	}
	return tw.Flush()
}
