package migrations

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every embedded migration has a cluster form: each statement ON CLUSTER,
// each table replicated and behind a Distributed table with a sharding
// key, and goose parses the rewritten file into the same two directions.
func TestEveryMigrationRunsOnACluster(t *testing.T) {
	spec := clusterSpec{database: "kdb", cluster: "kc", replicaPath: "/clickhouse/tables/{shard}/{database}/{table}"}
	cfs := clusterFS{base: files, spec: spec}
	names, err := fs.Glob(files, "*.sql")
	if err != nil || len(names) < 8 {
		t.Fatalf("%d migrations (%v)", len(names), err)
	}
	stmtRe := regexp.MustCompile(`(?m)^(CREATE|DROP|ALTER)\b`)
	for _, name := range names {
		out, err := fs.ReadFile(cfs, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text := string(out)
		if os.Getenv("KAUDIT_SHOW_CLUSTER_SQL") != "" {
			t.Logf("%s:\n%s", name, text)
		}
		if !strings.HasPrefix(text, "-- +goose NO TRANSACTION") || !strings.Contains(text, "-- +goose Up") || !strings.Contains(text, "-- +goose Down") {
			t.Errorf("%s lost its annotations:\n%s", name, text)
		}
		stmts := stmtRe.FindAllStringIndex(text, -1)
		if n := strings.Count(text, " ON CLUSTER `kc`"); n != len(stmts) || n == 0 {
			t.Errorf("%s: %d statements, %d ON CLUSTER", name, len(stmts), n)
		}
		if strings.Contains(text, "ENGINE = ReplacingMergeTree") || strings.Contains(text, "ENGINE = MergeTree") {
			t.Errorf("%s: a table is not replicated:\n%s", name, text)
		}
		creates := strings.Count(text, "CREATE TABLE IF NOT EXISTS `kdb`.`")
		dist := strings.Count(text, "ENGINE = Distributed('kc', 'kdb', '")
		repl := strings.Count(text, "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/kdb/")
		alters := strings.Count(text, "ALTER TABLE `kdb`.`")
		if creates != dist+repl || dist != repl+alters || dist == 0 {
			t.Errorf("%s: %d tables created: %d replicated, %d Distributed; %d altered:\n%s", name, creates, repl, dist, alters, text)
		}
	}
}

// Statements without a cluster form, and tables without a sharding key,
// are refused.
func TestClusterRewriteRefusesUnknownStatements(t *testing.T) {
	spec := clusterSpec{database: "kdb", cluster: "kc", replicaPath: "/p/{table}"}
	for _, stmt := range []string{
		"INSERT INTO events SELECT 1",
		"CREATE TABLE IF NOT EXISTS mystery (a UInt8) ENGINE = MergeTree ORDER BY a",
		"ALTER TABLE mystery ADD COLUMN b UInt8",
		"CREATE MATERIALIZED VIEW v AS SELECT 1",
		"RENAME TABLE a TO b",
	} {
		if out, err := spec.rewriteStatement(stmt); err == nil {
			t.Errorf("%q rewritten to %q", stmt, out)
		}
	}
	if _, err := spec.rewriteFile("x.sql", []byte("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose StatementEnd\n")); err == nil {
		t.Error("StatementBegin accepted")
	}
}
