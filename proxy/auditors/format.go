// Package auditors holds kaudit-proxy's auditors (KIP-567's Auditor, the
// AuditExtension of the audit-extension proposal): where audit events and
// the traffic observer's per-minute records go. Several can run at once
// (kaudit-proxy --auditors log,kafka):
//
//   - Log writes JSON lines to a file or stdout;
//   - Kafka writes audit events to an admin topic (kaudit.admin) and traffic
//     records to a traffic topic (kaudit.traffic), which kaudit-sink stores
//     in ClickHouse.
//
// Both implement proxy.Auditor and traffic.Writer and never block: Log
// writes from the proxy's auditor goroutine (the proxy's queue in front of
// it drops and counts when it falls behind), Kafka hands records to a
// bounded producer buffer and drops (and counts) when it is full.
//
// Two audit formats: FormatKaudit is the proxy.AuditEvent's own JSON (one
// object per request, with its resources); FormatConfluent is Confluent's
// audit-log shape (CloudEvents 1.0, one event per resource: methodName
// "kafka.CreateTopics", authenticationInfo.principal,
// authorizationInfo.granted, requestMetadata.clientAddress), for SIEM
// pipelines built for Confluent; its data.kaudit object carries what that
// shape has no field for. Traffic records are always kaudit JSON.
//
// Kill -9: a Log file never holds a partial line (each event's lines are
// one write(2)); what the Kafka producer had buffered and not yet had
// acknowledged is lost.
package auditors

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kaudit/kaudit/proxy"
)

// Format is an audit event encoding.
type Format string

// The audit formats.
const (
	FormatKaudit    Format = "kaudit"
	FormatConfluent Format = "confluent"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatKaudit, FormatConfluent:
		return Format(s), nil
	}
	return "", fmt.Errorf("auditors: unknown format %q (kaudit or confluent)", s)
}

// kauditEvent is the kaudit JSON of an audit event: the event with
// type "audit".
type kauditEvent struct {
	Type string `json:"type"`
	*proxy.AuditEvent
}

