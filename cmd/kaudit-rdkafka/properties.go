//go:build rdkafka

package main

// The audit.* properties: their table, parsing and checks (set), and the
// plugin's defaults. resolve.go combines them with the client's own
// properties; tls.go maps the security ones to franz-go options.

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/kafkaconn"
)

// format is what the plugin writes to the audit topic.
type format uint8

const (
	// formatKaudit writes codecs.Event records through an emitter.Emitter.
	formatKaudit format = iota
	// formatInterceptorJSON writes the librdkafka interceptors' JSON
	// records (codecs.AppendInterceptorRecordIn).
	formatInterceptorJSON
)

func (f format) String() string {
	if f == formatInterceptorJSON {
		return codecs.InterceptorJSONSource
	}
	return "kaudit"
}

// Defaults of the plugin's own settings (the emitter's defaults cover the
// queue size and linger).
const (
	defaultClientID     = "kaudit-rdkafka"
	defaultCloseTimeout = 5 * time.Second
	// defaultQueueSize bounds the events waiting in the plugin (in C,
	// 128 bytes each, allocated in 512 KiB chunks only while they wait):
	// enough for a client that bursts a few hundred thousand messages
	// faster than the audit producer sends.
	defaultQueueSize = 262144
	// sinkQueueSize bounds the events handed to the sender (Go heap); the
	// rest wait in the ring, which costs the garbage collector nothing.
	sinkQueueSize   = 8192
	defaultLogLevel = slog.LevelWarn
	levelOff        = slog.Level(100)
)

// settings are the audit.* properties of one configuration object. The
// zero value is all defaults. Values are checked when set, so that
// rd_kafka_conf_set fails on a value the plugin cannot honour.
type settings struct {
	topic          string
	brokers        []string
	protocol       string // upper case; "" = unset
	mechanism      string // upper case; "" = unset
	username       string
	password       string
	caFile         string
	certFile       string
	keyFile        string
	verifyHostname *bool // ssl.endpoint.identification.algorithm; nil = unset
	verifyCerts    *bool // enable.ssl.certificate.verification; nil = unset
	clientID       string
	linger         *time.Duration
	queueSize      int
	enqueueTimeout time.Duration
	closeTimeout   time.Duration
	format         format
	statsFile      string
	logLevel       *slog.Level
	compression    *kgo.CompressionCodec
	acks           string // "all", "1", "0"; "" = unset
	batchBytes     int32
	deliveryTO     time.Duration
	requestTO      time.Duration
}

// property is one audit.* key: set parses val into s (val is never empty:
// an empty or NULL value resets the key with reset).
type property struct {
	doc   string
	set   func(s *settings, val string) error
	reset func(s *settings)
}

