package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/doccmd"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/store"
)

// TestClusterDoc runs the commands of docs/clickhouse-cluster.md (and the
// cluster line of deploy/README.md) against a ClickHouse cluster of two
// 18.16 servers and a kfake broker (their addresses substituted, cluster
// "kaudit" being the test kit's two-shard cluster): migrate creates the
// Distributed and replicated tables on both nodes, the sink stores
// verdicts through them on both shards, the report counts them, the
// retention dry run lists the old day, and the compose profile is valid.
func TestClusterDoc(t *testing.T) {
	itest.Need(t, "docker-compose")
	root := moduleRoot(t)
	const doc = "docs/clickhouse-cluster.md"
	const addrs = "ch-1:9000,ch-2:9000"
	cmds := []string{
		doccmd.Line(t, doc, "kaudit migrate --cluster kaudit --clickhouse-addr "+addrs),
		doccmd.Line(t, doc, "kaudit-sink --brokers kafka:9092 --clickhouse-cluster kaudit --clickhouse-addr "+addrs),
		doccmd.Line(t, doc, "kaudit report --cluster kaudit --clickhouse-addr "+addrs+" --since 1h"),
		doccmd.Line(t, doc, "kaudit retention --cluster kaudit --clickhouse-addr "+addrs+" --keep 30d --dry-run"),
	}
	bins := buildBinaries(t, root)
	ch := chtest.StartCluster(t)
	k, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	args := func(cmd string) []string {
		a := strings.Fields(strings.NewReplacer(addrs, ch.Addr(), "kafka:9092", k.ListenAddrs()[0]).Replace(cmd))
		for i := range a {
			if i > 0 && (a[i-1] == "--cluster" || a[i-1] == "--clickhouse-cluster") && a[i] == "kaudit" {
				a[i] = chtest.ShardedCluster
			}
		}
		a[0] = bins[a[0]]
		return a
	}
	output := func(cmd string) string {
		t.Helper()
		a := args(cmd)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, a[0], a[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	ctx := context.Background()
	const db = store.DefaultDatabase

	// 1. The schema, on both nodes.
	output(cmds[0])
	for i := range chtest.ClusterNodes {
		node := chtest.Open(t, store.Config{Addr: ch.NodeAddr(i), Database: db})
		var engines string
		if err := node.QueryRow(ctx, "SELECT arrayStringConcat(groupArray(concat(name, ':', engine)), ' ') FROM (SELECT name, engine FROM system.tables WHERE database = ? AND name LIKE 'deliveries%' ORDER BY name)", db).Scan(&engines); err != nil {
			t.Fatal(err)
		}
		if want := "deliveries:Distributed deliveries_1m:Distributed deliveries_1m_local:ReplicatedReplacingMergeTree deliveries_local:ReplicatedReplacingMergeTree"; engines != want {
			t.Errorf("node %d: %s, want %s", i, engines, want)
		}
	}

	// 2. The sink, with 100 recent verdicts (10 lost) and 5 of 40 days ago.
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.ListenAddrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	old := time.Now().AddDate(0, 0, -40)
	for i := range 105 {
		v := &codecs.Verdict{Version: codecs.SchemaVersion, CorrelationID: fmt.Sprintf("doc-%03d", i), Topic: "orders", Group: "billing",
			Status: codecs.StatusDelivered, Seq: 1, AckLatencyUs: 900, E2ELatencyUs: 5000, FirstSeenNs: time.Now().Add(-time.Minute).UnixNano()}
		if i%10 == 0 && i < 100 {
			v.Status, v.Cause, v.E2ELatencyUs = codecs.StatusLost, "not_consumed", -1
		}
		if i >= 100 {
			v.FirstSeenNs = old.UnixNano()
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "kaudit.verdicts", Key: []byte(v.CorrelationID), Value: codecs.AppendVerdict(nil, v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	a := args(cmds[1])
	sink := exec.Command(a[0], a[1:]...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "sink.log"))
	if err != nil {
		t.Fatal(err)
	}
	sink.Stdout, sink.Stderr = logf, logf
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sink.ProcessState == nil {
			_ = sink.Process.Kill()
			_ = sink.Wait()
		}
	})
	conn := chtest.Open(t, store.Config{Addr: ch.Addr(), Database: db, Cluster: chtest.ShardedCluster})
	deadline := time.Now().Add(time.Minute)
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+store.Table(db, store.DeliveriesTable)+" FINAL").Scan(&n); err == nil && n == 105 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("the sink did not store the 105 verdicts (%d rows):\n%s", n, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = sink.Process.Signal(syscall.SIGTERM)
	if err := sink.Wait(); err != nil {
		t.Errorf("kaudit-sink: %v", err)
	}
	for i := range chtest.ClusterNodes {
		node := chtest.Open(t, store.Config{Addr: ch.NodeAddr(i), Database: db})
		var n uint64
		if err := node.QueryRow(ctx, "SELECT count() FROM deliveries_local FINAL").Scan(&n); err != nil || n == 0 || n == 105 {
			t.Errorf("shard %d holds %d of the 105 verdicts (%v): want both shards used", i+1, n, err)
		}
	}

	// 3. The report.
	out := output(cmds[2])
	rows := map[string][]string{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 4 {
			rows[f[0]+"/"+f[1]] = f[2:5]
		}
	}
	if got := strings.Join(rows["orders/billing"], " "); got != "100 90 10" {
		t.Errorf("kaudit report: orders/billing EXPECTED DELIVERED LOST %q, want 100 90 10:\n%s", got, out)
	}

	// 4. The retention dry run lists the old day and drops nothing.
	out = output(cmds[3])
	day := old.UTC().Format("20060102")
	if !strings.Contains(out, "would drop "+db+".deliveries partition "+day) || !strings.Contains(out, "would drop "+db+".deliveries_1m partition "+day) {
		t.Errorf("kaudit retention --dry-run does not list day %s of deliveries and deliveries_1m:\n%s", day, out)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+store.Table(db, store.DeliveriesTable)+" FINAL").Scan(&n); err != nil || n != 105 {
		t.Errorf("after the dry run: %d verdicts (%v), want 105", n, err)
	}

	// docker compose --profile cluster up --build (docs/clickhouse-cluster.md
	// and deploy/README.md; exempt in TestDocCommandsClaimed: no Docker
	// engine here): docker-compose accepts the profile
	// (TestComposeClusterProfile checks its services).
	if cf := loadCompose(t, root, "cluster"); cf.Services["clickhouse-1"].Image == "" {
		t.Errorf("--profile cluster has no clickhouse-1: %v", serviceNames(cf))
	}
}
