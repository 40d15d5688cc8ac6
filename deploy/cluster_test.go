package deploy_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/internal/testing/itest"
)

// clusterConfig is the part of deploy/clickhouse-cluster/cluster.xml and
// the macros files the test reads.
type clusterConfig struct {
	Remote struct {
		Clusters []struct {
			XMLName xml.Name
			Shards  []struct {
				Internal string `xml:"internal_replication"`
				Replicas []struct {
					Host     string `xml:"host"`
					Port     int    `xml:"port"`
					User     string `xml:"user"`
					Password struct {
						FromEnv string `xml:"from_env,attr"`
					} `xml:"password"`
				} `xml:"replica"`
			} `xml:"shard"`
		} `xml:",any"`
	} `xml:"remote_servers"`
	ZooKeeper struct {
		Host string `xml:"node>host"`
		Port int    `xml:"node>port"`
	} `xml:"zookeeper"`
	DDL    string `xml:"distributed_ddl>path"`
	Macros struct {
		Shard   string `xml:"shard"`
		Replica string `xml:"replica"`
	} `xml:"macros"`
	Keeper struct {
		Port     int    `xml:"tcp_port"`
		ServerID int    `xml:"server_id"`
		Raft     string `xml:"raft_configuration>server>hostname"`
	} `xml:"keeper_server"`
}

func readClusterXML(t *testing.T, root, name string) clusterConfig {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "clickhouse-cluster", name))
	if err != nil {
		t.Fatal(err)
	}
	var c clusterConfig
	if err := xml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// flagValue returns the value after flag in argv.
func flagValue(argv []string, flag string) string {
	if i := slices.Index(argv, flag); i >= 0 && i+1 < len(argv) {
		return argv[i+1]
	}
	return ""
}

// The compose profile "cluster" (docker compose --profile cluster up): a
// Keeper, two ClickHouse nodes whose mounted configuration is one cluster
// of two shards with distinct macros, and kaudit's migrate job, sink and
// dashboard pointed at that cluster, all outside the default stack.
func TestComposeClusterProfile(t *testing.T) {
	itest.Integration(t)
	root := moduleRoot(t)
	cf := loadCompose(t, root, "cluster")
	nodes := []string{"clickhouse-1", "clickhouse-2"}
	profileServices := append([]string{"clickhouse-keeper", "migrate-cluster", "sink-cluster", "dashboard-cluster"}, nodes...)
	for _, name := range profileServices {
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("service %s missing with --profile cluster; have %v", name, serviceNames(cf))
		}
		if !slices.Equal(s.Profiles, []string{"cluster"}) {
			t.Errorf("service %s: profiles %v, want [cluster] (outside the default stack)", name, s.Profiles)
		}
	}
	for _, name := range serviceNames(cf) {
		if !slices.Contains(profileServices, name) && len(cf.Services[name].Profiles) > 0 {
			t.Errorf("service %s of the default stack has profiles %v", name, cf.Services[name].Profiles)
		}
	}

	cluster := readClusterXML(t, root, "cluster.xml")
	if len(cluster.Remote.Clusters) != 1 {
		t.Fatalf("cluster.xml defines %d clusters, want 1", len(cluster.Remote.Clusters))
	}
	cl := cluster.Remote.Clusters[0]
	name := cl.XMLName.Local
	var hosts []string
	for _, sh := range cl.Shards {
		if sh.Internal != "true" || len(sh.Replicas) != 1 {
			t.Errorf("shard %+v: want internal_replication and one replica", sh)
		}
		for _, r := range sh.Replicas {
			hosts = append(hosts, fmt.Sprintf("%s:%d", r.Host, r.Port))
			if r.User != "kaudit" || r.Password.FromEnv != "CLICKHOUSE_PASSWORD" {
				t.Errorf("replica %s: user %q password from %q; want kaudit and $CLICKHOUSE_PASSWORD", r.Host, r.User, r.Password.FromEnv)
			}
		}
	}
	if want := []string{"clickhouse-1:9000", "clickhouse-2:9000"}; !slices.Equal(hosts, want) {
		t.Errorf("cluster %s has replicas %v, want %v", name, hosts, want)
	}
	keeper := readClusterXML(t, root, "keeper.xml")
	if cluster.ZooKeeper.Host != "clickhouse-keeper" || cluster.ZooKeeper.Port != keeper.Keeper.Port || keeper.Keeper.Raft != "clickhouse-keeper" || cluster.DDL == "" {
		t.Errorf("nodes reach ZooKeeper at %s:%d, the Keeper listens on %d (raft host %q); distributed DDL path %q",
			cluster.ZooKeeper.Host, cluster.ZooKeeper.Port, keeper.Keeper.Port, keeper.Keeper.Raft, cluster.DDL)
	}
	mountsOf := func(svc string) map[string]string {
		m := map[string]string{}
		for _, v := range cf.Services[svc].Volumes {
			src, dst := volume(t, v)
			m[dst] = src
		}
		return m
	}
	if src := mountsOf("clickhouse-keeper")["/etc/clickhouse-keeper/keeper_config.xml"]; !samePath(src, filepath.Join(root, "deploy", "clickhouse-cluster", "keeper.xml")) {
		t.Errorf("keeper config mounted from %q", src)
	}
	shards := map[string]string{}
	for i, node := range nodes {
		m := mountsOf(node)
		if src := m["/etc/clickhouse-server/config.d/kaudit-cluster.xml"]; !samePath(src, filepath.Join(root, "deploy", "clickhouse-cluster", "cluster.xml")) {
			t.Errorf("%s mounts %q as its cluster config", node, src)
		}
		macrosFile := fmt.Sprintf("macros-%d.xml", i+1)
		if src := m["/etc/clickhouse-server/config.d/kaudit-macros.xml"]; !samePath(src, filepath.Join(root, "deploy", "clickhouse-cluster", macrosFile)) {
			t.Errorf("%s mounts %q as its macros", node, src)
		}
		mac := readClusterXML(t, root, macrosFile).Macros
		if mac.Shard == "" || mac.Replica != node || shards[mac.Shard] != "" {
			t.Errorf("%s: macros %+v (shards so far %v): want a shard of its own and replica %s", node, mac, shards, node)
		}
		shards[mac.Shard] = node
		if !cf.Services[node].healthy() || cf.Services[node].Environment["CLICKHOUSE_USER"] != "kaudit" {
			t.Errorf("%s: no healthcheck or user %q", node, cf.Services[node].Environment["CLICKHOUSE_USER"])
		}
	}

	// kaudit's services of the profile use the cluster, through both nodes.
	for _, svc := range []string{"migrate-cluster", "sink-cluster", "dashboard-cluster"} {
		argv := cf.Services[svc].argv(t, svc)
		c := flagValue(argv, "--clickhouse-cluster")
		if c == "" {
			c = flagValue(argv, "--cluster")
		}
		if c != name || flagValue(argv, "--clickhouse-addr") != strings.Join(hosts, ",") {
			t.Errorf("%s: cluster %q at %q, want %s at %s", svc, c, flagValue(argv, "--clickhouse-addr"), name, strings.Join(hosts, ","))
		}
	}
	if deps := cf.Services["sink-cluster"].dependsOn(t, "sink-cluster"); deps["migrate-cluster"] != "service_completed_successfully" {
		t.Errorf("sink-cluster depends on migrate-cluster with %q", deps["migrate-cluster"])
	}
	if g := flagValue(cf.Services["sink-cluster"].argv(t, "sink-cluster"), "--group"); g == "" || g == "kaudit-sink-clickhouse" {
		t.Errorf("sink-cluster's consumer group %q must differ from the default sink's", g)
	}
}
