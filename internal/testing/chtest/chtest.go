// Package chtest gives tests a real ClickHouse server: one per test binary
// when the package's TestMain runs through Main (or Run), otherwise one per
// test. Setting KAUDIT_TEST_CLICKHOUSE_ADDR (native host:port, and
// optionally KAUDIT_TEST_CLICKHOUSE_HTTP_ADDR) uses that server instead.
// Tests that use it are integration tests: skipped with -short, and a server
// that cannot be started fails the test, it is never skipped.
//
// Modern, NewModernDatabase and Engines give the same for ClickHouse 26.x,
// run in the test process by libchdb (internal/chdb; fetched with npm and
// cached on first use) and reached through ClickHouse's HTTP interface
// (store.ProtocolHTTP). One engine per test binary, under Main/Run or not.
//
// StartCluster, SharedCluster and NewClusterDatabase give a ClickHouse
// cluster: Debian's ZooKeeper and two 18.16 server processes, as two
// shards (ShardedCluster) or two replicas of one shard
// (ReplicatedCluster).
//
//	func TestMain(m *testing.M) { chtest.Main(m) }
//
//	func TestWrite(t *testing.T) {
//		cfg := chtest.NewDatabase(t) // a fresh database, dropped after the test
//		conn := chtest.Open(t, cfg)
//		...
//	}
//
//	cfg, conn := chtest.Migrated(t) // the same, with kaudit's schema
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/internal/chdb"
	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// Environment variables naming an existing server to test against.
const (
	EnvAddr     = "KAUDIT_TEST_CLICKHOUSE_ADDR"
	EnvHTTPAddr = "KAUDIT_TEST_CLICKHOUSE_HTTP_ADDR"
)

// startTimeout bounds a server start, including a first-time install.
const startTimeout = 5 * time.Minute

// shared is the server of one test binary; sharing it across tests is what
// keeps the integration tests fast.
var shared struct {
	mu     sync.Mutex
	inMain bool
	tried  bool
	srv    *chserver.Server
	err    error
	dbSeq  int

	modernTried bool
	modern      *chdb.Server
	modernErr   error
}

