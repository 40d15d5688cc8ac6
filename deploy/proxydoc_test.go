package deploy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/doccmd"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/store"
)

// TestProxyDoc runs every command of docs/proxy.md, in order, against a
// kfake broker and a real ClickHouse (their addresses, a free port for the
// proxy and the test's database substituted), and checks what each is
// said to do: the proxy serves the brokers under its own addresses and
// audits a topic creation and the records produced through it, the sink
// stores both, and the reports show them.
func TestProxyDoc(t *testing.T) {
	itest.Need(t, "kcat")
	root := moduleRoot(t)
	const doc = "docs/proxy.md"
	cmds := []string{
		doccmd.Line(t, doc, "kaudit-proxy --upstream localhost:9092 --listen 127.0.0.1:19092 --auditors log,kafka --audit-log audit.jsonl"),
		doccmd.Line(t, doc, "kcat -b 127.0.0.1:19092 -L"),
		doccmd.Line(t, doc, "kaudit-sink --brokers localhost:9092 --clickhouse-addr localhost:9000"),
		doccmd.Line(t, doc, "kaudit report --admin --since 1h"),
		doccmd.Line(t, doc, "kaudit report --clients --since 1h"),
	}
	bins := buildBinaries(t, root)
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch := chtest.NewDatabase(t)
	port := freePortPair(t)
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", port)
	subst := func(cmd string) []string {
		cmd = strings.ReplaceAll(cmd, "localhost:9092", c.ListenAddrs()[0])
		cmd = strings.ReplaceAll(cmd, "127.0.0.1:19092", proxyAddr)
		cmd = strings.ReplaceAll(cmd, "localhost:9000", ch.Addr)
		args := strings.Fields(cmd)
		if p, ok := bins[args[0]]; ok {
			args[0] = p
		}
		if strings.HasPrefix(cmd, "kaudit-sink") || strings.HasPrefix(cmd, "kaudit report") {
			args = append(args, "--clickhouse-addr", ch.Addr, "--clickhouse-database", ch.Database)
		}
		return args
	}
	start := func(args []string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		logf, err := os.Create(filepath.Join(dir, filepath.Base(args[0])+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: %v", cmd.Path, err)
		}
	}
	output := func(args []string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	// 1. The proxy; 2. kcat sees the broker at the proxy's broker port.
	proxy := start(subst(cmds[0]))
	waitDial(t, proxyAddr)
	if out := output(subst(cmds[1])); !strings.Contains(out, fmt.Sprintf("at 127.0.0.1:%d", port+1)) {
		t.Fatalf("kcat -L through the proxy:\n%s", out)
	}
	// Traffic and one admin operation through the proxy.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(proxyAddr), kgo.ClientID("doc-admin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "doc.orders"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "doc.orders", Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	stop(proxy) // flushes the minute's traffic
	logged, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), `"method":"CreateTopics"`) || !strings.Contains(string(logged), `"topic":"doc.orders","api_key":0,"api":"Produce","requests":10,"errors":0,"records":10`) {
		t.Fatalf("audit.jsonl lacks the topic creation or the 10 records:\n%s", logged)
	}

	// 3. The sink stores both topics.
	sink := start(subst(cmds[2]))
	conn := chtest.Open(t, ch)
	for {
		var admin, records uint64
		row := conn.QueryRow(ctx, "SELECT (SELECT count() FROM "+store.Table(ch.Database, store.AdminAuditTable)+"), "+
			"(SELECT sum(records) FROM "+store.Table(ch.Database, store.ClientTrafficTable)+" WHERE topic = 'doc.orders' AND api = 'Produce')")
		if err := row.Scan(&admin, &records); err == nil && admin == 1 && records == 10 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the sink did not store the proxy's audit (%d admin rows, %d records)", admin, records)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop(sink)

	// 4. and 5. The reports.
	if out := output(subst(cmds[3])); !strings.Contains(out, "CreateTopics") || !strings.Contains(out, "TOPIC:doc.orders") || !strings.Contains(out, "allowed") {
		t.Errorf("kaudit report --admin:\n%s", out)
	}
	out := output(subst(cmds[4]))
	found := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == "doc.orders" && f[1] == "produce" && f[2] == "User:ANONYMOUS" && f[3] == "doc-admin" && f[5] == "10" {
			found = true
		}
	}
	if !found {
		t.Errorf("kaudit report --clients lacks doc.orders produce ... 10:\n%s", out)
	}
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePortPair finds a free port whose next port is free too.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(30000)
		a, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		a.Close()
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Fatal("no free ports")
	return 0
}
