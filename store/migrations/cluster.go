package migrations

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"

	"github.com/kaudit/kaudit/store"
)

// On a cluster the migration files are rewritten as goose reads them
// (clusterFS), statement by statement:
//
//   - CREATE TABLE IF NOT EXISTS t (...) ENGINE = XMergeTree(args) ... becomes
//     CREATE TABLE IF NOT EXISTS t_local ON CLUSTER c (...) ENGINE =
//     ReplicatedXMergeTree('<replica path>', '{replica}', args) ... and
//     CREATE TABLE IF NOT EXISTS t ON CLUSTER c AS t_local ENGINE =
//     Distributed(c, db, t_local, <sharding key of t>);
//   - DROP TABLE IF EXISTS t drops both, ON CLUSTER;
//   - ALTER TABLE t ... alters t_local ON CLUSTER (ClickHouse runs it on one
//     replica per shard and replicates it), then recreates t over it
//     (a Distributed table holds no rows; ClickHouse 18.16 cannot ALTER
//     one ON CLUSTER when the shards replicate internally).
//
// Any other statement is an error: a new migration's statement shape, or a
// table without a sharding key below, is refused on clusters (a test
// rewrites every embedded file).

// ShardingKeys are the Distributed tables' sharding keys. Every row that
// ReplacingMergeTree must collapse with another (a version of a delivery,
// an event written twice) has the same key, hence the same shard, so FINAL
// on each shard is exact:
//
//   - events and deliveries by correlation ID: all events, verdict
//     versions and consumer groups of a message on one shard (the trail of
//     a message is read from one shard);
//   - deliveries_1m by topic, consumer group and minute: each recomputation
//     of a minute replaces the previous one on its shard;
//   - alerts, slo_status, admin_audit and client_traffic_1m by their
//     sorting key (admin_audit's event ID): each version of a row on one
//     shard;
//   - consumer_lag_1m by topic, consumer group and minute: a repeated
//     report on the shard of the first, and all instances' reports of a
//     group's minute together.
var ShardingKeys = map[string]string{
	store.EventsTable:        "cityHash64(correlation_id)",
	store.DeliveriesTable:    "cityHash64(correlation_id)",
	store.RollupTable:        "cityHash64(topic, consumer_group, minute)",
	store.AlertsTable:        "cityHash64(topic, consumer_group, slo, severity, id)",
	store.SLOStatusTable:     "cityHash64(topic, consumer_group, slo)",
	store.AdminAuditTable:    "cityHash64(event_id)",
	store.ClientTrafficTable: "cityHash64(topic, principal, client_id, client_address, consumer_group, api_key, window_start, instance)",
	store.LagTable:           "cityHash64(topic, consumer_group, minute)",
}

// clusterSpec is what the rewriting needs to know.
type clusterSpec struct {
	database, cluster string
	// replicaPath is the ZooKeeper path template ({database} and {table}
	// still in it).
	replicaPath string
}

func (c clusterSpec) onCluster() string { return " ON CLUSTER " + store.QuoteIdent(c.cluster) }

// path is the ZooKeeper path of table.
func (c clusterSpec) path(table string) string {
	return strings.NewReplacer("{database}", c.database, "{table}", table).Replace(c.replicaPath)
}

// versionPath is the ZooKeeper path of the version table: one table for
// the whole cluster (every node a replica of it, named {shard}-{replica}),
// so each version is recorded once.
func (c clusterSpec) versionPath() string {
	return strings.ReplaceAll(c.path(VersionTable), "{shard}", "all")
}

