package chserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/store"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestStartStop(t *testing.T) {
	itest.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()

	began := time.Now()
	const password = `pw <&> "x"`
	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir, Logger: testLogger(t), Install: true,
		Users: []chserver.User{{Name: "kaudit", Password: password}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s started in %s", srv.Version(), time.Since(began).Round(time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Stop()
		}
	}()

	if srv.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", srv.Dir(), dir)
	}
	for _, f := range []string{"config.xml", "users.xml", "log/clickhouse-server.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("expected %s in the server directory: %v", f, err)
		}
	}
	if h, _, _ := net.SplitHostPort(srv.Addr()); h != "127.0.0.1" {
		t.Errorf("Addr() = %q, want a 127.0.0.1 address", srv.Addr())
	}

	conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	// The generated config sets the server's time zone to UTC, so day
	// partitions do not depend on the host's zone.
	var midnight uint32
	if err := conn.QueryRow(ctx, "SELECT toUnixTimestamp(toDateTime('2020-01-01 00:00:00'))").Scan(&midnight); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix(); int64(midnight) != want {
		t.Errorf("server reads 2020-01-01 00:00:00 as %d, want %d (UTC)", midnight, want)
	}
	if sv, err := conn.ServerVersion(); err != nil {
		t.Error(err)
	} else if want := fmt.Sprintf("%d.%d.%d", sv.Version.Major, sv.Version.Minor, sv.Version.Patch); srv.Version() != want {
		t.Errorf("Version() = %q, server says %s", srv.Version(), want)
	}
	_ = conn.Close()

	// Options.Users: user kaudit logs in with its password, and only with it.
	conn, err = store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default", User: "kaudit", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	var user string // 18.16 has no currentUser()
	if err := conn.QueryRow(ctx, "SELECT user FROM system.processes WHERE query LIKE '%users-probe%'").Scan(&user); err != nil || user != "kaudit" {
		t.Errorf("the query runs as user %q (%v), want kaudit", user, err)
	}
	_ = conn.Close()
	if conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default", User: "kaudit", Password: "wrong"}); err == nil {
		_ = conn.Close()
		t.Error("user kaudit logged in with a wrong password")
	}

	resp, err := http.Get("http://" + srv.HTTPAddr() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if strings.TrimSpace(string(body)) != "Ok." {
		t.Errorf("HTTP /ping answered %q", body)
	}

	began = time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	t.Logf("stopped in %s", time.Since(began).Round(time.Millisecond))
	select {
	case <-srv.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", srv.Addr())
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a given Dir must be kept: %v", err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	itest.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()

	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir, Install: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default"})
	if err != nil {
		_ = srv.Stop()
		t.Fatal(err)
	}
	err = conn.Exec(ctx, "CREATE TABLE kept (n UInt32) ENGINE = MergeTree ORDER BY n")
	if err == nil {
		var b driver.Batch
		b, err = conn.PrepareBatch(ctx, "INSERT INTO kept (n)")
		for i := range 5 {
			if err == nil {
				err = b.Append(uint32(i))
			}
		}
		if err == nil {
			err = b.Send()
		}
	}
	_ = conn.Close()
	if stopErr := srv.Stop(); stopErr != nil || err != nil {
		t.Fatal(errors.Join(err, stopErr))
	}

	srv2, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv2.Stop(); err != nil {
			t.Error(err)
		}
	}()
	conn, err = store.Open(ctx, store.Config{Addr: srv2.Addr(), Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n, sum uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(n) FROM kept").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 5 || sum != 0+1+2+3+4 {
		t.Errorf("after restart: count %d sum %d, want 5 and 10", n, sum)
	}
}

// A server that cannot start exits; Start must say so and show the
// server's own explanation. Here the server's status file is a directory.
func TestStartFailureShowsServerLog(t *testing.T) {
	itest.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data", "status"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir, StartTimeout: 30 * time.Second})
	if err == nil {
		_ = srv.Stop()
		t.Fatal("Start succeeded although the server cannot write its status file")
	}
	msg := err.Error()
	t.Log(msg)
	if !strings.Contains(msg, "did not start") || !strings.Contains(msg, "server log tail") {
		t.Errorf("error does not explain the failed start: %v", err)
	}
	if !strings.Contains(msg, filepath.Join(dir, "data", "status")) {
		t.Errorf("error does not carry the server's log line about its status file: %v", err)
	}
}

func TestStartTemporaryDirRemoved(t *testing.T) {
	itest.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.Dir()
	if _, err := os.Stat(filepath.Join(dir, "config.xml")); err != nil {
		t.Errorf("temporary dir %s has no config.xml: %v", dir, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary dir %s left behind (stat: %v)", dir, err)
	}
}

func TestEnsureFindsInstalledBinary(t *testing.T) {
	itest.Integration(t)
	p, err := chserver.Ensure(context.Background(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("Ensure returned %q, not an executable (%v)", p, err)
	}
	if f, err := chserver.Find(); err != nil || f != p {
		t.Errorf("Find() = %q, %v; Ensure gave %q", f, err, p)
	}
}

// ZooKeeper starts from Debian's package, serves clients on its port and
// stops, removing its temporary directory.
func TestZooKeeperStartStop(t *testing.T) {
	itest.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	zk, err := chserver.StartZooKeeper(ctx, chserver.ZooKeeperOptions{Logger: testLogger(t), Install: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("zookeeper started in %s", time.Since(began).Round(time.Millisecond))
	c, err := net.Dial("tcp", zk.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("srvr"))
	out, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(out), "Mode: standalone") {
		t.Errorf("srvr: %q", out)
	}
	if err := zk.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", zk.Addr(), time.Second); err == nil {
		t.Error("zookeeper still listens after Stop")
	}
}