// properties are the audit.* keys the plugin honours, without the prefix.
// The names are librdkafka's, so an existing audit.* configuration of the
// source blog's interceptors works unchanged.
var properties = map[string]property{
	"topic": {
		doc: "audit topic (default kaudit.events)",
		set: func(s *settings, v string) error {
			if err := checkTopic(v); err != nil {
				return err
			}
			s.topic = v
			return nil
		},
		reset: func(s *settings) { s.topic = "" },
	},
	"bootstrap.servers": {
		doc:   "audit cluster brokers, host:port,... (default: the client's own bootstrap.servers)",
		set:   func(s *settings, v string) (err error) { s.brokers, err = parseBrokers(v); return err },
		reset: func(s *settings) { s.brokers = nil },
	},
	"security.protocol": {
		doc: "plaintext, ssl, sasl_plaintext or sasl_ssl",
		set: func(s *settings, v string) error {
			p := strings.ToUpper(v)
			if !slices.Contains([]string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}, p) {
				return fmt.Errorf("%q is not one of plaintext, ssl, sasl_plaintext, sasl_ssl", v)
			}
			s.protocol = p
			return nil
		},
		reset: func(s *settings) { s.protocol = "" },
	},
	"sasl.mechanism": {
		doc:   "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
		set:   setMechanism,
		reset: func(s *settings) { s.mechanism = "" },
	},
	"sasl.mechanisms": {
		doc:   "alias of sasl.mechanism",
		set:   setMechanism,
		reset: func(s *settings) { s.mechanism = "" },
	},
	"sasl.username": {
		set:   func(s *settings, v string) error { s.username = v; return nil },
		reset: func(s *settings) { s.username = "" },
	},
	"sasl.password": {
		set:   func(s *settings, v string) error { s.password = v; return nil },
		reset: func(s *settings) { s.password = "" },
	},
	"ssl.ca.location": {
		doc: "PEM file of CA certificates (default: system roots)",
		set: func(s *settings, v string) error {
			if _, err := kafkaconn.LoadCAs(v); err != nil {
				return err
			}
			s.caFile = v
			return nil
		},
		reset: func(s *settings) { s.caFile = "" },
	},
	"ssl.certificate.location": {
		doc: "PEM client certificate",
		set: func(s *settings, v string) error {
			if err := checkPEM(v, "CERTIFICATE"); err != nil {
				return err
			}
			s.certFile = v
			return nil
		},
		reset: func(s *settings) { s.certFile = "" },
	},
	"ssl.key.location": {
		doc: "PEM client private key (unencrypted)",
		set: func(s *settings, v string) error {
			if err := checkPEM(v, "PRIVATE KEY"); err != nil {
				return err
			}
			s.keyFile = v
			return nil
		},
		reset: func(s *settings) { s.keyFile = "" },
	},
	"ssl.endpoint.identification.algorithm": {
		doc: "https (default) or none",
		set: func(s *settings, v string) error {
			switch strings.ToLower(v) {
			case "https":
				s.verifyHostname = ptr(true)
			case "none":
				s.verifyHostname = ptr(false)
			default:
				return fmt.Errorf("%q is not https or none", v)
			}
			return nil
		},
		reset: func(s *settings) { s.verifyHostname = nil },
	},
	"enable.ssl.certificate.verification": {
		doc: "true (default) or false",
		set: func(s *settings, v string) error {
			b, err := parseBool(v)
			if err == nil {
				s.verifyCerts = &b
			}
			return err
		},
		reset: func(s *settings) { s.verifyCerts = nil },
	},
	"client.id": {
		doc:   "client.id of the audit producer (default kaudit-rdkafka)",
		set:   func(s *settings, v string) error { s.clientID = v; return nil },
		reset: func(s *settings) { s.clientID = "" },
	},
	"linger.ms": {
		doc:   "audit producer linger, ms (default 5)",
		set:   setLinger,
		reset: func(s *settings) { s.linger = nil },
	},
	"queue.buffering.max.ms": {
		doc:   "alias of linger.ms",
		set:   setLinger,
		reset: func(s *settings) { s.linger = nil },
	},
	"queue.buffering.max.messages": {
		doc: "audit events that may wait to be sent; more are dropped and counted (default 262144)",
		set: func(s *settings, v string) (err error) {
			s.queueSize, err = parseInt(v, 1, 1<<24)
			return err
		},
		reset: func(s *settings) { s.queueSize = 0 },
	},
	"enqueue.timeout.ms": {
		doc: "how long on_send/on_consume may wait for room in a full audit queue, ms (default 0: never wait)",
		set: func(s *settings, v string) (err error) {
			s.enqueueTimeout, err = parseMillis(v, 0, 60_000)
			return err
		},
		reset: func(s *settings) { s.enqueueTimeout = 0 },
	},
	"close.timeout.ms": {
		doc: "how long rd_kafka_destroy may wait for queued audit events to be sent, ms (default 5000)",
		set: func(s *settings, v string) (err error) {
			s.closeTimeout, err = parseMillis(v, 0, 600_000)
			if err == nil && s.closeTimeout == 0 {
				s.closeTimeout = time.Millisecond // 0 means "do not wait"
			}
			return err
		},
		reset: func(s *settings) { s.closeTimeout = 0 },
	},
	"format": {
		doc: "kaudit (default) or interceptor-json (blog-json: its former name)",
		set: func(s *settings, v string) error {
			switch v {
			case "kaudit":
				s.format = formatKaudit
			case codecs.InterceptorJSONSource, codecs.LegacyInterceptorJSONName:
				s.format = formatInterceptorJSON
			default:
				return fmt.Errorf("%q is not kaudit or interceptor-json", v)
			}
			return nil
		},
		reset: func(s *settings) { s.format = formatKaudit },
	},
	"stats.file": {
		doc:   "file to which each client appends one JSON line of audit counters when destroyed",
		set:   func(s *settings, v string) error { s.statsFile = v; return nil },
		reset: func(s *settings) { s.statsFile = "" },
	},
	"log.level": {
		doc: "debug, info, warn (default), error or off; logs go to stderr",
		set: func(s *settings, v string) error {
			var l slog.Level
			switch strings.ToLower(v) {
			case "debug":
				l = slog.LevelDebug
			case "info":
				l = slog.LevelInfo
			case "warn", "warning":
				l = slog.LevelWarn
			case "error":
				l = slog.LevelError
			case "off", "none":
				l = levelOff
			default:
				return fmt.Errorf("%q is not debug, info, warn, error or off", v)
			}
			s.logLevel = &l
			return nil
		},
		reset: func(s *settings) { s.logLevel = nil },
	},
	"compression.type": {
		doc: "none (default, like librdkafka), gzip, snappy, lz4 or zstd",
		set: func(s *settings, v string) error {
			var c kgo.CompressionCodec
			switch strings.ToLower(v) {
			case "none":
				c = kgo.NoCompression()
			case "gzip":
				c = kgo.GzipCompression()
			case "snappy":
				c = kgo.SnappyCompression()
			case "lz4":
				c = kgo.Lz4Compression()
			case "zstd":
				c = kgo.ZstdCompression()
			default:
				return fmt.Errorf("%q is not none, gzip, snappy, lz4 or zstd", v)
			}
			s.compression = &c
			return nil
		},
		reset: func(s *settings) { s.compression = nil },
	},
	"compression.codec": {
		doc: "alias of compression.type",
	},
	"acks": {
		doc: "all/-1 (default), 1 or 0",
		set: func(s *settings, v string) error {
			switch strings.ToLower(v) {
			case "all", "-1":
				s.acks = "all"
			case "1", "0":
				s.acks = v
			default:
				return fmt.Errorf("%q is not all, -1, 1 or 0", v)
			}
			return nil
		},
		reset: func(s *settings) { s.acks = "" },
	},
	"request.required.acks": {
		doc: "alias of acks",
	},
	"batch.size": {
		doc: "maximum bytes of one audit record batch",
		set: func(s *settings, v string) error {
			n, err := parseInt(v, 1024, 1<<30)
			s.batchBytes = int32(n)
			return err
		},
		reset: func(s *settings) { s.batchBytes = 0 },
	},
	"message.timeout.ms": {
		doc: "how long an audit record may take to be delivered, ms (default: franz-go's, unlimited)",
		set: func(s *settings, v string) (err error) {
			s.deliveryTO, err = parseMillis(v, 0, 1<<31-1)
			return err
		},
		reset: func(s *settings) { s.deliveryTO = 0 },
	},
	"delivery.timeout.ms": {
		doc: "alias of message.timeout.ms",
	},
	"request.timeout.ms": {
		doc: "produce request timeout, ms",
		set: func(s *settings, v string) (err error) {
			s.requestTO, err = parseMillis(v, 1, 1<<31-1)
			return err
		},
		reset: func(s *settings) { s.requestTO = 0 },
	},
}

