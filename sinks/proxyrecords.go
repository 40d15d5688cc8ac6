package sinks

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// AdminRow is one resource of one audited request, from kaudit-proxy's
// admin topic: the row of the admin audit table.
type AdminRow struct {
	Event         proxy.AuditEvent // Resources not used: see Resource
	ResourceIndex int
	Resource      proxy.Resource
}

// DecodeAdmin decodes an admin-topic record in either of kaudit-proxy's
// formats: a kaudit event (all its resources) or a Confluent-shaped
// CloudEvent (one resource).
func DecodeAdmin(value []byte) ([]AdminRow, error) {
	var head struct {
		Type        string `json:"type"`
		SpecVersion string `json:"specversion"`
	}
	if err := json.Unmarshal(value, &head); err != nil {
		return nil, fmt.Errorf("admin record: %w", err)
	}
	switch {
	case head.Type == "audit":
		var ev proxy.AuditEvent
		if err := json.Unmarshal(value, &ev); err != nil {
			return nil, fmt.Errorf("admin record: %w", err)
		}
		if ev.ID == "" || ev.Method == "" || len(ev.Resources) == 0 {
			return nil, errors.New("admin record: no id, method or resources")
		}
		rows := make([]AdminRow, len(ev.Resources))
		for i, r := range ev.Resources {
			rows[i] = AdminRow{Event: ev, ResourceIndex: i, Resource: r}
			rows[i].Event.Resources = nil
		}
		return rows, nil
	case head.SpecVersion != "":
		var ce auditors.CloudEvent
		if err := json.Unmarshal(value, &ce); err != nil {
			return nil, fmt.Errorf("admin record: %w", err)
		}
		k := ce.Data.Kaudit
		if k.EventID == "" || ce.Data.MethodName == "" {
			return nil, errors.New("admin record: a CloudEvent without kaudit's data")
		}
		method := ce.Data.MethodName
		if len(method) > 6 && method[:6] == "kafka." {
			method = method[6:]
		}
		if method == "Authentication" {
			method = proxy.APIName(k.APIKey)
		}
		ev := proxy.AuditEvent{
			ID: k.EventID, Time: ce.Time, Method: method, APIKey: k.APIKey, APIVersion: k.APIVersion,
			Principal: ce.Data.AuthenticationInfo.Principal, ClientAddr: k.ClientAddress, ClientID: ce.Data.Request.ClientID,
			Group: k.Group, Broker: k.Broker, Proxy: k.Proxy, Allowed: k.RequestAllowed,
		}
		r := proxy.Resource{Type: k.ResourceType, Name: ce.Data.AuthorizationInfo.ResourceName,
			PatternType: ce.Data.AuthorizationInfo.PatternType, Operation: k.Operation, Allowed: k.Allowed,
			ErrorCode: k.ErrorCode, Error: k.Error, Detail: k.Detail}
		return []AdminRow{{Event: ev, ResourceIndex: k.ResourceIndex, Resource: r}}, nil
	}
	return nil, fmt.Errorf("admin record: neither a kaudit audit event nor a CloudEvent (type %q)", head.Type)
}

// DecodeTraffic decodes a traffic-topic record.
func DecodeTraffic(value []byte) (traffic.Record, error) {
	var r traffic.Record
	if err := json.Unmarshal(value, &r); err != nil {
		return r, fmt.Errorf("traffic record: %w", err)
	}
	if r.Type != "traffic" || r.WindowStart.IsZero() || r.Instance == "" {
		return r, errors.New("traffic record: not a traffic record of kaudit-proxy")
	}
	return r, nil
}

// Kinds of kaudit-proxy's records.
const (
	KindAdmin   = "admin"
	KindTraffic = "traffic"
)

// ProxyTopics returns kaudit-proxy's topics: the admin audit (one record per
// request, one row per resource) and the client traffic; an empty name is
// not read.
func ProxyTopics(adminTopic, trafficTopic string) []Topic[*Batch] {
	var ts []Topic[*Batch]
	if adminTopic != "" {
		ts = append(ts, Topic[*Batch]{Name: adminTopic, Kind: KindAdmin, Decode: DecodeAdminRecord})
	}
	if trafficTopic != "" {
		ts = append(ts, Topic[*Batch]{Name: trafficTopic, Kind: KindTraffic, Decode: DecodeTrafficRecord})
	}
	return ts
}

// DecodeAdminRecord decodes an admin-topic record into b (a Decoder).
func DecodeAdminRecord(b *Batch, rec *kgo.Record) error {
	rows, err := DecodeAdmin(rec.Value)
	if err != nil {
		return err
	}
	b.Admin = append(b.Admin, rows...)
	return nil
}

// DecodeTrafficRecord decodes a traffic-topic record into b (a Decoder).
func DecodeTrafficRecord(b *Batch, rec *kgo.Record) error {
	t, err := DecodeTraffic(rec.Value)
	if err != nil {
		return err
	}
	b.Traffic = append(b.Traffic, t)
	return nil
}
