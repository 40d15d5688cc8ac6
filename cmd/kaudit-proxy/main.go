// Command kaudit-proxy is kaudit's broker-side audit: a Kafka protocol proxy
// in front of the brokers that audits cluster changes and denied requests
// (KIP-567 auditors) and sums who produces to and consumes from which topic
// per minute (the KIP-388 observer), without patching the brokers. See
// package proxy for how it forwards, names principals and behaves on
// kill -9, and docs/proxy.md for running it.
//
//	kaudit-proxy --upstream kafka-1:9092,kafka-2:9092 --listen 0.0.0.0:19092 \
//	    --advertised-host proxy.internal --auditors log,kafka
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

type config struct {
	cli.Log     `embed:""`
	cli.Metrics `embed:""`

	Upstream       []string `help:"The cluster's bootstrap servers (host:port, comma separated)." env:"KAUDIT_PROXY_UPSTREAM" required:"" sep:","`
	Listen         string   `help:"Clients' bootstrap address; broker N is proxied on --broker-port-base + N." env:"KAUDIT_PROXY_LISTEN" default:"0.0.0.0:19092"`
	AdvertisedHost string   `help:"Host given to clients for the proxied brokers (default: the listen host, or this machine's name)." env:"KAUDIT_PROXY_ADVERTISED_HOST"`
	BrokerPortBase int      `help:"Broker N is proxied on this port + N (default: the listen port + 1)." env:"KAUDIT_PROXY_BROKER_PORT_BASE"`
	Broker         []string `help:"An upstream broker known in advance, NODE=host:port (repeatable); others are learned." env:"KAUDIT_PROXY_BROKERS" sep:","`
	Discover       bool     `help:"Ask the cluster for its brokers at start (with the --audit-sasl-* credentials when --audit-brokers is not set)." env:"KAUDIT_PROXY_DISCOVER" default:"true" negatable:""`
	MaxFrameBytes  int      `help:"Largest request or response accepted; larger closes the connection." env:"KAUDIT_PROXY_MAX_FRAME_BYTES" default:"104857600"`
	Name           string   `help:"This proxy's name in audit events (default: host name)." env:"KAUDIT_PROXY_NAME"`

	TLSCertFile     string `name:"tls-cert-file" help:"PEM certificate clients see (enables TLS for clients)." env:"KAUDIT_PROXY_TLS_CERT_FILE" type:"path"`
	TLSKeyFile      string `name:"tls-key-file" help:"PEM key of --tls-cert-file." env:"KAUDIT_PROXY_TLS_KEY_FILE" type:"path"`
	TLSClientCAFile string `name:"tls-client-ca-file" help:"PEM CAs of client certificates: requires and verifies them (mutual TLS; the certificate subject is the principal unless SASL names one)." env:"KAUDIT_PROXY_TLS_CLIENT_CA_FILE" type:"path"`

	UpstreamTLS        bool   `name:"upstream-tls" help:"Reach the brokers over TLS." env:"KAUDIT_PROXY_UPSTREAM_TLS"`
	UpstreamCAFile     string `name:"upstream-ca-file" help:"PEM CAs to trust for the brokers (system roots if empty)." env:"KAUDIT_PROXY_UPSTREAM_CA_FILE" type:"path"`
	UpstreamCertFile   string `name:"upstream-cert-file" help:"PEM client certificate the proxy shows the brokers." env:"KAUDIT_PROXY_UPSTREAM_CERT_FILE" type:"path"`
	UpstreamKeyFile    string `name:"upstream-key-file" help:"PEM key of --upstream-cert-file." env:"KAUDIT_PROXY_UPSTREAM_KEY_FILE" type:"path"`
	UpstreamServerName string `name:"upstream-server-name" help:"Server name to verify the brokers' certificates against (default: each broker's host)." env:"KAUDIT_PROXY_UPSTREAM_SERVER_NAME"`

	Auditors         []string      `help:"Where audit events and traffic records go, comma separated: log, kafka." env:"KAUDIT_PROXY_AUDITORS" default:"log" sep:","`
	AuditLog         string        `help:"File the log auditor appends JSON lines to; - is stdout." env:"KAUDIT_PROXY_AUDIT_LOG" default:"-"`
	AuditFormat      string        `help:"Audit event format: kaudit, or confluent (CloudEvents in Confluent's audit-log shape)." env:"KAUDIT_PROXY_AUDIT_FORMAT" default:"kaudit" enum:"kaudit,confluent"`
	AdminTopic       string        `help:"Topic of the kafka auditor's audit events." env:"KAUDIT_PROXY_ADMIN_TOPIC" default:"kaudit.admin"`
	TrafficTopic     string        `help:"Topic of the kafka auditor's traffic records; empty for none." env:"KAUDIT_PROXY_TRAFFIC_TOPIC" default:"kaudit.traffic"`
	TopicPartitions  int32         `help:"Partitions of the audit topics, if the proxy creates them." env:"KAUDIT_PROXY_TOPIC_PARTITIONS" default:"3"`
	TopicReplication int16         `help:"Replication factor of the audit topics, if the proxy creates them." env:"KAUDIT_PROXY_TOPIC_REPLICATION" default:"1"`
	TrafficInterval  time.Duration `help:"Window of the traffic records." env:"KAUDIT_PROXY_TRAFFIC_INTERVAL" default:"1m"`
	QueueSize        int           `help:"Queue of each auditor and observer; a full queue drops (counted)." env:"KAUDIT_PROXY_QUEUE_SIZE" default:"65536"`

	AuditBrokers          []string `help:"Cluster the kafka auditor writes to (default: --upstream; it never goes through the proxy)." env:"KAUDIT_PROXY_AUDIT_BROKERS" sep:","`
	AuditSecurityProtocol string   `help:"security.protocol of the audit cluster: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL." env:"KAUDIT_PROXY_AUDIT_SECURITY_PROTOCOL" default:"PLAINTEXT" enum:"PLAINTEXT,SSL,SASL_PLAINTEXT,SASL_SSL"`
	AuditSASLMechanism    string   `name:"audit-sasl-mechanism" help:"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512." env:"KAUDIT_PROXY_AUDIT_SASL_MECHANISM" default:"PLAIN" enum:"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"`
	AuditSASLUsername     string   `name:"audit-sasl-username" help:"User the kafka auditor (and discovery) log in as." env:"KAUDIT_PROXY_AUDIT_SASL_USERNAME"`
	AuditSASLPassword     string   `name:"audit-sasl-password" help:"Its password." env:"KAUDIT_PROXY_AUDIT_SASL_PASSWORD"`
	AuditTLSCAFile        string   `name:"audit-tls-ca-file" help:"PEM CAs of the audit cluster." env:"KAUDIT_PROXY_AUDIT_TLS_CA_FILE" type:"path"`
}

