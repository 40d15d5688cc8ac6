package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Proxy.
type Config struct {
	// Upstream is the real cluster's bootstrap list (host:port).
	Upstream []string
	// Listen is the clients' bootstrap address (host:port; port 0 picks a
	// free one, see Proxy.Addr). Default 127.0.0.1:19092.
	Listen string
	// AdvertisedHost is the host the proxy gives clients for every broker
	// in rewritten responses. Default: Listen's host, or the machine's
	// host name if that is empty or unspecified (0.0.0.0, ::).
	AdvertisedHost string
	// BrokerPortBase: the upstream broker with node id N is proxied on port
	// BrokerPortBase+N (Listen's host). 0 means Listen's port + 1, or, if
	// Listen's port is 0, a free port per broker (which changes across
	// restarts, so clients must bootstrap again after one). A fixed base
	// keeps the addresses clients cached valid across proxy restarts.
	BrokerPortBase int
	// Brokers are upstream broker addresses known in advance (node id to
	// host:port); the proxy also learns them from Metadata,
	// FindCoordinator and DescribeCluster responses and from Discover.
	Brokers map[int32]string

	// ClientTLS, if set, is the TLS configuration clients connect with
	// (certificate and, for mutual TLS, ClientAuth and ClientCAs). A
	// verified client certificate makes the connection's principal
	// "User:<subject DN>" unless SASL names one.
	ClientTLS *tls.Config
	// UpstreamTLS, if set, is used to reach the brokers (RootCAs: the
	// upstream CA; Certificates: the proxy's own client certificate).
	UpstreamTLS *tls.Config

	// Discover asks the upstream cluster for its brokers at start and
	// whenever a client connects to a broker port the proxy does not know
	// yet, with a Kafka client built from DiscoveryOpts (seed brokers,
	// TLS and SASL are added from Upstream and UpstreamTLS unless given).
	// Without it (or when the cluster wants credentials the options do not
	// have), brokers are learned from the responses clients get.
	Discover      bool
	DiscoveryOpts []kgo.Opt

	// MaxFrameBytes is the largest request or response accepted
	// (default DefaultMaxFrameBytes); a larger one closes that connection.
	MaxFrameBytes int
	// MaxInFlight is how many requests one connection may have waiting
	// for responses before the proxy stops reading more (default 1024).
	MaxInFlight int
	// DialTimeout bounds connecting to a broker (default 10s).
	DialTimeout time.Duration
	// UnknownBrokerWait is how long a connection to a broker port waits
	// for that broker's address to be learned (default 10s).
	UnknownBrokerWait time.Duration
	// DrainTimeout is how long the proxy keeps reading responses for the
	// requests of a client that went away, to audit their outcome
	// (default 30s).
	DrainTimeout time.Duration

	// Observers get every request/response pair (KIP-388); Auditors one
	// event per audited request (KIP-567). Each gets its own queue of
	// QueueSize entries (default 65536); a full queue drops and counts.
	Observers []Observer
	Auditors  []Auditor
	QueueSize int

	// Name identifies this proxy in audit events (default: host name).
	Name   string
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *Config) setDefaults() error {
	if len(c.Upstream) == 0 && len(c.Brokers) == 0 {
		return errors.New("proxy: no upstream brokers")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:19092"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("proxy: listen address %q: %w", c.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("proxy: listen port %q", port)
	}
	if c.BrokerPortBase == 0 && p != 0 {
		c.BrokerPortBase = p + 1
	}
	if c.BrokerPortBase < 0 || c.BrokerPortBase > 65535 {
		return fmt.Errorf("proxy: broker port base %d", c.BrokerPortBase)
	}
	if c.AdvertisedHost == "" {
		c.AdvertisedHost = host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if c.AdvertisedHost, err = os.Hostname(); err != nil {
				return fmt.Errorf("proxy: advertised host: %w", err)
			}
		}
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.UnknownBrokerWait <= 0 {
		c.UnknownBrokerWait = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 65536
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
