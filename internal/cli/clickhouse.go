package cli

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/store"
)

// ClickHouse is how to reach ClickHouse.
type ClickHouse struct {
	ClickHouseAddr     string `name:"clickhouse-addr" help:"ClickHouse native protocol address (host:port)." env:"KAUDIT_CLICKHOUSE_ADDR" default:"127.0.0.1:9000"`
	ClickHouseDatabase string `name:"clickhouse-database" help:"ClickHouse database." env:"KAUDIT_CLICKHOUSE_DATABASE" default:"kaudit"`
	ClickHouseUser     string `name:"clickhouse-user" help:"ClickHouse user." env:"KAUDIT_CLICKHOUSE_USER" default:"default"`
	ClickHousePassword string `name:"clickhouse-password" help:"ClickHouse password." env:"KAUDIT_CLICKHOUSE_PASSWORD"`
	ClickHouseTLS      bool   `name:"clickhouse-tls" help:"Use TLS to reach ClickHouse." env:"KAUDIT_CLICKHOUSE_TLS"`
	ClickHouseCluster  string `name:"clickhouse-cluster" aliases:"cluster" help:"ClickHouse cluster (remote_servers name) holding kaudit's tables: replicated local tables and Distributed tables over them (docs/clickhouse-cluster.md); empty for one server." env:"KAUDIT_CLICKHOUSE_CLUSTER" placeholder:"NAME"`
	ReplicaPath        string `name:"clickhouse-replica-path" help:"With --clickhouse-cluster: ZooKeeper path of each replicated table; kaudit fills {database} and {table}, ClickHouse its macros. Empty: ${default_replica_path} (ClickHouse 18.16) or ${default_replica_path_uuid} (Atomic databases, 20.10 and later)." env:"KAUDIT_CLICKHOUSE_REPLICA_PATH" placeholder:"PATH"`
}

// String describes the target without the password.
func (c *ClickHouse) String() string {
	s := fmt.Sprintf("clickhouse://%s@%s/%s", c.ClickHouseUser, c.ClickHouseAddr, c.ClickHouseDatabase)
	if c.ClickHouseCluster != "" {
		s += " on cluster " + c.ClickHouseCluster
	}
	return s
}

// Open connects to ClickHouse; the caller closes the connection.
func (c *ClickHouse) Open(ctx context.Context) (driver.Conn, store.Config, error) {
	cfg := c.Config()
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, cfg, err
	}
	return conn, cfg, nil
}

// Config returns the connection settings as a store.Config.
func (c *ClickHouse) Config() store.Config {
	return store.Config{
		Addr:        c.ClickHouseAddr,
		Database:    c.ClickHouseDatabase,
		User:        c.ClickHouseUser,
		Password:    c.ClickHousePassword,
		TLS:         c.ClickHouseTLS,
		Cluster:     c.ClickHouseCluster,
		ReplicaPath: c.ReplicaPath,
	}.WithDefaults()
}
