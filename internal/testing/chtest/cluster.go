package chtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/store"
)

// The clusters of a test Cluster: the same two nodes form both.
const (
	// ShardedCluster has two shards of one replica each: node 0 is shard
	// 01, node 1 shard 02.
	ShardedCluster = "kaudit_shards"
	// ReplicatedCluster has one shard of two replicas, nodes 0 and 1. Its
	// tables need ReplicatedPath (the nodes' {shard} macros differ).
	ReplicatedCluster = "kaudit_replicas"
	// ReplicatedPath is the ZooKeeper path of the tables on
	// ReplicatedCluster.
	ReplicatedPath = "/clickhouse/tables/replicas/{database}/{table}"
)

// ClusterNodes is the number of ClickHouse processes of a Cluster.
const ClusterNodes = 2

// Cluster is a ClickHouse cluster on this machine: a ZooKeeper and two
// Debian clickhouse-server (18.16) processes on free ports of 127.0.0.1,
// each with its own temporary directory, macros shard and replica
// (shard 01 / replica n0 and shard 02 / replica n1), remote_servers
// ShardedCluster and ReplicatedCluster, and the distributed DDL queue.
type Cluster struct {
	zk    *chserver.ZooKeeper
	root  string
	log   *slog.Logger
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	opts chserver.Options
	srv  *chserver.Server
	addr string
}

var sharedCluster struct {
	mu    sync.Mutex
	tried bool
	c     *Cluster
	err   error
}

// StartCluster starts a Cluster of the test's own, stopped when the test
// ends (for tests that stop its nodes).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	itest.Integration(t)
	c, err := startCluster()
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(t)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	return c
}

// logTails logs the end of every node's server log (a failed test shows
// what the servers said).
func (c *Cluster) logTails(t testing.TB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		t.Logf("chtest: cluster node %d (%s) log tail:\n%s", i, n.addr, n.srv.LogTail())
	}
}

// SharedCluster returns the test binary's Cluster, starting it at the first
// call; under Main/Run it is stopped after the tests, otherwise at the
// test's end. Tests must not stop its nodes (use StartCluster).
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	itest.Integration(t)
	shared.mu.Lock()
	inMain := shared.inMain
	shared.mu.Unlock()
	if !inMain {
		return StartCluster(t)
	}
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if !sharedCluster.tried {
		sharedCluster.tried = true
		sharedCluster.c, sharedCluster.err = startCluster()
	}
	if sharedCluster.err != nil {
		t.Fatalf("chtest: %v", sharedCluster.err)
	}
	return sharedCluster.c
}

// NewClusterDatabase is NewDatabase on ShardedCluster of SharedCluster:
// the Config names the cluster and both nodes (node 0 first).
func NewClusterDatabase(t testing.TB) store.Config {
	t.Helper()
	return SharedCluster(t).NewDatabase(t, ShardedCluster)
}

// startCluster starts the cluster, again on other ports when a node
// found one of its ports taken (the ports are chosen before any node
// starts, since each node's configuration names the others').
func startCluster() (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startClusterOnce()
		if err == nil || !errors.Is(err, chserver.ErrAddrInUse) || attempt == 3 {
			return c, err
		}
	}
}

func startClusterOnce() (*Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	root, err := os.MkdirTemp("", "kaudit-cluster-")
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{root: root, log: log}
	c.zk, err = chserver.StartZooKeeper(ctx, chserver.ZooKeeperOptions{Dir: filepath.Join(root, "zookeeper"), Logger: log, Install: true})
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// Every port first: each node's remote_servers names all of them.
	ports := make([][3]int, ClusterNodes)
	for i := range ports {
		for j := range ports[i] {
			if ports[i][j], err = freePort(); err != nil {
				_ = c.Stop()
				return nil, err
			}
		}
	}
	addrs := make([]string, ClusterNodes)
	for i := range addrs {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i][0]))
	}
	sharded := chserver.Cluster{Name: ShardedCluster}
	for _, a := range addrs {
		sharded.Shards = append(sharded.Shards, []string{a})
	}
	replicated := chserver.Cluster{Name: ReplicatedCluster, Shards: [][]string{addrs}}
	for i := range ClusterNodes {
		n := &clusterNode{addr: addrs[i], opts: chserver.Options{
			Dir: filepath.Join(root, fmt.Sprintf("node%d", i)), Logger: log, Install: true,
			TCPPort: ports[i][0], HTTPPort: ports[i][1],
			Node: &chserver.Node{
				ZooKeeper:       c.zk.Addr(),
				Macros:          map[string]string{"shard": fmt.Sprintf("%02d", i+1), "replica": fmt.Sprintf("n%d", i)},
				Clusters:        []chserver.Cluster{sharded, replicated},
				InterserverPort: ports[i][2],
			},
		}}
		if n.srv, err = chserver.Start(ctx, n.opts); err != nil {
			_ = c.Stop()
			return nil, fmt.Errorf("cluster node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is every node's native address, node 0 first, comma-separated (as
// store.Config.Addr takes them: clickhouse-go connects to the first that
// answers).
func (c *Cluster) Addr() string {
	var as []string
	for _, n := range c.nodes {
		as = append(as, n.addr)
	}
	return strings.Join(as, ",")
}

// NodeAddr is node i's native address.
func (c *Cluster) NodeAddr(i int) string { return c.nodes[i].addr }

// ZooKeeper is the cluster's ZooKeeper.
func (c *Cluster) ZooKeeper() *chserver.ZooKeeper { return c.zk }

// Kill ends node i with SIGKILL (its data stays for Restart).
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i].srv.Kill()
}

// Restart starts node i again on its directory and ports (after Kill).
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	n := c.nodes[i]
	srv, err := chserver.Start(ctx, n.opts)
	if err != nil {
		t.Fatalf("chtest: restart cluster node %d: %v", i, err)
	}
	n.srv = srv
}

// NewDatabase creates a database of the test's own on every node of
// cluster (ShardedCluster or ReplicatedCluster) and drops it when the test
// ends. The Config names the cluster, every node, and for
// ReplicatedCluster its replica path.
func (c *Cluster) NewDatabase(t testing.TB, cluster string) store.Config {
	t.Helper()
	shared.mu.Lock()
	shared.dbSeq++
	name := fmt.Sprintf("kc_%s_%d_%d", sanitize(t.Name()), os.Getpid(), shared.dbSeq)
	shared.mu.Unlock()
	admin := store.Config{Addr: c.Addr(), Database: "default", Cluster: cluster, DDLTimeout: 25 * time.Second}
	on := admin.Schema().OnCluster()
	if err := exec(admin, "CREATE DATABASE IF NOT EXISTS "+store.QuoteIdent(name)+on); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(admin, "DROP DATABASE IF EXISTS "+store.QuoteIdent(name)+on); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	cfg := store.Config{Addr: c.Addr(), Database: name, Cluster: cluster}
	if cluster == ReplicatedCluster {
		cfg.ReplicaPath = ReplicatedPath
	}
	return cfg
}

// Stop ends every node and the ZooKeeper and removes their directories.
// The nodes are killed (their data goes away): 18.16 servers with
// replicated tables sometimes crash in their graceful shutdown.
func (c *Cluster) Stop() error {
	var errs []string
	for _, n := range c.nodes {
		n.srv.Kill()
	}
	if c.zk != nil {
		if err := c.zk.Stop(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	_ = os.RemoveAll(c.root)
	if len(errs) > 0 {
		return fmt.Errorf("cluster: %s", strings.Join(errs, "; "))
	}
	return nil
}
