package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/proxyscript"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// testLogger logs to the test's output at debug level when -v is given.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testLoggerTo logs to w (and to stderr with -v).
func testLoggerTo(w io.Writer) *slog.Logger {
	if testing.Verbose() {
		w = io.MultiWriter(w, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// running is a proxy serving in the background.
type running struct {
	p    *proxy.Proxy
	stop func() error
}

func start(t *testing.T, cfg proxy.Config) *running {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	stopped := false
	var stopErr error
	r := &running{p: p, stop: func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-errc
		}
		return stopErr
	}}
	t.Cleanup(func() { r.stop() })
	return r
}

func readLog(t *testing.T, path string) (audits []proxy.AuditEvent, recs []traffic.Record) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			t.Fatalf("audit log line %q: %v", sc.Text(), err)
		}
		switch head.Type {
		case "audit":
			var ev proxy.AuditEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			audits = append(audits, ev)
		case "traffic":
			var r traffic.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		default:
			t.Fatalf("audit log line of type %q: %s", head.Type, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return audits, recs
}

// flatten turns audit events into the script's rows.
func flatten(evs []proxy.AuditEvent) (rows []proxyscript.Audit, authFailures []string) {
	for _, ev := range evs {
		for _, r := range ev.Resources {
			if ev.Method == "SaslAuthenticate" {
				authFailures = append(authFailures, ev.Principal)
				continue
			}
			rows = append(rows, proxyscript.Audit{Method: ev.Method, ResourceType: r.Type, Resource: r.Name,
				PatternType: r.PatternType, Operation: r.Operation, Principal: ev.Principal, Allowed: r.Allowed, Error: r.Error})
		}
	}
	return rows, authFailures
}

// TestScenario runs the scripted admin operations and traffic of franz-go,
// kcat and python3-confluent-kafka through the proxy against a kfake
// cluster with SASL and ACLs, and checks the audit log against the
// script: the audited resources exactly, the failed login, and the records
// per principal and topic of the traffic observer.
func TestScenario(t *testing.T) {
	itest.Need(t, "kcat", proxyscript.PythonBin)
	c := proxyscript.Cluster(t)
	logPath := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lg := auditors.NewLog(f, f, auditors.FormatKaudit, nil)
	agg := traffic.New(traffic.Config{Writers: []traffic.Writer{lg}, Proxy: "test"})
	r := start(t, proxy.Config{Upstream: c.ListenAddrs(), Auditors: []proxy.Auditor{lg}, Observers: []proxy.Observer{agg}, Name: "test"})

	want := proxyscript.Run(t, c, r.p.Addr())
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	st := r.p.Stats()
	for q, n := range st.Dropped {
		if n != 0 {
			t.Errorf("%s dropped %d", q, n)
		}
	}
	if st.ProtocolErrors != 0 {
		t.Errorf("%d protocol errors", st.ProtocolErrors)
	}

	evs, recs := readLog(t, logPath)
	got, fails := flatten(evs)
	if g, w := proxyscript.Sorted(got), proxyscript.Sorted(want.Audit); !reflect.DeepEqual(g, w) {
		t.Errorf("audit rows differ from the script's\n got: %s\nwant: %s", rowsString(g), rowsString(w))
	}
	if len(fails) == 0 {
		t.Errorf("no failed login audited, want %v", want.AuthFailures)
	}
	for _, p := range fails {
		if p != "User:"+proxyscript.MalloryUser {
			t.Errorf("failed login audited for %s, want only %s", p, want.AuthFailures)
		}
	}
	for _, ev := range evs {
		if ev.ClientAddr == "" || !strings.HasPrefix(ev.ClientAddr, "127.0.0.1:") || ev.ClientID == "" || ev.ID == "" || ev.Proxy != "test" {
			t.Errorf("audit event without client address, client id, id or proxy: %+v", ev)
		}
	}
	checkTraffic(t, recs, want)
}

func rowsString(rs []proxyscript.Audit) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("\n  " + r.String())
	}
	return b.String()
}

// checkTraffic compares the observer's records with what the clients
// produced and fetched.
func checkTraffic(t *testing.T, recs []traffic.Record, want proxyscript.Expected) {
	t.Helper()
	produced, fetched := map[proxyscript.Flow]int64{}, map[proxyscript.Flow]int64{}
	groups := map[proxyscript.Flow]map[string]bool{}
	for _, r := range recs {
		if r.Topic == "" || r.ClientAddress != "127.0.0.1" || r.WindowEnd.Sub(r.WindowStart) != time.Minute {
			continue
		}
		fl := proxyscript.Flow{Principal: r.Principal, Topic: r.Topic}
		switch r.API {
		case "Produce":
			produced[fl] += r.Records
		case "Fetch":
			fetched[fl] += r.Records
			if groups[fl] == nil {
				groups[fl] = map[string]bool{}
			}
			groups[fl][r.Group] = true
		}
	}
	for fl, n := range want.Produced {
		if produced[fl] != n {
			t.Errorf("observer: %s produced %d records to %s, the clients had %d acknowledged", fl.Principal, produced[fl], fl.Topic, n)
		}
	}
	for fl, n := range want.Fetched {
		if fetched[fl] != n {
			t.Errorf("observer: %s fetched %d records of %s, the clients consumed %d", fl.Principal, fetched[fl], fl.Topic, n)
		}
		if g := want.Groups[fl]; !reflect.DeepEqual(groups[fl], map[string]bool{g: true}) {
			t.Errorf("observer: %s's fetches of %s have groups %v, want %q", fl.Principal, fl.Topic, groups[fl], g)
		}
	}
	for fl, n := range produced {
		if _, ok := want.Produced[fl]; !ok && n != 0 {
			t.Errorf("observer: %s produced %d records to %s, the script produced none", fl.Principal, n, fl.Topic)
		}
	}
	for fl, n := range fetched {
		if _, ok := want.Fetched[fl]; !ok && n != 0 {
			t.Errorf("observer: %s fetched %d records of %s, the script fetched none", fl.Principal, n, fl.Topic)
		}
	}
}
