package store

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Query is one SQL statement kaudit sends to ClickHouse outside the
// migrations and the sink's inserts, registered by name. Its text names
// tables by placeholders ({events}, {deliveries}, {rollup}, {alerts},
// {slo_status}, {admin_audit}, {client_traffic}) that SQL replaces with the
// quoted tables of a database. Values reach it only as bound ? parameters.
//
// Every such statement is a registered Query, so that the conformance tests
// can enumerate them: they run each on ClickHouse 18.16 and 26.x over the
// same rows and fail on a registered Query they did not run, and on a
// statement they saw that is not registered.
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

// SQL is the statement for database db.
func (q *Query) SQL(db string) string {
	return strings.NewReplacer(
		"{events}", Table(db, EventsTable),
		"{deliveries}", Table(db, DeliveriesTable),
		"{rollup}", Table(db, RollupTable),
		"{alerts}", Table(db, AlertsTable),
		"{slo_status}", Table(db, SLOStatusTable),
		"{admin_audit}", Table(db, AdminAuditTable),
		"{client_traffic}", Table(db, ClientTrafficTable),
	).Replace(q.text)
}
