package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/doccmd"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/store"
)

// The tests of this file run the command lines of README.md and
// deploy/README.md that no other test runs, as written: only the
// addresses, ports, passwords, paths and IDs of the test's own servers
// and messages are substituted (subst), and where the doc's line names no
// address (it relies on a default), the test's is given in the
// environment (KAUDIT_BROKERS).

// subst replaces each old string of pairs by its new one in line.
func subst(line string, pairs ...string) string {
	return strings.NewReplacer(pairs...).Replace(line)
}

// shell runs line with /bin/sh in dir (its $PWD) with env added to the
// test's environment, and returns the combined output; a non-zero exit
// fails the test.
func shell(t *testing.T, dir string, env []string, line string) string {
	t.Helper()
	out, err := shellErr(dir, env, line)
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return out
}

func shellErr(dir string, env []string, line string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), pathEnv()), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pathEnv puts the binaries of this test binary's build (binaries, which
// must have run) first in PATH, so that a documented `kaudit ...` runs them.
func pathEnv() string {
	return "PATH=" + bins.dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// bgShell is a documented command running in the background.
type bgShell struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (b *bgShell) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *bgShell) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

// startShell starts line with /bin/sh in dir; it is killed when the test
// ends, and its output logged if the test failed.
func startShell(t *testing.T, dir string, env []string, line string) *bgShell {
	t.Helper()
	b := &bgShell{done: make(chan struct{})}
	b.cmd = exec.Command("/bin/sh", "-c", "exec "+line)
	b.cmd.Dir = dir
	b.cmd.Env = append(append(os.Environ(), pathEnv()), env...)
	b.cmd.Stdout, b.cmd.Stderr = b, b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
		if t.Failed() {
			t.Logf("--- %s:\n%s", line, b.output())
		}
	})
	return b
}

// stop sends SIGTERM and waits for the exit.
func (b *bgShell) stop(t *testing.T) {
	t.Helper()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%v did not exit within 30s of SIGTERM", b.cmd.Args)
	}
}

// TestReadmeExpectations runs README's three `kaudit expect` lines on a
// kfake broker (named by KAUDIT_BROKERS: the lines rely on the default
// address) and reads kaudit.expectations with a plain franz-go consumer:
// a compacted topic holding, for key orders, groups billing and search
// with deadline 2m, then a tombstone.
func TestReadmeExpectations(t *testing.T) {
	itest.Integration(t)
	set := doccmd.Line(t, "README.md", "kaudit expect set orders billing,search --deadline 2m")
	list := doccmd.Line(t, "README.md", "kaudit expect list")
	del := doccmd.Line(t, "README.md", "kaudit expect delete orders")
	bin := binaries(t)
	c := kafkatest.NewCluster(t, kfake.AllowAutoTopicCreation())
	env := []string{"KAUDIT_BROKERS=" + c.ListenAddrs()[0]}
	kaudit := func(line string) string {
		t.Helper()
		return shell(t, bin, env, line)
	}

	before := time.Now()
	kaudit(set)
	after := time.Now()
	out := kaudit(list)
	if !regexp.MustCompile(`(?m)^orders\s+\[billing search\]\s+2m0s\b`).MatchString(out) {
		t.Errorf("kaudit expect list does not show orders [billing search] 2m0s:\n%s", out)
	}
	kaudit(del)
	if out := kaudit(list); strings.Contains(out, "orders") {
		t.Errorf("kaudit expect list still shows orders after the delete:\n%s", out)
	}

	// What the topic holds.
	recs := kafkatest.Consume(t, c, audit.DefaultExpectationsTopic, 2, 30*time.Second)
	if len(recs) != 2 {
		t.Fatalf("%s holds %d records, want 2 (the expectation, then a tombstone)", audit.DefaultExpectationsTopic, len(recs))
	}
	var got struct {
		Topic    string   `json:"topic"`
		Groups   []string `json:"groups"`
		Deadline string   `json:"deadline"`
		SinceNs  int64    `json:"since_ns"`
	}
	if err := json.Unmarshal(recs[0].Value, &got); err != nil {
		t.Fatalf("the expectation %q: %v", recs[0].Value, err)
	}
	if string(recs[0].Key) != "orders" || got.Topic != "orders" || !slices.Equal(got.Groups, []string{"billing", "search"}) || got.Deadline != "2m0s" {
		t.Errorf("the expectation: key %q, %+v; want orders, groups [billing search], deadline 2m0s", recs[0].Key, got)
	}
	if got.SinceNs < before.UnixNano() || got.SinceNs > after.UnixNano() {
		t.Errorf("the expectation holds from %s, not from when it was set (%s to %s)", time.Unix(0, got.SinceNs), before, after)
	}
	if string(recs[1].Key) != "orders" || recs[1].Value != nil {
		t.Errorf("the delete wrote key %q value %q, want a tombstone for orders", recs[1].Key, recs[1].Value)
	}
	adm := kadm.NewClient(kafkatest.Client(t, c))
	cfgs, err := adm.DescribeTopicConfigs(context.Background(), audit.DefaultExpectationsTopic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(audit.DefaultExpectationsTopic, nil)
	if err != nil {
		t.Fatal(err)
	}
	compact := false
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil && *c.Value == "compact" {
			compact = true
		}
	}
	if !compact {
		t.Errorf("%s is not compacted: %v", audit.DefaultExpectationsTopic, rc.Configs)
	}
}