// aliases name the key another key stands for.
var aliases = map[string]string{
	"compression.codec":     "compression.type",
	"request.required.acks": "acks",
	"delivery.timeout.ms":   "message.timeout.ms",
}

// refused are audit.* keys with a librdkafka meaning the plugin cannot
// honour, with the reason; they fail like unknown keys, with a better
// message.
var refused = map[string]string{
	"ssl.key.password":        "encrypted private keys are not supported; give an unencrypted key in audit.ssl.key.location",
	"ssl.ca.pem":              "inline PEM is not supported; use audit.ssl.ca.location",
	"ssl.certificate.pem":     "inline PEM is not supported; use audit.ssl.certificate.location",
	"ssl.key.pem":             "inline PEM is not supported; use audit.ssl.key.location",
	"ssl.keystore.location":   "PKCS#12 keystores are not supported; use audit.ssl.certificate.location and audit.ssl.key.location",
	"sasl.kerberos.keytab":    "GSSAPI (Kerberos) is not supported",
	"sasl.oauthbearer.config": "OAUTHBEARER is not supported",
	"plugin.library.paths":    "the audit producer does not load plugins",
}

// set applies one audit.* property (name without the "audit." prefix); an
// empty val resets it to its default.
func (s *settings) set(name, val string) error {
	if why, ok := refused[name]; ok {
		return errors.New(why)
	}
	key := name
	if a, ok := aliases[name]; ok {
		key = a
	}
	p, ok := properties[key]
	if !ok || p.set == nil {
		if near := nearest(name); near != "" {
			return fmt.Errorf("unknown property (did you mean audit.%s?)", near)
		}
		return errors.New("unknown property: not one of the kaudit plugin's audit.* properties")
	}
	if val == "" {
		p.reset(s)
		return nil
	}
	return p.set(s, val)
}

// nearest returns the known key closest to name, if it is close (a typo).
func nearest(name string) string {
	best, bestD := "", 4
	keys := make([]string, 0, len(properties))
	for k := range properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func setMechanism(s *settings, v string) error {
	m := strings.ToUpper(v)
	switch m {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		s.mechanism = m
		return nil
	case "GSSAPI", "OAUTHBEARER":
		return fmt.Errorf("%s is not supported (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are)", m)
	}
	return fmt.Errorf("%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", v)
}

func setLinger(s *settings, v string) error {
	d, err := parseMillis(v, 0, 900_000)
	if err == nil {
		s.linger = &d
	}
	return err
}

func ptr[T any](v T) *T { return &v }

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not an integer in [%d, %d]", v, lo, hi)
	}
	return n, nil
}

func parseMillis(v string, lo, hi int) (time.Duration, error) {
	n, err := parseInt(v, lo, hi)
	return time.Duration(n) * time.Millisecond, err
}

// checkTopic applies Kafka's topic name rules.
func checkTopic(t string) error {
	if len(t) > 249 || t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	for _, c := range []byte(t) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%q is not a valid topic name (letters, digits, '.', '_', '-')", t)
		}
	}
	return nil
}

// parseBrokers reads a librdkafka broker list: comma (or space) separated
// [proto://]host:port entries.
func parseBrokers(v string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		if i := strings.Index(f, "://"); i >= 0 {
			f = f[i+3:]
		}
		i := strings.LastIndexByte(f, ':')
		if i <= 0 || i == len(f)-1 {
			return nil, fmt.Errorf("broker %q is not host:port", f)
		}
		if _, err := strconv.ParseUint(f[i+1:], 10, 16); err != nil {
			return nil, fmt.Errorf("broker %q: bad port", f)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q holds no broker", v)
	}
	return out, nil
}
