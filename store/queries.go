package store

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Query is one SQL statement kaudit sends to ClickHouse outside the
// migrations and the sink's inserts, registered by name. Its text names
// tables by placeholders that For replaces for a Schema:
//
//   - {events}, {deliveries}, {rollup}, {alerts}, {slo_status},
//     {admin_audit}, {client_traffic}, {lag}: the tables the product reads
//     and writes (on a cluster, the Distributed tables);
//   - {events_local}, ..., {lag_local}: their local parts (the
//     same tables on one server), for DDL such as DROP PARTITION;
//   - {on_cluster}: " ON CLUSTER `name`" on a cluster, "" on one server;
//   - {parts}: system.parts, or cluster('name', system.parts) (the parts
//     of one replica of every shard).
//
// Values reach it only as bound ? parameters.
//
// Every such statement is a registered Query, so that the conformance tests
// can enumerate them: they run each on ClickHouse 18.16 (one server and a
// cluster) and 26.x over the same rows and fail on a registered Query they
// did not run, and on a statement they saw that is not registered.
type Query struct {
	Name string
	text string
}

var registry struct {
	mu sync.Mutex
	m  map[string]*Query
}

// NewQuery registers a statement under name (unique; a duplicate panics,
// at package initialization).
func NewQuery(name, text string) *Query {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.m == nil {
		registry.m = map[string]*Query{}
	}
	if _, dup := registry.m[name]; dup {
		panic(fmt.Sprintf("store: query %q registered twice", name))
	}
	q := &Query{Name: name, text: text}
	registry.m[name] = q
	return q
}

// Queries returns every registered Query, ordered by name.
func Queries() []*Query {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	out := make([]*Query, 0, len(registry.m))
	for _, q := range registry.m {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b *Query) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SQL is the statement for database db on one server.
func (q *Query) SQL(db string) string { return q.For(Schema{Database: db}) }

// For is the statement for the tables of s.
func (q *Query) For(s Schema) string {
	pairs := []string{"{on_cluster}", s.OnCluster(), "{parts}", "system.parts"}
	if s.Cluster != "" {
		pairs[3] = "cluster(" + QuoteString(s.Cluster) + ", system.parts)"
	}
	for _, t := range placeholders {
		pairs = append(pairs, "{"+t.name+"}", Table(s.Database, t.table), "{"+t.name+"_local}", Table(s.Database, s.Local(t.table)))
	}
	return strings.NewReplacer(pairs...).Replace(q.text)
}

// placeholders name kaudit's tables in a Query's text.
var placeholders = []struct{ name, table string }{
	{"events", EventsTable}, {"deliveries", DeliveriesTable}, {"rollup", RollupTable},
	{"alerts", AlertsTable}, {"slo_status", SLOStatusTable},
	{"admin_audit", AdminAuditTable}, {"client_traffic", ClientTrafficTable},
	{"lag", LagTable},
}
