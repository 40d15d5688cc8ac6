package proxy

import (
	"context"
	"time"
)

// Auditor is KIP-567's Auditor (and the AuditExtension of the "audit
// extension" proposal): it is given one AuditEvent per completed request of
// an audited kind (see Audited). The proxy calls Audit from one goroutine
// per auditor, through a bounded queue: an auditor slower than the traffic
// loses events (counted in Stats.Dropped), it never slows a client. Audit
// may keep ev; the proxy does not touch it afterwards.
type Auditor interface {
	Audit(ev *AuditEvent)
	// Close flushes what the auditor holds; it is called once, after the
	// last Audit, and should return by ctx's deadline.
	Close(ctx context.Context) error
}

// AuditEvent is one audited request and its outcome. Its JSON form is the
// "kaudit" audit format (one JSON object per line or per Kafka record).
type AuditEvent struct {
	// ID is unique per event (a random UUID); sinks use it to store a
	// re-read event once.
	ID   string    `json:"id"`
	Time time.Time `json:"time"` // when the response passed the proxy
	// Method is the Kafka API name, e.g. "CreateTopics".
	Method        string `json:"method"`
	APIKey        int16  `json:"api_key"`
	APIVersion    int16  `json:"api_version"`
	CorrelationID int32  `json:"correlation_id"`
	Principal     string `json:"principal"`
	ClientAddr    string `json:"client_address"` // ip:port
	ClientID      string `json:"client_id"`
	Group         string `json:"consumer_group,omitempty"`
	// Broker is the upstream node id the request went to (-1: bootstrap).
	Broker int32 `json:"broker"`
	// ClusterID is the upstream cluster's id from its Metadata responses,
	// "" until one passed.
	ClusterID string `json:"cluster_id,omitempty"`
	// Proxy names the proxy that saw the request (Config.Name).
	Proxy string `json:"proxy,omitempty"`
	// Allowed is false if any resource was denied.
	Allowed bool `json:"allowed"`
	// ErrorCode is the request's error: the first non-zero resource
	// error, else 0.
	ErrorCode int16      `json:"error_code"`
	Resources []Resource `json:"resources"`
}

// Resource is one resource an audited request acted on, with its outcome
// (KIP-567's isAllowed and errors maps).
type Resource struct {
	// Type is the Kafka resource type: TOPIC, GROUP, CLUSTER,
	// TRANSACTIONAL_ID, BROKER, BROKER_LOGGER, USER, CLIENT_QUOTA, ...
	Type string `json:"type"`
	Name string `json:"name"`
	// PatternType is LITERAL, or for the ACL bindings of CreateAcls and
	// DeleteAcls the binding's pattern (PREFIXED, ...).
	PatternType string `json:"pattern_type"`
	// Operation is the ACL operation the request needs on the resource:
	// CREATE, DELETE, ALTER, ALTER_CONFIGS, READ, WRITE, ...
	Operation string `json:"operation"`
	// Allowed is false when the broker answered with an authorization
	// error (TOPIC_AUTHORIZATION_FAILED, GROUP_..., CLUSTER_...,
	// TRANSACTIONAL_ID_..., DELEGATION_TOKEN_..., SASL_AUTHENTICATION_FAILED).
	Allowed   bool   `json:"allowed"`
	ErrorCode int16  `json:"error_code"`
	Error     string `json:"error,omitempty"` // the error's Kafka name, "" for 0
	// Detail says what was asked, without secrets: partition counts,
	// config names and operations (never values), an ACL binding's
	// principal, host, operation and permission, a SCRAM mechanism.
	Detail string `json:"detail,omitempty"`
}
