package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Proxy is a running Kafka protocol proxy. Create it with New, serve with
// Run.
type Proxy struct {
	cfg Config
	log *slog.Logger

	bootstrap net.Listener
	listenIP  string // host part of Config.Listen, for broker listeners

	ctx     context.Context // Run's context; listeners stop with it
	mu      sync.Mutex
	brokers map[int32]*broker
	changed chan struct{} // closed (and replaced) when brokers change
	next    int           // round robin over Config.Upstream

	conns   sync.Map // *conn -> struct{}
	connWG  sync.WaitGroup
	lnWG    sync.WaitGroup
	connSeq atomic.Uint64

	topics    sync.Map // [16]byte -> string
	clusterID atomic.Pointer[string]
	groups    groupMap

	obsQ []*queue[observation]
	audQ []*queue[*AuditEvent]

	lastDiscover atomic.Int64
	stats        counters
}

// broker is one upstream broker and the listener clients reach it on.
type broker struct {
	node     int32
	upstream string
	ln       net.Listener
	port     int32
}

// New checks cfg and binds the bootstrap listener (so Addr is known before
// Run); it starts nothing else.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on %s: %w", cfg.Listen, err)
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	p := &Proxy{
		cfg:       cfg,
		log:       cfg.Logger,
		bootstrap: ln,
		listenIP:  host,
		brokers:   map[int32]*broker{},
		changed:   make(chan struct{}),
		groups:    groupMap{m: map[clientKey]groupSeen{}},
	}
	return p, nil
}

// Addr is the clients' bootstrap address.
func (p *Proxy) Addr() string { return p.bootstrap.Addr().String() }

// BrokerAddr returns the proxy's address for broker node, if it has one.
func (p *Proxy) BrokerAddr(node int32) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.brokers[node]
	if !ok {
		return "", false
	}
	return net.JoinHostPort(p.cfg.AdvertisedHost, strconv.Itoa(int(b.port))), true
}

// Run serves clients until ctx ends, then closes every listener and
// connection, lets the observers and auditors drain their queues (bounded
// by 10 seconds), closes them and returns.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()

	for _, o := range p.cfg.Observers {
		p.obsQ = append(p.obsQ, newQueue(fmt.Sprintf("observer %T", o), p.cfg.QueueSize, func(ob observation) { o.Record(ob.req, ob.resp) }))
	}
	for _, a := range p.cfg.Auditors {
		p.audQ = append(p.audQ, newQueue(fmt.Sprintf("auditor %T", a), p.cfg.QueueSize, a.Audit))
	}

	for node, addr := range p.cfg.Brokers {
		host, port, err := splitHostPort(addr)
		if err != nil {
			return fmt.Errorf("proxy: broker %d: %w", node, err)
		}
		if _, _, err := p.Advertise(node, host, port); err != nil {
			return err
		}
	}
	p.lnWG.Add(1)
	go p.accept(p.bootstrap, -1)
	if p.cfg.Discover {
		if err := p.discover(ctx); err != nil {
			p.log.Warn("proxy: broker discovery failed; brokers are learned from client traffic", "err", err)
		}
	}
	go p.sweepGroups(ctx)
	p.log.Info("proxy: serving", "bootstrap", p.Addr(), "upstream", p.cfg.Upstream, "advertised_host", p.cfg.AdvertisedHost)

	<-ctx.Done()
	p.bootstrap.Close()
	p.mu.Lock()
	for _, b := range p.brokers {
		b.ln.Close()
	}
	p.mu.Unlock()
	p.lnWG.Wait()
	p.conns.Range(func(k, _ any) bool {
		k.(*conn).close("proxy shutting down")
		return true
	})
	p.connWG.Wait()

	stop, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelStop()
	var errs []error
	for i, q := range p.obsQ {
		if err := q.stop(stop); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %s: %w", q.name, err))
		}
		if err := p.cfg.Observers[i].Close(stop); err != nil {
			errs = append(errs, fmt.Errorf("proxy: close %s: %w", q.name, err))
		}
	}
	for i, q := range p.audQ {
		if err := q.stop(stop); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %s: %w", q.name, err))
		}
		if err := p.cfg.Auditors[i].Close(stop); err != nil {
			errs = append(errs, fmt.Errorf("proxy: close %s: %w", q.name, err))
		}
	}
	p.log.Info("proxy: stopped", "stats", p.Stats())
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, int32(n), nil
}

