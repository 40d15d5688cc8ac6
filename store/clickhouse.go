// Package store owns kaudit's ClickHouse schema: how to connect (one small
// Config shared by the sink, the migrations, the report queries and the
// dashboard), the table names, the migrations (store/migrations), and
// everything that writes the tables outside the sink: the per-minute
// rollups (Refresher) and retention (DropBefore, Retainer).
//
//	conn, err := store.Open(ctx, store.Config{Addr: "127.0.0.1:9000"})
//	if err != nil {
//		return err
//	}
//	defer conn.Close()
//	r := store.NewRefresher(conn, store.RefresherConfig{Database: "kaudit"})
//	go r.Run(ctx, 10*time.Second)
//
// The SQL kaudit sends runs on ClickHouse 18.16 (Debian's package) and on
// modern releases. On 18.16, write rows with conn.PrepareBatch and an
// explicit column list; an Exec of "INSERT ... VALUES" never returns there.
//
// On a ClickHouse cluster (Config.Cluster) the tables are Distributed
// tables under the usual names over replicated <table>_local tables on
// every node (Schema.Local); queries name them by placeholders that
// Query.For resolves for one server or a cluster, and connections opened by
// Open insert synchronously (docs/clickhouse-cluster.md).
package store

import (
	"cmp"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Defaults of Config.
const (
	DefaultAddr        = "127.0.0.1:9000"
	DefaultDatabase    = "kaudit"
	DefaultUser        = "default"
	DefaultDialTimeout = 5 * time.Second
)

// Protocols of Config.Protocol.
const (
	// ProtocolNative is ClickHouse's native TCP protocol (port 9000), the
	// default, and the one to use with ClickHouse 18.16.
	ProtocolNative = "native"
	// ProtocolHTTP is ClickHouse's HTTP interface (port 8123). The tests
	// reach the in-process 26.x engine this way.
	ProtocolHTTP = "http"
)

// Config says where ClickHouse is and how to log in. Zero fields take the
// defaults above.
type Config struct {
	// Addr is the native-protocol host:port; several may be given,
	// separated by commas.
	Addr     string
	Database string
	User     string
	Password string
	// TLS enables TLS with the system's roots (the server's secure native
	// port, 9440 by default).
	TLS         bool
	DialTimeout time.Duration
	// Protocol is ProtocolNative (the default) or ProtocolHTTP.
	Protocol string

	// Cluster is the name of the ClickHouse cluster (remote_servers) that
	// holds kaudit's tables; empty means one server. On a cluster the
	// migrations create, ON CLUSTER, Replicated*MergeTree tables named
	// <table>_local on every node and Distributed tables under the usual
	// names over them (docs/clickhouse-cluster.md), and every connection
	// inserts synchronously (insert_distributed_sync = 1: an insert
	// returns once every shard has its rows).
	Cluster string
	// ReplicaPath is the ZooKeeper path of each local table on a
	// cluster: {database} and {table} are replaced by kaudit, the
	// server's macros ({shard}, {replica}, {uuid}) by ClickHouse. Empty
	// means DefaultReplicaPath, or DefaultReplicaPathUUID on servers
	// whose databases are Atomic (20.10 and later).
	ReplicaPath string
	// DDLTimeout bounds how long a statement ON CLUSTER waits for every
	// node to run it (distributed_ddl_task_timeout; whole seconds). A node
	// that is down runs it from the distributed DDL queue when it is back.
	// Zero leaves the server's (180 s).
	DDLTimeout time.Duration
}

// Replica paths of Config.ReplicaPath.
const (
	DefaultReplicaPath     = "/clickhouse/tables/{shard}/{database}/{table}"
	DefaultReplicaPathUUID = "/clickhouse/tables/{uuid}/{shard}"
)

// LocalSuffix ends the name of a table's local part on a cluster: the
// Distributed table events reads and writes events_local on every shard.
const LocalSuffix = "_local"

// Schema says where kaudit's tables are: a database on one server, or on
// every node of a cluster.
type Schema struct {
	Database string
	// Cluster is empty for one server.
	Cluster string
}

// Schema returns where c's tables are (after defaults).
func (c Config) Schema() Schema {
	return Schema{Database: cmp.Or(c.Database, DefaultDatabase), Cluster: strings.TrimSpace(c.Cluster)}
}

// Local is the name of table's local part: table itself on one server,
// table + LocalSuffix on a cluster.
func (s Schema) Local(table string) string {
	if s.Cluster == "" {
		return table
	}
	return table + LocalSuffix
}

// OnCluster is the ON CLUSTER clause of a DDL statement on s (with a
// leading space), "" on one server.
func (s Schema) OnCluster() string {
	if s.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + QuoteIdent(s.Cluster)
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	c.Addr = cmp.Or(strings.TrimSpace(c.Addr), DefaultAddr)
	c.Database = cmp.Or(c.Database, DefaultDatabase)
	c.User = cmp.Or(c.User, DefaultUser)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.Protocol = cmp.Or(c.Protocol, ProtocolNative)
	c.Cluster = strings.TrimSpace(c.Cluster)
	return c
}

// clusterSettings are the settings of every connection to a cluster
// (integers: clickhouse-go sends 18.16 no other type).
var clusterSettings = map[string]any{
	// An insert into a Distributed table returns once every shard has
	// written its rows (or fails): the sink commits its Kafka offsets only
	// then, and retries the whole batch otherwise.
	"insert_distributed_sync": 1,
}

// Options returns the clickhouse-go options for c (after defaults).
func (c Config) Options() *clickhouse.Options {
	c = c.WithDefaults()
	var addrs []string
	for a := range strings.SplitSeq(c.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	proto := clickhouse.Native
	if c.Protocol == ProtocolHTTP {
		proto = clickhouse.HTTP
	}
	o := &clickhouse.Options{
		Protocol: proto,
		Addr:     addrs,
		Auth: clickhouse.Auth{
			Database: c.Database,
			Username: c.User,
			Password: c.Password,
		},
		DialTimeout: c.DialTimeout,
	}
	if c.Cluster != "" {
		o.Settings = clickhouse.Settings{}
		maps.Copy(o.Settings, clusterSettings)
		if c.DDLTimeout > 0 {
			o.Settings["distributed_ddl_task_timeout"] = max(int(c.DDLTimeout/time.Second), 1)
		}
	}
	if c.TLS {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o
}

// Open connects to ClickHouse and pings it. The database must exist
// (migrations.Up creates it).
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(cfg.Options())
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse: ping %s (database %q, user %q): %w", cfg.Addr, cfg.Database, cfg.User, err)
	}
	return conn, nil
}

// OpenDB returns a database/sql handle on ClickHouse (for tools such as goose
// that need one) and pings it.
//
// On ClickHouse 18.16 a database/sql connection stays unusable after the
// server returned an error on it; keep such handles to short, single-purpose
// uses.
func OpenDB(ctx context.Context, cfg Config) (*sql.DB, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	db := clickhouse.OpenDB(cfg.Options())
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("clickhouse: ping %s (database %q, user %q): %w", cfg.Addr, cfg.Database, cfg.User, err)
	}
	return db, nil
}

func (c Config) check() error {
	if c.Protocol != ProtocolNative && c.Protocol != ProtocolHTTP {
		return fmt.Errorf("clickhouse: unknown protocol %q (want %s or %s)", c.Protocol, ProtocolNative, ProtocolHTTP)
	}
	return nil
}

// QuoteIdent quotes a database or table name for use in SQL, with
// backquotes (understood by every ClickHouse version).
func QuoteIdent(name string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`")
	return "`" + r.Replace(name) + "`"
}

// QuoteString quotes s as an SQL string literal.
func QuoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// Table returns the quoted name database.table.
func Table(database, table string) string {
	return QuoteIdent(database) + "." + QuoteIdent(table)
}

// UnixSeconds is t as a ClickHouse DateTime value in seconds: 0 for the zero
// time and earlier, at most the DateTime maximum (2106).
func UnixSeconds(t time.Time) int64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return min(t.Unix(), math.MaxUint32)
}