var (
	createRe = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\s*\((.*)\)\s*ENGINE\s*=\s*(\w*MergeTree)\s*(?:\(([^()]*)\))?(.*)$`)
	dropRe   = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+IF\s+EXISTS\s+(\w+)$`)
	alterRe  = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+(\w+)\s+(.*)$`)
)

// rewriteStatement returns the statements that run stmt (without its
// semicolon) on the cluster.
func (c clusterSpec) rewriteStatement(stmt string) ([]string, error) {
	stmt = strings.TrimSpace(stmt)
	// Names are qualified: a node runs a statement ON CLUSTER in its
	// default database, but for the statement's own table.
	q := func(t string) string { return store.Table(c.database, t) }
	oc := c.onCluster()
	distributed := func(t string) (string, error) {
		key, ok := ShardingKeys[t]
		if !ok {
			return "", fmt.Errorf("table %s has no sharding key (migrations.ShardingKeys)", t)
		}
		return "CREATE TABLE IF NOT EXISTS " + q(t) + oc + " AS " + q(t+store.LocalSuffix) +
			" ENGINE = Distributed(" + store.QuoteString(c.cluster) + ", " + store.QuoteString(c.database) + ", " +
			store.QuoteString(t+store.LocalSuffix) + ", " + key + ")", nil
	}
	switch {
	case createRe.MatchString(stmt):
		m := createRe.FindStringSubmatch(stmt)
		t, cols, engine, args, rest := m[1], m[2], m[3], strings.TrimSpace(m[4]), m[5]
		local := t + store.LocalSuffix
		repl := store.QuoteString(c.path(local)) + ", '{replica}'"
		if args != "" {
			repl += ", " + args
		}
		d, err := distributed(t)
		if err != nil {
			return nil, err
		}
		return []string{
			"CREATE TABLE IF NOT EXISTS " + q(local) + oc + " (" + cols + ") ENGINE = Replicated" + engine + "(" + repl + ")\n" + strings.TrimSpace(rest),
			d,
		}, nil
	case dropRe.MatchString(stmt):
		t := dropRe.FindStringSubmatch(stmt)[1]
		return []string{
			"DROP TABLE IF EXISTS " + q(t) + oc,
			"DROP TABLE IF EXISTS " + q(t+store.LocalSuffix) + oc,
		}, nil
	case alterRe.MatchString(stmt):
		m := alterRe.FindStringSubmatch(stmt)
		t := m[1]
		d, err := distributed(t)
		if err != nil {
			return nil, err
		}
		return []string{
			"ALTER TABLE " + q(t+store.LocalSuffix) + oc + " " + m[2],
			"DROP TABLE IF EXISTS " + q(t) + oc,
			d,
		}, nil
	}
	return nil, fmt.Errorf("no cluster form for statement %.60q", stmt)
}

// rewriteFile rewrites the statements of a goose SQL file, keeping its
// annotations and comments. A statement ends at a line ending with a
// semicolon (goose's rule outside StatementBegin/End, which kaudit's files
// do not use).
func (c clusterSpec) rewriteFile(name string, src []byte) ([]byte, error) {
	var out bytes.Buffer
	var stmt []string
	for line := range strings.Lines(string(src)) {
		trimmed := strings.TrimSpace(line)
		if len(stmt) == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			if strings.HasPrefix(trimmed, "-- +goose Statement") {
				return nil, fmt.Errorf("migrations: %s: StatementBegin/End has no cluster form", name)
			}
			out.WriteString(line)
			continue
		}
		stmt = append(stmt, strings.TrimRight(line, "\n"))
		if !strings.HasSuffix(trimmed, ";") {
			continue
		}
		text := strings.TrimSuffix(strings.TrimSpace(strings.Join(stmt, "\n")), ";")
		stmt = nil
		rewritten, err := c.rewriteStatement(text)
		if err != nil {
			return nil, fmt.Errorf("migrations: %s on a cluster: %w", name, err)
		}
		for _, r := range rewritten {
			out.WriteString(r + ";\n")
		}
	}
	if len(stmt) > 0 {
		return nil, fmt.Errorf("migrations: %s: statement without a final semicolon", name)
	}
	return out.Bytes(), nil
}

// clusterFS serves the migration files of base rewritten for a cluster.
type clusterFS struct {
	base fs.FS
	spec clusterSpec
}

var _ fs.ReadDirFS = clusterFS{}

func (c clusterFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(c.base, name) }

func (c clusterFS) Open(name string) (fs.File, error) {
	if !strings.HasSuffix(name, ".sql") {
		return c.base.Open(name)
	}
	src, err := fs.ReadFile(c.base, name)
	if err != nil {
		return nil, err
	}
	out, err := c.spec.rewriteFile(name, src)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	fi, err := fs.Stat(c.base, name)
	if err != nil {
		return nil, err
	}
	return &memFile{Reader: bytes.NewReader(out), info: memInfo{FileInfo: fi, size: int64(len(out))}}, nil
}

type memFile struct {
	*bytes.Reader
	info memInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

var _ io.ReadSeeker = (*memFile)(nil)

type memInfo struct {
	fs.FileInfo
	size int64
}

func (i memInfo) Size() int64 { return i.size }