// Advertise implements Advertiser: it records broker node's upstream
// address, starts its listener if it has none, and returns the proxy's
// address for it.
func (p *Proxy) Advertise(node int32, host string, port int32) (string, int32, error) {
	upstream := net.JoinHostPort(host, strconv.Itoa(int(port)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if b, ok := p.brokers[node]; ok {
		if b.upstream != upstream {
			p.log.Info("proxy: broker moved", "node", node, "from", b.upstream, "to", upstream)
			b.upstream = upstream
			p.signalLocked()
		}
		return p.cfg.AdvertisedHost, b.port, nil
	}
	if p.ctx == nil || p.ctx.Err() != nil {
		return "", 0, errors.New("proxy is not running")
	}
	lport := 0
	if p.cfg.BrokerPortBase > 0 {
		lport = p.cfg.BrokerPortBase + int(node)
		if node < 0 || lport > 65535 {
			return "", 0, fmt.Errorf("node id %d does not fit above broker port base %d", node, p.cfg.BrokerPortBase)
		}
	}
	addr := net.JoinHostPort(p.listenIP, strconv.Itoa(lport))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen for broker %d on %s: %w", node, addr, err)
	}
	b := &broker{node: node, upstream: upstream, ln: ln, port: int32(ln.Addr().(*net.TCPAddr).Port)}
	p.brokers[node] = b
	p.signalLocked()
	p.log.Info("proxy: proxying broker", "node", node, "upstream", upstream, "listen", ln.Addr().String())
	p.lnWG.Add(1)
	go p.accept(ln, node)
	return p.cfg.AdvertisedHost, b.port, nil
}

func (p *Proxy) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// upstreamFor returns the upstream address for node, waiting up to
// UnknownBrokerWait for it to be learned.
func (p *Proxy) upstreamFor(ctx context.Context, node int32) (string, error) {
	if node < 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.cfg.Upstream) == 0 {
			for _, b := range p.brokers {
				return b.upstream, nil
			}
		}
		a := p.cfg.Upstream[p.next%len(p.cfg.Upstream)]
		p.next++
		return a, nil
	}
	deadline := time.NewTimer(p.cfg.UnknownBrokerWait)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		b, ok := p.brokers[node]
		ch := p.changed
		p.mu.Unlock()
		if ok && b.upstream != "" {
			return b.upstream, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", fmt.Errorf("broker %d is not known yet", node)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (p *Proxy) accept(ln net.Listener, node int32) {
	defer p.lnWG.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				p.log.Error("proxy: accept failed; listener stopped", "listen", ln.Addr().String(), "err", err)
			}
			return
		}
		p.stats.accepted.Add(1)
		p.connWG.Add(1)
		go func() {
			defer p.connWG.Done()
			p.serve(c, node)
		}()
	}
}

// dial connects to a broker, with TLS if configured.
func (p *Proxy) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	if p.cfg.UpstreamTLS == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	cfg := p.cfg.UpstreamTLS.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg.ServerName = host
	}
	td := &tls.Dialer{NetDialer: d, Config: cfg}
	return td.DialContext(ctx, "tcp", addr)
}

// discover asks the cluster for its brokers and learns them.
func (p *Proxy) discover(ctx context.Context) error {
	p.lastDiscover.Store(time.Now().UnixNano())
	opts := []kgo.Opt{kgo.SeedBrokers(p.cfg.Upstream...)}
	if p.cfg.UpstreamTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(p.cfg.UpstreamTLS.Clone()))
	}
	opts = append(opts, p.cfg.DiscoveryOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	p.learn(resp)
	for _, b := range resp.Brokers {
		if _, _, err := p.Advertise(b.NodeID, b.Host, b.Port); err != nil {
			return err
		}
	}
	return nil
}

// maybeDiscover runs discover in the background, at most once a second.
func (p *Proxy) maybeDiscover() {
	if !p.cfg.Discover {
		return
	}
	last := p.lastDiscover.Load()
	now := time.Now().UnixNano()
	if now-last < int64(time.Second) || !p.lastDiscover.CompareAndSwap(last, now) {
		return
	}
	go func() {
		if err := p.discover(p.ctx); err != nil {
			p.log.Warn("proxy: broker discovery failed", "err", err)
		}
	}()
}

// learn keeps what responses say about the cluster: its id and the names
// of topic ids (newer Fetch, Produce and OffsetCommit versions carry ids).
func (p *Proxy) learn(resp kmsg.Response) {
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		if r.ClusterID != nil && *r.ClusterID != "" {
			p.setClusterID(*r.ClusterID)
		}
		for _, t := range r.Topics {
			if t.Topic != nil && t.TopicID != [16]byte{} {
				p.topics.Store(t.TopicID, *t.Topic)
			}
		}
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			if t.ErrorCode == 0 && t.TopicID != [16]byte{} {
				p.topics.Store(t.TopicID, t.Topic)
			}
		}
	case *kmsg.DescribeClusterResponse:
		if r.ClusterID != "" {
			p.setClusterID(r.ClusterID)
		}
	}
}

func (p *Proxy) setClusterID(id string) {
	if cur := p.clusterID.Load(); cur == nil || *cur != id {
		p.clusterID.Store(&id)
	}
}

// ClusterID is the upstream cluster's id, "" until a response named it.
func (p *Proxy) ClusterID() string {
	if id := p.clusterID.Load(); id != nil {
		return *id
	}
	return ""
}

func (p *Proxy) topicName(id [16]byte) string {
	if n, ok := p.topics.Load(id); ok {
		return n.(string)
	}
	return ""
}

func (p *Proxy) sweepGroups(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.groups.sweep(p.cfg.Now().Add(-time.Hour))
		}
	}
}

// clientKey names one client: what its connections have in common.
type clientKey struct {
	principal, ip, clientID string
}

type groupSeen struct {
	group string
	seen  time.Time
}

// groupMap remembers the consumer group each client last named.
type groupMap struct {
	mu sync.Mutex
	m  map[clientKey]groupSeen
}

func (g *groupMap) set(k clientKey, group string, now time.Time) {
	g.mu.Lock()
	g.m[k] = groupSeen{group, now}
	g.mu.Unlock()
}

func (g *groupMap) get(k clientKey) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[k].group
}

func (g *groupMap) sweep(before time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, v := range g.m {
		if v.seen.Before(before) {
			delete(g.m, k)
		}
	}
}