// Encode returns the records of ev in format f (one for kaudit, one per
// resource for confluent).
func Encode(ev *proxy.AuditEvent, f Format) ([][]byte, error) {
	if f != FormatConfluent {
		b, err := json.Marshal(kauditEvent{Type: "audit", AuditEvent: ev})
		if err != nil {
			return nil, fmt.Errorf("auditors: encode audit event: %w", err)
		}
		return [][]byte{b}, nil
	}
	out := make([][]byte, 0, len(ev.Resources))
	for i := range ev.Resources {
		b, err := json.Marshal(ToCloudEvent(ev, i))
		if err != nil {
			return nil, fmt.Errorf("auditors: encode audit event: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// CloudEvent is one Confluent-shaped audit record (CloudEvents 1.0).
type CloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	DataContentType string    `json:"datacontenttype"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	Data            CloudData `json:"data"`
}

// CloudData is the data of a CloudEvent, in Confluent's audit-log shape.
type CloudData struct {
	ServiceName        string             `json:"serviceName"`
	MethodName         string             `json:"methodName"`
	ResourceName       string             `json:"resourceName"`
	AuthenticationInfo AuthenticationInfo `json:"authenticationInfo"`
	AuthorizationInfo  AuthorizationInfo  `json:"authorizationInfo"`
	Request            RequestInfo        `json:"request"`
	RequestMetadata    RequestMetadata    `json:"requestMetadata"`
	Result             Result             `json:"result"`
	Kaudit             KauditData         `json:"kaudit"`
}

// AuthenticationInfo names who made the request.
type AuthenticationInfo struct {
	Principal string `json:"principal"`
}

// AuthorizationInfo is the authorization of one resource.
type AuthorizationInfo struct {
	Granted      bool   `json:"granted"`
	Operation    string `json:"operation"`
	ResourceType string `json:"resourceType"`
	ResourceName string `json:"resourceName"`
	PatternType  string `json:"patternType"`
}

// RequestInfo identifies the request.
type RequestInfo struct {
	CorrelationID string `json:"correlationId"`
	ClientID      string `json:"clientId"`
}

// RequestMetadata says where the request came from.
type RequestMetadata struct {
	ClientAddress string `json:"clientAddress"`
}

// Result is the request's outcome for the resource.
type Result struct {
	Status  string `json:"status"` // SUCCESS or FAILURE
	Message string `json:"message,omitempty"`
}

// KauditData is what the kaudit format has and Confluent's shape lacks.
type KauditData struct {
	EventID        string `json:"eventId"`
	ResourceIndex  int    `json:"resourceIndex"`
	APIKey         int16  `json:"apiKey"`
	APIVersion     int16  `json:"apiVersion"`
	Operation      string `json:"operation"`      // ACL operation as Kafka names it (ALTER_CONFIGS)
	ResourceType   string `json:"resourceType"`   // as Kafka names it (TOPIC)
	ErrorCode      int16  `json:"errorCode"`      // the resource's error code
	Error          string `json:"error"`          // its name
	Allowed        bool   `json:"allowed"`        // the resource's authorization
	RequestAllowed bool   `json:"requestAllowed"` // every resource of the request allowed
	Detail         string `json:"detail,omitempty"`
	Group          string `json:"consumerGroup,omitempty"`
	Broker         int32  `json:"broker"`
	Proxy          string `json:"proxy,omitempty"`
	ClientAddress  string `json:"clientAddress"` // ip:port
}

// camel turns Kafka's ALTER_CONFIGS into Confluent's AlterConfigs.
func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(strings.ToLower(s), "_") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func crn(cluster string) string {
	if cluster == "" {
		cluster = "unknown"
	}
	return "crn:///kafka=" + cluster
}

func resourceCRN(cluster string, r proxy.Resource) string {
	base := crn(cluster)
	switch r.Type {
	case "CLUSTER":
		return base
	case "TRANSACTIONAL_ID":
		return base + "/transactional-id=" + r.Name
	}
	return base + "/" + strings.ToLower(strings.ReplaceAll(r.Type, "_", "-")) + "=" + r.Name
}

// ToCloudEvent returns resource i of ev as a Confluent-shaped CloudEvent.
func ToCloudEvent(ev *proxy.AuditEvent, i int) CloudEvent {
	r := ev.Resources[i]
	ip := ev.ClientAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	method, typ := "kafka."+ev.Method, "io.confluent.kafka.server/authorization"
	if ev.APIKey == 36 {
		method, typ = "kafka.Authentication", "io.confluent.kafka.server/authentication"
	}
	status := "SUCCESS"
	if r.ErrorCode != 0 {
		status = "FAILURE"
	}
	return CloudEvent{
		SpecVersion: "1.0", ID: ev.ID + "-" + strconv.Itoa(i), Source: crn(ev.ClusterID), Type: typ,
		DataContentType: "application/json", Subject: resourceCRN(ev.ClusterID, r), Time: ev.Time.UTC(),
		Data: CloudData{
			ServiceName: crn(ev.ClusterID), MethodName: method, ResourceName: resourceCRN(ev.ClusterID, r),
			AuthenticationInfo: AuthenticationInfo{Principal: ev.Principal},
			AuthorizationInfo: AuthorizationInfo{Granted: r.Allowed, Operation: camel(r.Operation),
				ResourceType: camel(r.Type), ResourceName: r.Name, PatternType: r.PatternType},
			Request:         RequestInfo{CorrelationID: strconv.Itoa(int(ev.CorrelationID)), ClientID: ev.ClientID},
			RequestMetadata: RequestMetadata{ClientAddress: ip},
			Result:          Result{Status: status, Message: r.Error},
			Kaudit: KauditData{EventID: ev.ID, ResourceIndex: i, APIKey: ev.APIKey, APIVersion: ev.APIVersion,
				Operation: r.Operation, ResourceType: r.Type, ErrorCode: r.ErrorCode, Error: r.Error,
				Allowed: r.Allowed, RequestAllowed: ev.Allowed, Detail: r.Detail, Group: ev.Group, Broker: ev.Broker,
				Proxy: ev.Proxy, ClientAddress: ev.ClientAddr},
		},
	}
}
