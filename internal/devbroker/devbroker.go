// Package devbroker runs kaudit's embedded development broker: kfake, a
// Kafka-protocol broker in Go, with its data kept in a folder so topics and
// offsets survive a restart. It is what `make demo` and the tests use in
// place of a Kafka cluster.
//
//	b, err := devbroker.Start(devbroker.Config{Addr: "127.0.0.1:9092", DataDir: ".kaudit/kafka"})
//	defer b.Close()
//	brokers := []string{b.Addr()}
package devbroker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures Start.
type Config struct {
	// Addr is the listen address; if its port is taken, a free port is
	// used instead (and logged). Empty means 127.0.0.1 on a free port.
	Addr string
	// DataDir keeps the broker's data across runs; empty keeps it in
	// memory only.
	DataDir string
	// Partitions is the partition count of auto-created topics.
	Partitions int
	Logger     *slog.Logger
}

// Broker is a running development broker.
type Broker struct {
	c *kfake.Cluster
}

// Start starts the broker.
func Start(cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	host, port := "127.0.0.1", 0
	if cfg.Addr != "" {
		h, p, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("devbroker: address %q: %w", cfg.Addr, err)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("devbroker: port %q: %w", p, err)
		}
		if h != "" {
			host = h
		}
	}
	if port != 0 && !free(host, port) {
		cfg.Logger.Warn("dev broker: port taken, using a free one", "addr", cfg.Addr)
		port = 0
	}
	if port == 0 {
		p, err := freePort(host)
		if err != nil {
			return nil, err
		}
		port = p
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(addr)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("devbroker: data dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: start kfake: %w", err)
	}
	return &Broker{c: c}, nil
}

// Addr is the broker's bootstrap address.
func (b *Broker) Addr() string { return b.c.ListenAddrs()[0] }

// Cluster is the underlying kfake cluster (fault injection in tests).
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker, persisting its data.
func (b *Broker) Close() { b.c.Close() }

func free(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("devbroker: find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("devbroker: listener has no TCP address")
	}
	return addr.Port, nil
}
