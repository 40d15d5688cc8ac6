// Package traffic is kaudit-proxy's default KIP-388 observer: it sums every
// request/response pair into per-window (one minute by default) traffic
// records per client and topic — who produces to and consumes from which
// topic, and how much — and hands each closed window to its writers (the
// log and kafka auditors, see package auditors).
//
//	agg := traffic.New(traffic.Config{Writers: []traffic.Writer{logAuditor}})
//	p, _ := proxy.New(proxy.Config{Upstream: brokers, Observers: []proxy.Observer{agg}})
//
// A record's key is (window, principal, client id, client address, consumer
// group, topic, API key). Rows with a topic carry that topic's share of
// Produce and Fetch: records and record-batch bytes read from the batch
// headers (Produce: of the partitions the broker accepted; acks=0 produces
// count as sent), the partitions that failed (errors) and the requests that
// touched the topic. Rows with topic "" are the per-API totals of every
// request kind: requests, request and response bytes and error codes.
// Client address is the client's IP (ports change per connection).
//
// On kill -9 the current window's sums are lost (at most one window of
// one proxy's counts); closed windows were handed to the writers.
package traffic

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kaudit/kaudit/proxy"
)

// Record is one window's traffic of one client on one topic and API. Its
// JSON form is what the log and kafka auditors write (type "traffic").
type Record struct {
	Type        string    `json:"type"` // "traffic"
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Proxy names the proxy; Instance is random per proxy process, so
	// records of two proxies (or of one before and after a restart) for
	// the same window never collapse into one when stored.
	Proxy         string `json:"proxy"`
	Instance      string `json:"instance"`
	Principal     string `json:"principal"`
	ClientID      string `json:"client_id"`
	ClientAddress string `json:"client_address"`
	Group         string `json:"consumer_group"`
	Topic         string `json:"topic"`
	APIKey        int16  `json:"api_key"`
	API           string `json:"api"`
	Requests      int64  `json:"requests"`
	Errors        int64  `json:"errors"`
	Records       int64  `json:"records"`
	Bytes         int64  `json:"bytes"`
	RequestBytes  int64  `json:"request_bytes"`
	ResponseBytes int64  `json:"response_bytes"`
}

// Writer takes the records of closed windows. WriteTraffic is called from
// one goroutine and must not keep the slice.
type Writer interface {
	WriteTraffic(recs []Record)
}

// Config configures an Aggregator.
type Config struct {
	// Interval is the window length (default one minute); windows are
	// aligned to multiples of it.
	Interval time.Duration
	Writers  []Writer
	// Proxy names the proxy in the records (default: host name).
	Proxy string
	// Instance identifies this process (default: a random UUID).
	Instance string
	Now      func() time.Time
	Logger   *slog.Logger
}

type key struct {
	window    int64
	principal string
	clientID  string
	ip        string
	group     string
	topic     string
	api       int16
}

type sums struct {
	requests, errors, records, bytes, reqBytes, respBytes int64
}

// Aggregator is a proxy.Observer.
type Aggregator struct {
	cfg  Config
	mu   sync.Mutex
	open map[key]*sums
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ proxy.Observer = (*Aggregator)(nil)

// New starts an Aggregator; its flusher hands each window to the writers
// once the window has ended.
func New(cfg Config) *Aggregator {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Instance == "" {
		cfg.Instance = uuid.NewString()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{cfg: cfg, open: map[key]*sums{}, stop: make(chan struct{}), done: make(chan struct{})}
	go a.flusher()
	return a
}

func (a *Aggregator) window(t time.Time) int64 {
	return t.UnixNano() / int64(a.cfg.Interval) * int64(a.cfg.Interval)
}

// Record implements proxy.Observer.
func (a *Aggregator) Record(req *proxy.RequestInfo, resp *proxy.ResponseInfo) {
	ip := req.ClientAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	base := key{window: a.window(req.Time), principal: req.Principal, clientID: req.ClientID, ip: ip, group: req.Group, api: req.APIKey}
	a.mu.Lock()
	defer a.mu.Unlock()
	total := a.get(base)
	total.requests++
	total.reqBytes += int64(req.Size)
	total.respBytes += int64(resp.Size)
	for code, n := range resp.ErrorCounts {
		if code != 0 {
			total.errors += int64(n)
		}
	}
	perTopic := func(parts []proxy.PartitionData) {
		seen := map[string]bool{}
		for _, p := range parts {
			k := base
			k.topic = p.Topic
			s := a.get(k)
			if !seen[p.Topic] {
				seen[p.Topic] = true
				s.requests++
			}
			if p.ErrorCode != 0 {
				s.errors++ // not written, or not read
				continue
			}
			s.records += p.Records
			s.bytes += p.Bytes
		}
	}
	perTopic(req.Produce)
	perTopic(resp.Fetch)
}

func (a *Aggregator) get(k key) *sums {
	s := a.open[k]
	if s == nil {
		s = &sums{}
		a.open[k] = s
	}
	return s
}

func (a *Aggregator) flusher() {
	defer close(a.done)
	for {
		now := a.cfg.Now()
		next := time.Unix(0, a.window(now)+int64(a.cfg.Interval))
		t := time.NewTimer(next.Sub(now) + 10*time.Millisecond)
		select {
		case <-a.stop:
			t.Stop()
			a.flush(false)
			return
		case <-t.C:
			a.flush(true)
		}
	}
}

// flush hands the ended windows (all of them if !onlyEnded) to the writers.
func (a *Aggregator) flush(onlyEnded bool) {
	current := a.window(a.cfg.Now())
	a.mu.Lock()
	var recs []Record
	for k, s := range a.open {
		if onlyEnded && k.window >= current {
			continue
		}
		delete(a.open, k)
		recs = append(recs, Record{
			Type: "traffic", WindowStart: time.Unix(0, k.window).UTC(), WindowEnd: time.Unix(0, k.window+int64(a.cfg.Interval)).UTC(),
			Proxy: a.cfg.Proxy, Instance: a.cfg.Instance,
			Principal: k.principal, ClientID: k.clientID, ClientAddress: k.ip, Group: k.group, Topic: k.topic,
			APIKey: k.api, API: proxy.APIName(k.api),
			Requests: s.requests, Errors: s.errors, Records: s.records, Bytes: s.bytes,
			RequestBytes: s.reqBytes, ResponseBytes: s.respBytes,
		})
	}
	a.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].WindowStart.Equal(recs[j].WindowStart) {
			return recs[i].WindowStart.Before(recs[j].WindowStart)
		}
		if recs[i].Principal != recs[j].Principal {
			return recs[i].Principal < recs[j].Principal
		}
		if recs[i].Topic != recs[j].Topic {
			return recs[i].Topic < recs[j].Topic
		}
		return recs[i].APIKey < recs[j].APIKey
	})
	for _, w := range a.cfg.Writers {
		w.WriteTraffic(recs)
	}
}

// Close implements proxy.Observer: it hands every open window (the
// current one included) to the writers.
func (a *Aggregator) Close(ctx context.Context) error {
	a.once.Do(func() { close(a.stop) })
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
