package e2e_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/deploy"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
	"github.com/kaudit/kaudit/web"
)

// metric scrapes addr's /metrics and returns the sum of the samples of
// name whose labels contain every one of labels (`status="LOST"`).
func metric(addr, name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); ok && err == nil {
			sum += v
		}
	}
	return sum, nil
}

// rowNumbers runs a query of one row and returns its numeric columns by
// name (column types differ between versions: UInt64 - UInt64 is Int64).
func rowNumbers(t *testing.T, conn driver.Conn, sql string) map[string]float64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("no row: %v\n%s", rows.Err(), sql)
	}
	dest := make([]any, len(rows.ColumnTypes()))
	for i, ct := range rows.ColumnTypes() {
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	if err := rows.Scan(dest...); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	out := map[string]float64{}
	for i, d := range dest {
		switch v := reflect.ValueOf(d).Elem(); {
		case v.CanInt():
			out[rows.Columns()[i]] = float64(v.Int())
		case v.CanUint():
			out[rows.Columns()[i]] = float64(v.Uint())
		case v.CanFloat():
			out[rows.Columns()[i]] = v.Float()
		}
	}
	return out
}

// TestCluster is issue 12's acceptance test: kaudit on a ClickHouse
// cluster of two shards (two Debian 18.16 server processes and Debian's
// ZooKeeper, started by the test kit on free ports). `kaudit migrate
// --cluster` creates the schema; the correlator and the sink run as
// processes, as README runs them; audited clients produce 1,200 messages
// to a topic expected by groups a and b; a reads all, b skips 40 chosen
// ones. Half way, ClickHouse node 0 (the first address of every kaudit
// process, holding shard 1) is SIGKILLed while messages flow, and started
// again once the sink has retried and the correlator has decided the
// second half. Then deliveries FINAL through the Distributed table holds
// exactly the scenario's verdict for every (message, group), each once,
// spread over both shards; the events table every audit event once; and
// `kaudit report`, the dashboard's overview and the Grafana panels show
// the scenario's counts.
func TestCluster(t *testing.T) {
	itest.Integration(t)
	began := time.Now()
	const (
		cluster  = chtest.ShardedCluster
		topic    = "orders"
		half     = 600
		skipHalf = 20
		deadline = 4 * time.Second
	)
	bin := binaries(t)
	dir := t.TempDir()
	ch := chtest.StartCluster(t)
	db := fmt.Sprintf("kaudit_cluster_%d", os.Getpid())
	chArgs := []string{"--clickhouse-addr", ch.Addr(), "--clickhouse-database", db}
	cfg := store.Config{Addr: ch.Addr(), Database: db, Cluster: cluster}
	t.Cleanup(func() {
		admin := cfg
		admin.Database, admin.DDLTimeout = "default", 20*time.Second
		if conn, err := store.Open(context.Background(), admin); err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+store.QuoteIdent(db)+admin.Schema().OnCluster())
			conn.Close()
		}
	})

	// The schema, as README shows it.
	migrate := exec.Command(filepath.Join(bin, "kaudit"), append([]string{"migrate", "--cluster", cluster}, chArgs...)...)
	if out, err := migrate.CombinedOutput(); err != nil || !strings.Contains(string(out), "migrations applied") {
		t.Fatalf("kaudit migrate --cluster: %v\n%s", err, out)
	}
	conn := chtest.Open(t, cfg)
	nodes := []driver.Conn{
		chtest.Open(t, store.Config{Addr: ch.NodeAddr(0), Database: db}),
		chtest.Open(t, store.Config{Addr: ch.NodeAddr(1), Database: db}),
	}
	for i, n := range nodes {
		var engine string
		if err := n.QueryRow(context.Background(), "SELECT engine FROM system.tables WHERE database = ? AND name = ?", db, "deliveries_local").Scan(&engine); err != nil || engine != "ReplicatedReplacingMergeTree" {
			t.Fatalf("node %d: deliveries_local is %q (%v)", i, engine, err)
		}
	}

	k := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, k, topic, 3)
	e := &env{t: t, cluster: k, brokers: k.ListenAddrs(), log: testLogger(t)}
	brokers := strings.Join(e.brokers, ",")
	corrAddr, sinkAddr := freeAddr(t), freeAddr(t)
	corr := startProc(t, dir, "correlator", filepath.Join(bin, "kaudit-correlator"),
		"--brokers", brokers, "--storage-dir", filepath.Join(dir, "correlator"), "--metrics-addr", corrAddr,
		"--sweep-interval", "1s", "--grace", "2m")
	sink := startProc(t, dir, "sink", filepath.Join(bin, "kaudit-sink"), append([]string{"--brokers", brokers,
		"--clickhouse-cluster", cluster, "--metrics-addr", sinkAddr, "--flush.interval", "300ms"}, chArgs...)...)
	waitReady(t, corr, corrAddr, 90*time.Second)
	waitReady(t, sink, sinkAddr, 90*time.Second)
	if out, err := exec.Command(filepath.Join(bin, "kaudit"), "expect", "set", topic, "a,b", "--deadline", deadline.String(),
		"--brokers", brokers).CombinedOutput(); err != nil {
		t.Fatalf("kaudit expect set: %v\n%s", err, out)
	}

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close(context.Background())
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID("shop"), kgo.DefaultProduceTopic(topic),
		kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	rng := rand.New(rand.NewPCG(12, 2))
	var mu sync.Mutex
	byPos := map[pos]string{}
	produce := func(n int) {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", rng.IntN(100)), Value: fmt.Appendf(nil, "order %d", rng.Int())}
		}
		if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Errorf("produce: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			for _, h := range r.Headers {
				if h.Key == audit.CorrelationHeader {
					byPos[pos{r.Partition, r.Offset}] = string(h.Value)
				}
			}
		}
	}
	// consume reads [from, to) of every partition as a (all) and b (but
	// skip positions of that range, chosen at random) and returns the new
	// ends.
	skipB := map[pos]bool{}
	consume := func(from map[int32]int64, skip int) map[int32]int64 {
		mu.Lock()
		to := map[int32]int64{}
		var fresh []pos
		for p := range byPos {
			to[p.p] = max(to[p.p], p.o+1)
			if p.o >= from[p.p] {
				fresh = append(fresh, p)
			}
		}
		mu.Unlock()
		rng.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
		skipped := map[pos]bool{}
		for _, p := range fresh[:skip] {
			skipped[p], skipB[p] = true, true
		}
		for p, end := range to {
			readRange(t, e, em, topic, "a", p, from[p], end)
			next := from[p]
			for o := from[p]; o < end; o++ {
				if skipped[pos{p, o}] {
					readRange(t, e, em, topic, "b", p, next, o)
					next = o + 1
				}
			}
			readRange(t, e, em, topic, "b", p, next, end)
		}
		return to
	}
	finalRows := func() (uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM "+store.Table(db, store.DeliveriesTable)+" FINAL").Scan(&n)
		return n, err
	}
	lost := func() float64 {
		v, _ := metric(corrAddr, "kaudit_verdicts_total", `status="LOST"`)
		return v
	}

	// First half, with both nodes up.
	produce(half)
	ends := consume(map[int32]int64{}, skipHalf)
	waitFor(t, time.Minute, "the first half's verdicts in ClickHouse", func() (bool, string) {
		n, err := finalRows()
		return n == 2*half && lost() == skipHalf, fmt.Sprintf("%d rows (%v), %v LOST verdicts", n, err, lost())
	})

	// Second half: node 0 is killed while messages are produced.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 6 {
			produce(half / 6)
		}
	}()
	for {
		mu.Lock()
		n := len(byPos)
		mu.Unlock()
		if n >= half+2*half/6 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ch.Kill(0)
	killedAt := time.Now()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	consume(ends, skipHalf)
	retries0, _ := metric(sinkAddr, "kaudit_sink_retries_total")
	waitFor(t, time.Minute, "the sink to retry and the correlator to decide the second half", func() (bool, string) {
		r, _ := metric(sinkAddr, "kaudit_sink_retries_total")
		return r >= retries0+2 && lost() == 2*skipHalf, fmt.Sprintf("%v retries, %v LOST verdicts", r, lost())
	})
	if _, err := finalRows(); err == nil {
		t.Fatal("the Distributed table answers with shard 1 down")
	}
	ch.Restart(t, 0)
	t.Logf("node 0 was down for %s", time.Since(killedAt).Round(time.Millisecond))
	waitFor(t, 2*time.Minute, "every verdict after node 0 is back", func() (bool, string) {
		n, err := finalRows()
		return n == 4*half, fmt.Sprintf("%d rows (%v)", n, err)
	})

	// Every (message, group) verdict, once.
	want := map[verdictKey]string{}
	for p, id := range byPos {
		want[verdictKey{id, "a"}] = "DELIVERED"
		want[verdictKey{id, "b"}] = map[bool]string{true: "LOST", false: "DELIVERED"}[skipB[p]]
	}
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT correlation_id, consumer_group, status FROM "+store.Table(db, store.DeliveriesTable)+" FINAL")
	if err != nil {
		t.Fatal(err)
	}
	got := map[verdictKey]string{}
	for rows.Next() {
		var k verdictKey
		var status string
		if err := rows.Scan(&k.id, &k.group, &status); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[k]; dup {
			t.Errorf("%v has two rows in deliveries FINAL", k)
		}
		got[k] = status
	}
	rows.Close()
	wrong := 0
	for k, w := range want {
		if got[k] != w {
			if wrong++; wrong <= 10 {
				t.Errorf("%s/%s: %q, want %s", k.id, k.group, got[k], w)
			}
		}
	}
	if len(got) != len(want) || wrong > 0 {
		t.Fatalf("deliveries FINAL: %d rows, %d wrong; the scenario has %d", len(got), wrong, len(want))
	}

	// Both shards hold rows, no message is on both, and together they are
	// the Distributed table.
	shardOf := map[string]int{}
	var perShard [2]uint64
	for i, n := range nodes {
		rows, err := n.Query(ctx, "SELECT DISTINCT correlation_id FROM deliveries_local FINAL")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			if j, ok := shardOf[id]; ok {
				t.Errorf("message %s is on shards %d and %d", id, j, i)
			}
			shardOf[id] = i
			perShard[i]++
		}
		rows.Close()
	}
	if perShard[0] == 0 || perShard[1] == 0 || perShard[0]+perShard[1] != 2*half {
		t.Errorf("messages per shard %v, want both shards used and %d in all", perShard, 2*half)
	}

	// Every audit event once: a produce per message, a consume per
	// message and group that read it.
	var produces, consumes uint64
	if err := conn.QueryRow(ctx, "SELECT countIf(kind = 'produce'), countIf(kind = 'consume') FROM "+store.Table(db, store.EventsTable)+" FINAL").Scan(&produces, &consumes); err != nil {
		t.Fatal(err)
	}
	if produces != 2*half || consumes != 4*half-2*skipHalf {
		t.Errorf("events FINAL: %d produce, %d consume; want %d and %d", produces, consumes, 2*half, 4*half-2*skipHalf)
	}

	// The numbers users read: kaudit report, the dashboard, Grafana.
	out, err := exec.Command(filepath.Join(bin, "kaudit"), append([]string{"report", "--cluster", cluster, "--since", "1h"}, chArgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kaudit report --cluster: %v\n%s", err, out)
	}
	t.Logf("kaudit report --cluster:\n%s", out)
	reportRows := parseReport(t, string(out))
	wantRow := map[string]string{
		topic + "/a": fmt.Sprintf("%d %d 0 0", 2*half, 2*half),
		topic + "/b": fmt.Sprintf("%d %d %d 0", 2*half, 2*half-2*skipHalf, 2*skipHalf),
	}
	if len(reportRows) != len(wantRow) {
		t.Errorf("kaudit report has %d rows, want %d", len(reportRows), len(wantRow))
	}
	for key, w := range wantRow {
		if r := reportRows[key]; len(r) < 4 || strings.Join(r[:4], " ") != w {
			t.Errorf("kaudit report %s: %v, want EXPECTED DELIVERED LOST AUDIT_GAP %s", key, r, w)
		}
	}

	srv, err := web.New(conn, web.Config{Database: db,
		Refresher: store.NewRefresher(conn, store.RefresherConfig{Database: db, Cluster: cluster})})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.String()
	totals := page[strings.Index(page, `id="totals"`):]
	for k, w := range map[string]int{"expected": 4 * half, "delivered": 4*half - 2*skipHalf, "lost": 2 * skipHalf, "late": 0, "duplicate": 0} {
		m := regexp.MustCompile(`data-k="` + k + `">(\d+)<`).FindStringSubmatch(totals)
		if m == nil || m[1] != strconv.Itoa(w) {
			t.Errorf("dashboard %s: %v, want %d", k, m, w)
		}
	}

	qs, err := deploy.GrafanaQueries()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, q := range qs {
		if q.Panel != "Totals" {
			continue
		}
		sql, err := deploy.ExpandGrafana(q.SQL, db, map[string]string{"topic": "", "group": ""}, time.Now().Add(-time.Hour), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cols := rowNumbers(t, conn, sql)
		for col, w := range map[string]float64{"Expected": 4 * half, "Delivered": 4*half - 2*skipHalf, "Lost": 2 * skipHalf,
			"Audit gap": 0, "Late": 0, "Duplicates": 0, "Corrupted": 0, "Completeness": 100 * float64(4*half-2*skipHalf) / (4 * half)} {
			if v, ok := cols[col]; !ok || v != w {
				t.Errorf("Grafana Totals %s: %v, want %v (all: %v)", col, v, w, cols)
			}
		}
		checked++
	}
	if checked != 1 {
		t.Errorf("%d Grafana Totals panels", checked)
	}
	t.Logf("cluster test: %d deliveries and %d events compared, %s in all", len(want), produces+consumes, time.Since(began).Round(time.Millisecond))
}

// TestClusterReplicaDown: on a cluster of one shard with two replicas, the
// sink goes on writing while a replica is SIGKILLed (the Distributed table
// writes to the live one), the replica fetches everything it missed when it
// is back, and each replica alone then holds every verdict exactly once;
// the rollups read through the cluster count each message once.
func TestClusterReplicaDown(t *testing.T) {
	itest.Integration(t)
	const total = 3000
	ctx := context.Background()
	log := testLogger(t)
	ch := chtest.StartCluster(t)
	cfg := ch.NewDatabase(t, chtest.ReplicatedCluster)
	if err := migrations.Up(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Open(t, cfg)
	k := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, k, "kaudit.verdicts", 3)
	kafkatest.CreateTopic(t, k, "kaudit.dlq", 1)
	prod := kafkatest.Client(t, k)
	minute := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	send := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			v := &codecs.Verdict{Version: 1, CorrelationID: fmt.Sprintf("m%05d", i), Topic: "orders", Group: "g",
				Status: codecs.StatusDelivered, Seq: 1, AckLatencyUs: 1, E2ELatencyUs: 2,
				FirstSeenNs: minute.Add(time.Duration(i%5) * time.Minute).UnixNano()}
			if i%10 == 0 {
				v.Status, v.Cause, v.E2ELatencyUs = codecs.StatusLost, "not_consumed", -1
			}
			recs = append(recs, &kgo.Record{Topic: "kaudit.verdicts", Key: []byte(v.CorrelationID), Value: codecs.AppendVerdict(nil, v)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r, err := sinks.New(sinks.Config[*sinks.Batch]{
		Brokers: k.ListenAddrs(), Group: "sink", Topics: sinks.AuditTopics("kaudit.verdicts", ""), NewBatch: sinks.NewBatch, DLQTopic: "kaudit.dlq",
		BatchSize: 100, FlushInterval: 50 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, RetryBackoffMax: time.Second, Logger: log,
	}, chsink.New(conn, chsink.Config{Database: cfg.Database, Distributed: true}))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()

	// localRows counts the verdicts on node i's own replica.
	localRows := func(i int) (uint64, error) {
		c, err := store.Open(ctx, store.Config{Addr: ch.NodeAddr(i), Database: cfg.Database})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		var n uint64
		err = c.QueryRow(ctx, "SELECT count() FROM deliveries_local FINAL").Scan(&n)
		return n, err
	}
	send(0, total/3)
	waitFor(t, time.Minute, "the first third on both replicas", func() (bool, string) {
		a, errA := localRows(0)
		b, errB := localRows(1)
		return a == total/3 && b == total/3, fmt.Sprintf("%d (%v) and %d (%v)", a, errA, b, errB)
	})
	ch.Kill(0)
	send(total/3, total)
	waitFor(t, time.Minute, "everything written to replica 1 while replica 0 is down", func() (bool, string) {
		n, err := localRows(1)
		return n == total, fmt.Sprintf("%d rows (%v), sink %+v", n, err, r.Stats())
	})
	if s := r.Stats(); s.Written[sinks.KindVerdict] != total {
		t.Errorf("the sink reports %d verdicts written, want %d", s.Written[sinks.KindVerdict], total)
	}
	ch.Restart(t, 0)
	waitFor(t, time.Minute, "replica 0 to fetch what it missed", func() (bool, string) {
		n, err := localRows(0)
		return n == total, fmt.Sprintf("%d rows (%v)", n, err)
	})
	for i := range chtest.ClusterNodes {
		c := chtest.Open(t, store.Config{Addr: ch.NodeAddr(i), Database: cfg.Database})
		var n, distinct, lost uint64
		if err := c.QueryRow(ctx, "SELECT count(), uniqExact(correlation_id), countIf(status = 'LOST') FROM deliveries_local FINAL").Scan(&n, &distinct, &lost); err != nil {
			t.Fatal(err)
		}
		if n != total || distinct != total || lost != total/10 {
			t.Errorf("replica %d: %d rows, %d messages, %d LOST; want %d, %d, %d", i, n, distinct, lost, total, total, total/10)
		}
	}
	if _, err := store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database, Cluster: cfg.Cluster}).Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// The rollups were written to one replica; a read may reach the other
	// before it fetched them (replication is asynchronous).
	waitFor(t, 30*time.Second, "the rollups on every replica", func() (bool, string) {
		rows, err := report.Overview(ctx, conn, cfg.Database, report.Filter{})
		ok := err == nil && len(rows) == 1 && rows[0].Messages == total && rows[0].Lost == total/10 && rows[0].Delivered == total-total/10
		return ok, fmt.Sprintf("overview %+v (%v), want %d messages, %d lost", rows, err, total, total/10)
	})
}