// Main runs the tests with one shared server and exits; use it as the
// whole TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run runs the tests with one shared server, stops the server and returns
// the exit code (non-zero also when the server did not stop cleanly).
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	srv, modern := shared.srv, shared.modern
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "chtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	sharedCluster.mu.Lock()
	cl := sharedCluster.c
	sharedCluster.mu.Unlock()
	if cl != nil {
		if err := cl.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "chtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if modern != nil {
		if err := modern.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "chtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Start returns a running server, starting it if needed. Under Main/Run
// the server is shared by all tests of the binary; otherwise each call
// starts one that is stopped when the test ends.
func Start(t testing.TB) *chserver.Server {
	t.Helper()
	itest.Integration(t)
	if addr := os.Getenv(EnvAddr); addr != "" {
		return chserver.External(addr, os.Getenv(EnvHTTPAddr))
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.inMain {
		if !shared.tried {
			shared.tried = true
			shared.srv, shared.err = start()
		}
		if shared.err != nil {
			t.Fatalf("chtest: %v", shared.err)
		}
		return shared.srv
	}
	srv, err := start()
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	return srv
}

func start() (*chserver.Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return chserver.Start(ctx, chserver.Options{Logger: log, Install: true,
		Users: []chserver.User{{Name: User, Password: password}}})
}

// User is the user the test kit's servers have besides "default", with a
// password (WithUser), for tests of the commands that log in as a user
// (--clickhouse-user kaudit --clickhouse-password ...).
const User = "kaudit"

// Environment variables naming the user of an existing server
// (EnvAddr) that WithUser logs in as.
const (
	EnvUser     = "KAUDIT_TEST_CLICKHOUSE_USER"
	EnvPassword = "KAUDIT_TEST_CLICKHOUSE_PASSWORD"
)

// password is User's password, new for each test binary.
var password = func() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// WithUser returns cfg logging in as User with its password (on an
// existing server, cfg.Addr being EnvAddr: EnvUser and EnvPassword, which
// must be set).
func WithUser(t testing.TB, cfg store.Config) store.Config {
	t.Helper()
	cfg.User, cfg.Password = User, password
	if a := os.Getenv(EnvAddr); a != "" && cfg.Addr == a {
		cfg.User, cfg.Password = os.Getenv(EnvUser), os.Getenv(EnvPassword)
		if cfg.User == "" || cfg.Password == "" {
			t.Fatalf("chtest: %s names an existing server: set %s and %s to a user of it with a password", EnvAddr, EnvUser, EnvPassword)
		}
	}
	return cfg
}

// named serializes the tests of a binary that use the same database name.
var named sync.Map // name -> *sync.Mutex

// NewNamedDatabase is NewDatabase with a given name, e.g.
// store.DefaultDatabase for a test that runs a documented command exactly
// as written: the database is dropped if it exists, created empty, and
// dropped when the test ends; tests of the binary asking for the same
// name run one after another. On an existing server (EnvAddr) it starts
// a server of its own for the test, so as never to drop a database
// someone else uses.
func NewNamedDatabase(t testing.TB, name string) store.Config {
	t.Helper()
	itest.Integration(t)
	var addr string
	if os.Getenv(EnvAddr) != "" {
		srv, err := start()
		if err != nil {
			t.Fatalf("chtest: %v", err)
		}
		t.Cleanup(func() { _ = srv.Stop() })
		addr = srv.Addr()
	} else {
		addr = Start(t).Addr()
	}
	mu, _ := named.LoadOrStore(name, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	admin := store.Config{Addr: addr, Database: "default"}
	q := store.QuoteIdent(name)
	if err := exec(admin, "DROP DATABASE IF EXISTS "+q); err != nil {
		mu.(*sync.Mutex).Unlock()
		t.Fatalf("chtest: %v", err)
	}
	if err := exec(admin, "CREATE DATABASE "+q); err != nil {
		mu.(*sync.Mutex).Unlock()
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		defer mu.(*sync.Mutex).Unlock()
		if err := exec(admin, "DROP DATABASE IF EXISTS "+q); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	return store.Config{Addr: addr, Database: name}
}

// NewDatabase creates a database of its own for the test on the server of
// Start and drops it when the test ends. The returned Config points at it.
func NewDatabase(t testing.TB) store.Config {
	t.Helper()
	srv := Start(t)
	shared.mu.Lock()
	shared.dbSeq++
	name := fmt.Sprintf("kt_%s_%d_%d", sanitize(t.Name()), os.Getpid(), shared.dbSeq)
	shared.mu.Unlock()

	admin := store.Config{Addr: srv.Addr(), Database: "default"}
	if err := exec(admin, "CREATE DATABASE IF NOT EXISTS "+store.QuoteIdent(name)); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(admin, "DROP DATABASE IF EXISTS "+store.QuoteIdent(name)); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	return store.Config{Addr: srv.Addr(), Database: name}
}

// Modern returns the test binary's ClickHouse 26.x engine (libchdb behind
// an HTTP listener), starting it at the first call. It is stopped by
// Main/Run, or at the process's exit.
func Modern(t testing.TB) *chdb.Server {
	t.Helper()
	itest.Integration(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.modernTried {
		shared.modernTried = true
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		shared.modern, shared.modernErr = chdb.Start(ctx, chdb.Options{Logger: log})
	}
	if shared.modernErr != nil {
		t.Fatalf("chtest: ClickHouse 26.x: %v", shared.modernErr)
	}
	return shared.modern
}

// NewModernDatabase is NewDatabase on the 26.x engine of Modern.
func NewModernDatabase(t testing.TB) store.Config {
	t.Helper()
	srv := Modern(t)
	shared.mu.Lock()
	shared.dbSeq++
	name := fmt.Sprintf("kt_%s_%d", sanitize(t.Name()), shared.dbSeq)
	shared.mu.Unlock()
	admin := store.Config{Addr: srv.Addr(), Database: "default", Protocol: store.ProtocolHTTP}
	if err := exec(admin, "CREATE DATABASE IF NOT EXISTS "+store.QuoteIdent(name)); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(admin, "DROP DATABASE IF EXISTS "+store.QuoteIdent(name)); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	return store.Config{Addr: srv.Addr(), Database: name, Protocol: store.ProtocolHTTP}
}

// Engine is one ClickHouse version (and layout) to run a test on.
type Engine struct {
	// Name is the version family, "18.16" or "26.x", and " cluster" for
	// kaudit's tables on a cluster.
	Name string
	// NewDatabase makes a fresh database on it for the test.
	NewDatabase func(testing.TB) store.Config
}

// Engines are the ClickHouse versions and layouts kaudit is tested on:
// Debian's 18.16 server (Start), the 26.x engine (Modern), and a cluster
// of two 18.16 servers with two shards (NewClusterDatabase: kaudit's
// tables replicated and Distributed). The first is the reference the
// others are compared with.
func Engines() []Engine {
	return []Engine{{"18.16", NewDatabase}, {"26.x", NewModernDatabase}, {"18.16 cluster", NewClusterDatabase}}
}

// Open connects to cfg and closes the connection when the test ends.
func Open(t testing.TB, cfg store.Config) driver.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Migrated is NewDatabase with kaudit's migrations applied, and a
// connection to it (closed when the test ends).
func Migrated(t testing.TB) (store.Config, driver.Conn) {
	t.Helper()
	cfg := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	return cfg, Open(t, cfg)
}

func exec(cfg store.Config, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, query); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return nil
}

// sanitize turns a test name into a short identifier part.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}