// testCA writes a CA certificate (ca.pem in dir) and returns a server
// certificate it signed for 127.0.0.1, and the CA pool.
func testCA(t *testing.T, dir string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kaudit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestReadmeCorrelatorSASLSSL runs README's kaudit-correlator line against
// a kfake cluster of two brokers that only speaks TLS and SASL (kfake.TLS,
// kfake.EnableSASL; user kaudit, PLAIN — the CLI's default mechanism).
// The line names no CA file: the correlator trusts the system roots, which
// the test points at its own CA with SSL_CERT_FILE, as an operator's
// machine trusts its cluster's CA. Through the same TLS and SASL, the test
// declares billing expected for orders with a 2 s deadline and writes the
// audit events of 10 messages, 7 of them consumed by billing; kaudit.verdicts
// must say DELIVERED for those 7 and LOST for the other 3, and /readyz and
// /metrics answer on the --metrics-addr.
func TestReadmeCorrelatorSASLSSL(t *testing.T) {
	itest.Integration(t)
	line := doccmd.Line(t, "README.md", "kaudit-correlator --brokers kafka-1:9092,kafka-2:9092 --storage-dir /var/lib/kaudit/correlator "+
		"--security-protocol SASL_SSL --sasl-username kaudit --sasl-password ... --metrics-addr :9100")
	bin := binaries(t)
	dir := t.TempDir()
	cert, pool := testCA(t, dir)
	const password = "s3cret-of-the-test"
	c := kafkatest.NewCluster(t, kfake.NumBrokers(2), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "kaudit", password))
	addrs := c.ListenAddrs()
	metrics := freeAddr(t)
	p := startShell(t, bin, []string{"SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem")}, subst(line,
		"kafka-1:9092,kafka-2:9092", addrs[0]+","+addrs[1],
		"/var/lib/kaudit/correlator", filepath.Join(dir, "correlator"),
		"--sasl-password ...", "--sasl-password "+password,
		":9100", metrics))
	waitFor(t, 90*time.Second, "the correlator ready", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("the correlator exited:\n%s", p.output())
		default:
		}
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	secure := []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(plain.Auth{User: "kaudit", Pass: password}.AsMechanism())}
	exps, err := expectations.NewStore(audit.DefaultExpectationsTopic, secure...)
	if err != nil {
		t.Fatal(err)
	}
	defer exps.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := exps.Set(ctx, &expectations.Expectation{Topic: "orders", Groups: []string{"billing"},
		Deadline: expectations.Duration(2 * time.Second), SinceNs: time.Now().Add(-time.Minute).UnixNano()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the correlator reads the expectation (it holds for messages acknowledged after it)

	prod, err := kgo.NewClient(append(secure, kgo.DefaultProduceTopic(audit.DefaultEventsTopic), kgo.RecordPartitioner(audit.Partitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := map[string]string{}
	now := time.Now()
	var recs []*kgo.Record
	for i := range 10 {
		id := fmt.Sprintf("0190a1b2-c3d4-7e5f-8a6b-%012d", i)
		pe := &codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders",
			Offset: int64(i), ClientID: "checkout", SendNs: now.Add(-time.Millisecond).UnixNano(), AckNs: now.UnixNano(), PayloadSize: 8}
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: codecs.AppendEvent(nil, pe)})
		want[id] = "LOST"
		if i < 7 {
			ce := &codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders",
				Offset: int64(i), ClientID: "billing-1", Group: "billing", ConsumeNs: now.Add(5 * time.Millisecond).UnixNano(), PayloadSize: 8}
			recs = append(recs, &kgo.Record{Key: []byte(id), Value: codecs.AppendEvent(nil, ce)})
			want[id] = "DELIVERED"
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(append(secure, kgo.ConsumeTopics(audit.DefaultVerdictsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]codecs.Verdict{} // latest per message, billing
	for !mapsEqualStatus(got, want) {
		if ctx.Err() != nil {
			t.Fatalf("verdicts %v, want %v\n%s", statuses(got), want, p.output())
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			var v codecs.Verdict
			if err := codecs.UnmarshalVerdict(r.Value, &v); err != nil {
				t.Errorf("verdict %q: %v", r.Value, err)
				return
			}
			if v.Group != "billing" || v.Topic != "orders" {
				t.Errorf("a verdict for %s/%s: only orders/billing was audited", v.Topic, v.Group)
				return
			}
			if old, ok := got[v.CorrelationID]; !ok || v.Seq > old.Seq {
				got[v.CorrelationID] = v
			}
		})
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if !strings.Contains(body.String(), "kaudit_verdicts_total") {
		t.Errorf("/metrics on %s lacks kaudit_verdicts_total", metrics)
	}
	// Sweeps every second since it was ready, seconds ago: timed.
	if m := regexp.MustCompile(`(?m)^kaudit_correlator_sweep_duration_seconds_count (\d+)$`).FindStringSubmatch(body.String()); m == nil || m[1] == "0" {
		t.Errorf("/metrics on %s: no sweep counted in kaudit_correlator_sweep_duration_seconds (%v)", metrics, m)
	}
	p.stop(t)
}

func statuses(m map[string]codecs.Verdict) map[string]string {
	out := map[string]string{}
	for id, v := range m {
		out[id] = v.Status.String()
	}
	return out
}

func mapsEqualStatus(got map[string]codecs.Verdict, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for id, s := range want {
		if v, ok := got[id]; !ok || v.Status.String() != s {
			return false
		}
	}
	return true
}

// TestReadmeRunning runs README's "Running against a real cluster" lines
// (but the correlator's, which TestReadmeCorrelatorSASLSSL runs: the sink
// line has no security settings, so this cluster is a plain one), its
// kcat lines through the plugin, and deploy/README.md's trail lines, on a
// kfake broker and the shared ClickHouse server with user kaudit and its
// password, in the default database kaudit (chtest.NewNamedDatabase), so
// no line needs a --clickhouse-database:
//
//   - migrate (twice: it is idempotent) creates kaudit's tables;
//   - kcat -G billing, started first, consumes what kcat -P produces: 20
//     lines of stdin, 20 messages, each with a correlation_id header (read
//     back from the broker with a plain franz-go consumer);
//   - a correlator and the sink line bring ClickHouse to exactly one
//     DELIVERED billing row per message, at the broker's partition and
//     offset;
//   - kaudit trail, from README and the two of deploy/README.md, shows the
//     message's produce and its consume by billing; the clickhouse-client
//     query of deploy/README.md lists five of the messages.
func TestReadmeRunning(t *testing.T) {
	itest.Need(t, "kcat", "clickhouse-client")
	const readme, deployDoc = "README.md", "deploy/README.md"
	migrate := doccmd.Line(t, readme, "kaudit migrate --clickhouse-addr clickhouse:9000 --clickhouse-user kaudit --clickhouse-password ...")
	sinkLine := doccmd.Line(t, readme, "kaudit-sink --brokers kafka-1:9092 --clickhouse-addr clickhouse:9000 --metrics-addr :9101")
	trail := doccmd.Line(t, readme, "kaudit trail --clickhouse-addr clickhouse:9000 6f1c0e0a-3a1e-4f7e-9d07-0e9c8b4fd2a1")
	kcatP := doccmd.Line(t, readme, "kcat -P -b kafka:9092 -t orders -X plugin.library.paths=$PWD/bin/kaudit-rdkafka.so -X audit.topic=kaudit.events")
	kcatG := doccmd.Line(t, readme, "kcat -G billing -b kafka:9092 orders -X plugin.library.paths=$PWD/bin/kaudit-rdkafka.so")
	chQuery := doccmd.Line(t, deployDoc, `docker compose exec clickhouse clickhouse-client --user kaudit --password kaudit `+
		`--query "SELECT correlation_id, consumer_group, status, e2e_latency_us FROM kaudit.deliveries FINAL ORDER BY first_seen DESC LIMIT 5"`)
	goBuild := doccmd.Line(t, deployDoc, "go build -o bin/ ./cmd/kaudit")
	hostTrail := doccmd.Line(t, deployDoc, "KAUDIT_CLICKHOUSE_PASSWORD=kaudit bin/kaudit trail <correlation-id> --clickhouse-addr 127.0.0.1:19000 --clickhouse-user kaudit")
	composeTrail := doccmd.Line(t, deployDoc, "docker compose run --rm --no-deps migrate kaudit trail <correlation-id> --clickhouse-addr clickhouse:9000 --clickhouse-user kaudit")

	bin := binaries(t)
	dir := t.TempDir()
	ch := chtest.WithUser(t, chtest.NewNamedDatabase(t, store.DefaultDatabase))
	c := kafkatest.NewCluster(t)
	broker := c.ListenAddrs()[0]
	kafkatest.CreateTopic(t, c, "orders", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// 1. The schema, as user kaudit, twice.
	for range 2 {
		shell(t, bin, nil, subst(migrate, "clickhouse:9000", ch.Addr, "--clickhouse-password ...", "--clickhouse-password "+ch.Password))
	}
	conn := chtest.Open(t, ch)
	for _, table := range []string{store.EventsTable, store.DeliveriesTable} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", ch.Database, table).Scan(&n); err != nil || n != 1 {
			t.Fatalf("after kaudit migrate: table %s.%s: %d (%v)", ch.Database, table, n, err)
		}
	}

	// 2. The correlator (plain; not README's SASL_SSL line) and the sink line.
	corr := freeAddr(t)
	cp := startProc(t, dir, "correlator", filepath.Join(bin, "kaudit-correlator"), "--brokers", broker,
		"--storage-dir", filepath.Join(dir, "correlator"), "--metrics-addr", corr, "--sweep-interval", "1s")
	waitReady(t, cp, corr, 90*time.Second)
	sinkAddr := freeAddr(t)
	sink := startShell(t, bin, nil, subst(sinkLine, "kafka-1:9092", broker, "clickhouse:9000", ch.Addr, ":9101", sinkAddr))
	waitFor(t, 60*time.Second, "the sink ready", func() (bool, string) {
		resp, err := http.Get("http://" + sinkAddr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	// 3. kcat through the plugin, in a folder holding bin/kaudit-rdkafka.so
	// (what `make plugin` builds; here e2e's build of it).
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(bin, "kaudit-rdkafka.so"), filepath.Join(work, "bin", "kaudit-rdkafka.so")); err != nil {
		t.Fatal(err)
	}
	consumer := startShell(t, work, nil, subst(kcatG, "kafka:9092", broker))
	waitFor(t, 60*time.Second, "kcat -G billing assigned orders", func() (bool, string) {
		out := consumer.output()
		return strings.Contains(out, "assigned: orders"), out
	})
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("order-%02d", i))
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", subst(kcatP, "kafka:9092", broker))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), pathEnv())
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", kcatP, err, out)
	}

	// What the broker holds: 20 messages, one per line, each with its
	// correlation ID.
	type pos struct {
		p int32
		o int64
	}
	at := map[string]pos{}
	var values []string
	for _, r := range kafkatest.Consume(t, c, "orders", 20, time.Minute) {
		var id string
		for _, h := range r.Headers {
			if h.Key == audit.CorrelationHeader {
				id = string(h.Value)
			}
		}
		if id == "" {
			t.Fatalf("message %q has no %s header", r.Value, audit.CorrelationHeader)
		}
		at[id] = pos{r.Partition, r.Offset}
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	if !slices.Equal(values, lines) || len(at) != 20 {
		t.Fatalf("orders holds %q (%d correlation IDs), want the 20 lines, one ID each", values, len(at))
	}

	// 4. ClickHouse: exactly one DELIVERED billing row per message.
	waitFor(t, 2*time.Minute, "20 DELIVERED billing deliveries", func() (bool, string) {
		rows, err := conn.Query(ctx, "SELECT correlation_id, consumer_group, status, partition, offset FROM "+
			store.Table(ch.Database, store.DeliveriesTable)+" FINAL WHERE topic = 'orders'")
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		var bad []string
		n := 0
		for rows.Next() {
			var id, group, status string
			var p int32
			var o int64
			if err := rows.Scan(&id, &group, &status, &p, &o); err != nil {
				return false, err.Error()
			}
			n++
			if want, ok := at[id]; !ok || group != "billing" || status != "DELIVERED" || want != (pos{p, o}) {
				bad = append(bad, fmt.Sprintf("%s %s %s %d@%d", id, group, status, p, o))
			}
		}
		if len(bad) > 0 {
			t.Fatalf("deliveries the broker does not explain: %v", bad)
		}
		return n == 20, fmt.Sprintf("%d rows", n)
	})
	consumer.stop(t) // kcat writes its stdout when it exits
	for _, l := range lines {
		if !strings.Contains(consumer.output(), "\n"+l+"\n") {
			t.Errorf("kcat -G billing did not print %q", l)
		}
	}
	sink.stop(t)

	// 5. The trails of one message.
	var id string
	for k := range at {
		id = k
		break
	}
	checkTrail := func(what, out string) {
		t.Helper()
		for _, want := range []string{"correlation_id " + id, "events (2)", fmt.Sprintf("orders[%d]@%d", at[id].p, at[id].o), "billing", "DELIVERED"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", what, want, out)
			}
		}
	}
	checkTrail(trail, shell(t, bin, []string{"KAUDIT_CLICKHOUSE_PASSWORD="}, subst(trail, "clickhouse:9000", ch.Addr, "6f1c0e0a-3a1e-4f7e-9d07-0e9c8b4fd2a1", id)))

	// deploy/README.md: go build into a folder of the test's (bin/ of this
	// checkout is the developer's), then the host's trail line there.
	host := filepath.Join(dir, "host")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	shell(t, root, nil, subst(goBuild, "-o bin/", "-o "+filepath.Join(host, "bin")+"/"))
	hostLine := subst(hostTrail, "<correlation-id>", id, "127.0.0.1:19000", ch.Addr)
	checkTrail(hostTrail, shell(t, host, nil, subst(hostLine, "KAUDIT_CLICKHOUSE_PASSWORD=kaudit", "KAUDIT_CLICKHOUSE_PASSWORD="+ch.Password)))
	if out, err := shellErr(host, nil, subst(hostLine, "KAUDIT_CLICKHOUSE_PASSWORD=kaudit", "KAUDIT_CLICKHOUSE_PASSWORD=wrong")); err == nil {
		t.Errorf("%s with a wrong password succeeded:\n%s", hostTrail, out)
	}

	// docker compose run ... migrate kaudit trail: the image's kaudit with
	// the migrate service's environment, which carries the password.
	compose, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?s)x-kaudit-clickhouse: &kaudit-clickhouse.*KAUDIT_CLICKHOUSE_PASSWORD: .*\n  migrate:\n[^\n]*\n    <<: \*kaudit-clickhouse\n`).Match(compose) {
		t.Errorf("docker-compose.yml's migrate service does not carry KAUDIT_CLICKHOUSE_PASSWORD (from x-kaudit-clickhouse)")
	}
	inner := strings.TrimPrefix(composeTrail, "docker compose run --rm --no-deps migrate ")
	checkTrail(composeTrail, shell(t, bin, []string{"KAUDIT_CLICKHOUSE_PASSWORD=" + ch.Password},
		subst(inner, "<correlation-id>", id, "clickhouse:9000", ch.Addr)))

	// docker compose exec clickhouse clickhouse-client ...: the client
	// inside the container reaches its own server on localhost:9000; here
	// --host and --port name the test's.
	h, port, _ := net.SplitHostPort(ch.Addr)
	query := subst(strings.TrimPrefix(chQuery, "docker compose exec clickhouse "),
		"--password kaudit", "--host "+h+" --port "+port+" --password "+ch.Password)
	out := strings.TrimSpace(shell(t, dir, nil, query))
	rows := strings.Split(out, "\n")
	if len(rows) != 5 {
		t.Fatalf("%s: %d rows, want 5:\n%s", chQuery, len(rows), out)
	}
	for _, r := range rows {
		f := strings.Split(r, "\t")
		if _, ok := at[f[0]]; len(f) != 4 || !ok || f[1] != "billing" || f[2] != "DELIVERED" {
			t.Errorf("%s: row %q is not one of the messages, DELIVERED to billing", chQuery, r)
		}
	}
}

// TestReadmeIngest runs README's kaudit ingest line on a kfake broker:
// the blog interceptors' JSON records in audit_topic, their asctime
// timestamps in Berlin's local time, come out of kaudit.events as kaudit
// events at those instants (read back with a plain franz-go consumer),
// each on the partition audit.Partitioner gives its correlation ID.
func TestReadmeIngest(t *testing.T) {
	itest.Integration(t)
	line := doccmd.Line(t, "README.md", "kaudit ingest --brokers kafka:9092 --from audit_topic --format interceptor-json --timezone Europe/Berlin")
	binaries(t)
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "audit_topic", 1)
	const parts = 4
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, parts) // the correlator's
	kafkatest.CreateTopic(t, c, audit.DefaultDLQTopic, 1)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().In(berlin).Truncate(time.Second).Add(-20 * time.Second)
	type fact struct {
		kind codecs.Kind
		at   time.Time
	}
	want := map[string][]fact{}
	var recs []*kgo.Record
	for i := range 5 {
		id := fmt.Sprintf("0190a1b2-c3d4-7e5f-8a6b-%012d", 100+i)
		recs = append(recs,
			&kgo.Record{Key: []byte(id), Value: blogJSON(base, id, "produce", "test_topic", "ksb-demo-producer", 0, int64(i))},
			&kgo.Record{Key: []byte(id), Value: blogJSON(base.Add(2*time.Second), id, "consume", "test_topic", "ksb-demo-group", 0, int64(i))})
		want[id] = []fact{{codecs.KindProduce, base}, {codecs.KindConsume, base.Add(2 * time.Second)}}
	}
	if err := kafkatest.Client(t, c, kgo.DefaultProduceTopic("audit_topic")).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p := startShell(t, t.TempDir(), nil, subst(line, "kafka:9092", c.ListenAddrs()[0]))
	got := kafkatest.Consume(t, c, audit.DefaultEventsTopic, len(recs), time.Minute)
	p.stop(t)
	if len(got) != len(recs) {
		t.Fatalf("kaudit.events holds %d events, want %d\n%s", len(got), len(recs), p.output())
	}
	part := audit.Partitioner().ForTopic(audit.DefaultEventsTopic)
	for _, r := range got {
		var e codecs.Event
		if err := codecs.UnmarshalEvent(r.Value, &e); err != nil {
			t.Fatalf("event %q: %v", r.Value, err)
		}
		if wp := int32(part.Partition(&kgo.Record{Key: []byte(e.CorrelationID)}, parts)); r.Partition != wp {
			t.Errorf("event of %s on partition %d, want %d (audit.Partitioner)", e.CorrelationID, r.Partition, wp)
		}
		facts := want[e.CorrelationID]
		i := slices.IndexFunc(facts, func(f fact) bool { return f.kind == e.Kind })
		if i < 0 {
			t.Errorf("unexpected event %+v", e)
			continue
		}
		at := e.AckNs
		if e.Kind == codecs.KindConsume {
			at = e.ConsumeNs
		}
		if !time.Unix(0, at).Equal(facts[i].at) || e.Topic != "test_topic" || e.Offset < 0 {
			t.Errorf("%s event of %s at %s, want %s (Berlin wall time %s)", e.Kind, e.CorrelationID, time.Unix(0, at).UTC(), facts[i].at.UTC(), facts[i].at.Format(time.ANSIC))
		}
		want[e.CorrelationID] = slices.Delete(facts, i, i+1)
	}
}

// TestReadmeDemo runs README's `make demo` as `DURATION=20s make demo`
// (what README and the Makefile say stops it by itself), with the
// broker, the dashboard, the state folder and ClickHouse (a database of
// the shared server) moved to the test's by their KAUDIT_* variables, and
// checks the summary against what README says the demo does: three groups
// expected to consume every message of demo.orders; billing and the slow
// analytics get all of them, archiver dies a third of the way in, so
// roughly two thirds of its messages are LOST, and nothing else happens.
func TestReadmeDemo(t *testing.T) {
	itest.Integration(t)
	line := doccmd.Line(t, "README.md", "make demo")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ch := chtest.NewDatabase(t)
	out := shell(t, root, []string{"DURATION=20s", "KAUDIT_STATE_DIR=" + t.TempDir(), "KAUDIT_BROKER_ADDR=" + freeAddr(t),
		"KAUDIT_WEB_ADDR=" + freeAddr(t), "KAUDIT_CLICKHOUSE_ADDR=" + ch.Addr, "KAUDIT_CLICKHOUSE_DATABASE=" + ch.Database}, line)
	if !regexp.MustCompile(`(?m)^\[ *\d+s\] produced +\d+ \| consumed billing +\d+ analytics +\d+ archiver +\d+ `).MatchString(out) {
		t.Errorf("make demo printed no progress line:\n%s", out)
	}
	_, summary, ok := strings.Cut(out, "Summary since ")
	if !ok {
		t.Fatalf("make demo printed no summary:\n%s", out)
	}
	rows := map[string][]string{}
	var header []string
	for l := range strings.Lines(summary) {
		f := strings.Fields(l)
		switch {
		case len(f) > 2 && f[0] == "TOPIC":
			header = f
		case len(f) > 2 && f[0] == "demo.orders":
			rows[f[1]] = f
		}
	}
	col := func(group, name string) string {
		i := slices.Index(header, name)
		if i < 0 || i >= len(rows[group]) {
			t.Fatalf("summary has no %s of %s:\n%s", name, group, summary)
		}
		return rows[group][i]
	}
	num := func(group, name string) int {
		var n int
		if _, err := fmt.Sscan(col(group, name), &n); err != nil {
			t.Fatalf("%s of %s: %v", name, group, err)
		}
		return n
	}
	if len(rows) != 3 {
		t.Fatalf("summary rows for demo.orders: %v, want billing, analytics and archiver:\n%s", slices.Sorted(maps.Keys(rows)), summary)
	}
	expected := num("billing", "EXPECTED")
	if expected == 0 {
		t.Fatalf("the demo produced nothing:\n%s", summary)
	}
	for _, g := range []string{"billing", "analytics", "archiver"} {
		if n := num(g, "EXPECTED"); n != expected {
			t.Errorf("%s expected %d messages, billing %d: every group is expected to consume every message", g, n, expected)
		}
		for _, c := range []string{"LATE", "DUPLICATE", "CORRUPTED", "PRODUCE_FAILED", "UNAUDITED"} {
			if n := num(g, c); n != 0 {
				t.Errorf("%s: %d %s, want none", g, n, c)
			}
		}
		if d, l := num(g, "DELIVERED"), num(g, "LOST"); d+l != expected {
			t.Errorf("%s: %d DELIVERED + %d LOST != %d EXPECTED", g, d, l, expected)
		}
	}
	for _, g := range []string{"billing", "analytics"} {
		if num(g, "LOST") != 0 || col(g, "COMPLETENESS") != "100.00%" {
			t.Errorf("%s lost messages: %v", g, rows[g])
		}
	}
	if share := float64(num("archiver", "DELIVERED")) / float64(expected); share < 0.2 || share > 0.5 {
		t.Errorf("archiver consumed %.0f%% of the messages before it died, want about a third:\n%s", 100*share, summary)
	}
}
