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
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
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
	b.cmd.Env = append(os.Environ(), env...)
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
		return shell(t, bin, env, subst(line, "kaudit ", "./kaudit "))
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
		"kaudit-correlator ", "./kaudit-correlator ",
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

var _, _ = store.Table, chtest.User
