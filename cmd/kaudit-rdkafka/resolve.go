//go:build rdkafka

package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	kaudit "github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
)

// clientProps are the properties of the audited client that on_new reads
// (see resolve).
type clientProps struct {
	clientID, groupID string
	brokers           string
	// Security of the client's own connection, inherited by the audit
	// producer when neither audit.bootstrap.servers nor
	// audit.security.protocol is set (same cluster, same credentials).
	protocol, mechanism, username, password string
	caFile, certFile, keyFile               string
	endpointAlgo, verifyCerts               string
}

// audit is a resolved configuration: everything needed to start a sink.
type audit struct {
	format       format
	topic        string
	brokers      []string
	opts         []kgo.Opt
	queueSize    int
	linger       time.Duration // 0: the emitter default; <0: none
	wait         time.Duration
	closeTimeout time.Duration
	statsFile    string
	logLevel     slog.Level
}

// resolve combines the audit.* settings with the client's properties. It
// always returns the audit configuration, complete unless err is set (the
// client is then not audited). Errors here cannot fail the client
// (librdkafka ignores on_new errors), so everything that can be checked per
// property is checked in set.
func (s *settings) resolve(c clientProps) (*audit, error) {
	a := &audit{
		format:       s.format,
		topic:        s.topic,
		queueSize:    s.queueSize,
		wait:         s.enqueueTimeout,
		closeTimeout: s.closeTimeout,
		statsFile:    s.statsFile,
		logLevel:     defaultLogLevel,
	}
	if a.topic == "" {
		a.topic = kaudit.DefaultEventsTopic
	}
	if a.closeTimeout == 0 {
		a.closeTimeout = defaultCloseTimeout
	}
	if a.queueSize == 0 {
		a.queueSize = defaultQueueSize
	}
	if s.logLevel != nil {
		a.logLevel = *s.logLevel
	}
	if s.linger != nil {
		a.linger = *s.linger
		if a.linger == 0 {
			a.linger = -1
		}
	}

	sec := *s
	a.brokers = s.brokers
	if len(a.brokers) == 0 {
		var err error
		if a.brokers, err = parseBrokers(c.brokers); err != nil {
			return a, fmt.Errorf("no audit.bootstrap.servers and the client's bootstrap.servers: %w", err)
		}
		if sec.protocol == "" {
			sec.inherit(c)
		}
	}

	clientID := s.clientID
	if clientID == "" {
		clientID = defaultClientID
	}
	// Like a librdkafka producer, let the broker's auto.create.topics.enable
	// decide whether a missing audit topic is created.
	a.opts = append(a.opts, kgo.ClientID(clientID), kgo.AllowAutoTopicCreation())
	secOpts, err := sec.security().KgoOpts()
	if err != nil {
		return a, err
	}
	a.opts = append(a.opts, secOpts...)
	// librdkafka's default: no compression (cheapest on the client).
	codec := kgo.NoCompression()
	if s.compression != nil {
		codec = *s.compression
	}
	a.opts = append(a.opts, kgo.ProducerBatchCompression(codec))
	switch s.acks {
	case "1":
		a.opts = append(a.opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		a.opts = append(a.opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	if s.batchBytes > 0 {
		a.opts = append(a.opts, kgo.ProducerBatchMaxBytes(s.batchBytes))
	}
	if s.deliveryTO > 0 {
		a.opts = append(a.opts, kgo.RecordDeliveryTimeout(s.deliveryTO))
	}
	if s.requestTO > 0 {
		a.opts = append(a.opts, kgo.ProduceRequestTimeout(s.requestTO))
	}
	return a, nil
}

// inherit takes the client's own security settings.
func (s *settings) inherit(c clientProps) {
	s.protocol = strings.ToUpper(c.protocol)
	s.mechanism = strings.ToUpper(c.mechanism)
	s.username, s.password = c.username, c.password
	s.caFile, s.certFile, s.keyFile = c.caFile, c.certFile, c.keyFile
	if strings.EqualFold(c.endpointAlgo, "none") {
		s.verifyHostname = ptr(false)
	}
	if v, err := parseBool(c.verifyCerts); err == nil && !v {
		s.verifyCerts = ptr(false)
	}
}

// newEmitter starts the emitter of a resolved configuration: the binary
// encoding, or the interceptors' JSON (in local time, as their
// asctime(localtime()) prints it). Its queue bounds the events handed to
// the sender (Go heap); the rest wait in the ring, which costs the garbage
// collector nothing.
func newEmitter(a *audit, log *slog.Logger) (*emitter.Emitter, error) {
	enc := emitter.Binary
	if a.format == formatInterceptorJSON {
		enc = emitter.InterceptorJSON
	}
	return emitter.New(emitter.Config{
		Brokers:    a.brokers,
		ClientOpts: a.opts,
		Topic:      a.topic,
		Encode:     enc,
		Location:   time.Local,
		QueueSize:  min(a.queueSize, sinkQueueSize),
		Linger:     a.linger,
		Logger:     log,
	})
}