func main() {
	var cfg config
	kong.Parse(&cfg, kong.Description("kaudit proxy: a Kafka protocol proxy that audits cluster changes, denied requests and who uses which topic."))
	log := cfg.Logger(os.Stderr)
	if err := run(cfg, log); err != nil {
		log.Error("kaudit-proxy failed", "err", err)
		os.Exit(1)
	}
}

func run(cfg config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pcfg := proxy.Config{
		Upstream: cfg.Upstream, Listen: cfg.Listen, AdvertisedHost: cfg.AdvertisedHost, BrokerPortBase: cfg.BrokerPortBase,
		Brokers: map[int32]string{}, Discover: cfg.Discover, MaxFrameBytes: cfg.MaxFrameBytes, QueueSize: cfg.QueueSize,
		Name: cfg.Name, Logger: log,
	}
	if pcfg.Name == "" {
		pcfg.Name, _ = os.Hostname()
	}
	for _, b := range cfg.Broker {
		node, addr, ok := strings.Cut(b, "=")
		n, err := strconv.Atoi(node)
		if !ok || err != nil {
			return fmt.Errorf("--broker %q: want NODE=host:port", b)
		}
		pcfg.Brokers[int32(n)] = addr
	}
	var err error
	if pcfg.ClientTLS, err = cfg.clientTLS(); err != nil {
		return err
	}
	if pcfg.UpstreamTLS, err = cfg.upstreamTLS(); err != nil {
		return err
	}
	audit := cli.Kafka{
		Brokers: cfg.AuditBrokers, SecurityProtocol: cfg.AuditSecurityProtocol, SASLMechanism: cfg.AuditSASLMechanism,
		SASLUsername: cfg.AuditSASLUsername, SASLPassword: cfg.AuditSASLPassword, TLSCAFile: cfg.AuditTLSCAFile,
	}
	sameCluster := len(audit.Brokers) == 0
	if sameCluster {
		audit.Brokers = cfg.Upstream
	}
	auditOpts, err := audit.KgoOpts()
	if err != nil {
		return err
	}
	if sameCluster && strings.HasPrefix(cfg.AuditSecurityProtocol, "SASL") {
		// Discovery reaches the upstream with the proxy's own TLS and the
		// audit user's credentials.
		saslOnly := audit
		saslOnly.SecurityProtocol = "SASL_PLAINTEXT"
		opts, err := saslOnly.ClientOpts()
		if err != nil {
			return err
		}
		pcfg.DiscoveryOpts = opts
	}

	format, err := auditors.ParseFormat(cfg.AuditFormat)
	if err != nil {
		return err
	}
	var writers []traffic.Writer
	for _, name := range cfg.Auditors {
		switch strings.TrimSpace(name) {
		case "log":
			var w io.Writer = os.Stdout
			var closer io.Closer
			if cfg.AuditLog != "-" {
				f, err := os.OpenFile(cfg.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
				if err != nil {
					return fmt.Errorf("audit log: %w", err)
				}
				w, closer = f, f
			}
			lg := auditors.NewLog(w, closer, format, log)
			pcfg.Auditors = append(pcfg.Auditors, lg)
			writers = append(writers, lg)
		case "kafka":
			k, err := auditors.NewKafka(ctx, auditors.KafkaConfig{
				ClientOpts: auditOpts, AdminTopic: cfg.AdminTopic, TrafficTopic: cfg.TrafficTopic, Format: format,
				Partitions: cfg.TopicPartitions, Replication: cfg.TopicReplication, Logger: log,
			})
			if err != nil {
				return err
			}
			pcfg.Auditors = append(pcfg.Auditors, k)
			writers = append(writers, k)
		case "":
		default:
			return fmt.Errorf("--auditors: unknown auditor %q (log, kafka)", name)
		}
	}
	if len(writers) > 0 {
		pcfg.Observers = append(pcfg.Observers, traffic.New(traffic.Config{
			Interval: cfg.TrafficInterval, Writers: writers, Proxy: pcfg.Name, Logger: log,
		}))
	}

	p, err := proxy.New(pcfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Collector())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cfg.Serve(ctx, reg, nil) })
	g.Go(func() error { return p.Run(ctx) })
	return g.Wait()
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificates in %s", path)
	}
	return pool, nil
}

func (c *config) clientTLS() (*tls.Config, error) {
	if c.TLSCertFile == "" {
		if c.TLSClientCAFile != "" {
			return nil, fmt.Errorf("--tls-client-ca-file needs --tls-cert-file")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("client tls: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.TLSClientCAFile != "" {
		if cfg.ClientCAs, err = loadPool(c.TLSClientCAFile); err != nil {
			return nil, fmt.Errorf("client tls: %w", err)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func (c *config) upstreamTLS() (*tls.Config, error) {
	if !c.UpstreamTLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.UpstreamServerName}
	var err error
	if c.UpstreamCAFile != "" {
		if cfg.RootCAs, err = loadPool(c.UpstreamCAFile); err != nil {
			return nil, fmt.Errorf("upstream tls: %w", err)
		}
	}
	if c.UpstreamCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.UpstreamCertFile, c.UpstreamKeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream tls: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
