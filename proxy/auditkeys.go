package proxy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// auditMode says when a request kind is audited.
type auditMode uint8

const (
	auditNever  auditMode = iota
	auditAlways           // every request, allowed or not
	auditDenied           // only requests with a denied resource
)

// auditModes: the cluster changes (the audit extension's topic, ACL and
// config changes, and the other destructive admin requests) always; the
// data path only when authorization denied it, and failed authentication.
var auditModes = map[int16]auditMode{
	19: auditAlways, // CreateTopics
	20: auditAlways, // DeleteTopics
	21: auditAlways, // DeleteRecords
	30: auditAlways, // CreateAcls
	31: auditAlways, // DeleteAcls
	33: auditAlways, // AlterConfigs
	37: auditAlways, // CreatePartitions
	42: auditAlways, // DeleteGroups
	43: auditAlways, // ElectLeaders
	44: auditAlways, // IncrementalAlterConfigs
	45: auditAlways, // AlterPartitionReassignments
	47: auditAlways, // OffsetDelete
	49: auditAlways, // AlterClientQuotas
	51: auditAlways, // AlterUserScramCredentials

	0:  auditDenied, // Produce
	1:  auditDenied, // Fetch
	8:  auditDenied, // OffsetCommit
	11: auditDenied, // JoinGroup
	36: auditDenied, // SaslAuthenticate (failed authentication)
	68: auditDenied, // ConsumerGroupHeartbeat (KIP-848's join)
}

// AuditedKeys returns the API keys whose every request is audited and those
// audited only when denied, each sorted.
func AuditedKeys() (always, denied []int16) {
	for k, m := range auditModes {
		switch m {
		case auditAlways:
			always = append(always, k)
		case auditDenied:
			denied = append(denied, k)
		}
	}
	sort.Slice(always, func(i, j int) bool { return always[i] < always[j] })
	sort.Slice(denied, func(i, j int) bool { return denied[i] < denied[j] })
	return always, denied
}

// needsAuditDecode says whether requests of key are decoded for auditing.
func needsAuditDecode(key int16) bool { return auditModes[key] != auditNever }

// denied reports whether code is an authorization (or authentication)
// failure.
func denied(code int16) bool {
	switch code {
	case kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code,
		kerr.ClusterAuthorizationFailed.Code, kerr.TransactionalIDAuthorizationFailed.Code,
		kerr.DelegationTokenAuthorizationFailed.Code, kerr.SaslAuthenticationFailed.Code:
		return true
	}
	return false
}

// errorName is the Kafka name of an error code, "" for 0.
func errorName(code int16) string {
	if code == 0 {
		return ""
	}
	if code == kerr.UnknownServerError.Code {
		return kerr.UnknownServerError.Message
	}
	if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok && e != kerr.UnknownServerError {
		return e.Message
	}
	return fmt.Sprintf("ERROR_%d", code)
}

// noResponseCode is the outcome of a request whose response never came
// (the broker or the client went away): Kafka's own client-side meaning of
// NETWORK_EXCEPTION. The request may or may not have taken effect.
var noResponseCode = kerr.NetworkException.Code

func setOutcome(r *Resource, code int16) {
	r.ErrorCode = code
	r.Error = errorName(code)
	r.Allowed = !denied(code)
}

// topicNamer resolves a topic id (requests and responses of newer versions
// carry ids, not names) to a name.
type topicNamer func(id [16]byte) string

func topicName(name string, id [16]byte, names topicNamer) string {
	if name != "" || id == [16]byte{} {
		return name
	}
	if names != nil {
		if n := names(id); n != "" {
			return n
		}
	}
	return "id:" + uuid.UUID(id).String()
}

const clusterResource = "kafka-cluster"

func literal(typ, name, op string) Resource {
	return Resource{Type: typ, Name: name, PatternType: "LITERAL", Operation: op, Allowed: true}
}

// auditResources returns the resources of an audited request with their
// outcome; for the kinds audited only when denied, only the denied ones
// (none: the request is not audited). resp is nil when no response came.
// SaslAuthenticate is audited by the connection, which knows the user.
func auditResources(req kmsg.Request, resp kmsg.Response, names topicNamer) []Resource {
	var rs []Resource
	switch r := req.(type) {
	case *kmsg.CreateTopicsRequest:
		rs = auditCreateTopics(r, resp, names)
	case *kmsg.DeleteTopicsRequest:
		rs = auditDeleteTopics(r, resp, names)
	case *kmsg.DeleteRecordsRequest:
		rs = auditDeleteRecords(r, resp)
	case *kmsg.CreateACLsRequest:
		rs = auditCreateACLs(r, resp)
	case *kmsg.DeleteACLsRequest:
		rs = auditDeleteACLs(r, resp)
	case *kmsg.AlterConfigsRequest:
		rs = auditAlterConfigs(r, resp)
	case *kmsg.IncrementalAlterConfigsRequest:
		rs = auditIncrementalAlterConfigs(r, resp)
	case *kmsg.CreatePartitionsRequest:
		rs = auditCreatePartitions(r, resp)
	case *kmsg.DeleteGroupsRequest:
		rs = auditDeleteGroups(r, resp)
	case *kmsg.ElectLeadersRequest:
		rs = auditElectLeaders(r, resp)
	case *kmsg.AlterPartitionAssignmentsRequest:
		rs = auditAlterPartitionAssignments(r, resp)
	case *kmsg.OffsetDeleteRequest:
		rs = auditOffsetDelete(r, resp)
	case *kmsg.AlterClientQuotasRequest:
		rs = auditAlterClientQuotas(r, resp)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		rs = auditAlterSCRAM(r, resp)
	case *kmsg.ProduceRequest:
		rs = auditProduce(r, resp, names)
	case *kmsg.FetchRequest:
		rs = auditFetch(r, resp, names)
	case *kmsg.OffsetCommitRequest:
		rs = auditOffsetCommit(r, resp, names)
	case *kmsg.JoinGroupRequest:
		rs = auditGroupCode(r.Group, resp, func(resp kmsg.Response) int16 { return resp.(*kmsg.JoinGroupResponse).ErrorCode })
	case *kmsg.ConsumerGroupHeartbeatRequest:
		rs = auditGroupCode(r.Group, resp, func(resp kmsg.Response) int16 { return resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode })
	}
	if auditModes[req.Key()] == auditDenied {
		// Keep only the denied resources; nothing denied, nothing audited.
		kept := rs[:0]
		for _, r := range rs {
			if !r.Allowed {
				kept = append(kept, r)
			}
		}
		rs = kept
	}
	return rs
}

// auditGroupCode is a group request with one top-level error code.
func auditGroupCode(group string, resp kmsg.Response, code func(kmsg.Response) int16) []Resource {
	r := literal("GROUP", group, "READ")
	if resp == nil {
		setOutcome(&r, noResponseCode)
	} else {
		setOutcome(&r, code(resp))
	}
	return []Resource{r}
}

func auditCreateTopics(req *kmsg.CreateTopicsRequest, resp kmsg.Response, names topicNamer) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.CreateTopicsResponse); ok {
		for _, t := range resp.Topics {
			codes[t.Topic] = t.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		r := literal("TOPIC", t.Topic, "CREATE")
		r.Detail = fmt.Sprintf("partitions=%d replication_factor=%d", t.NumPartitions, t.ReplicationFactor)
		if len(t.Configs) > 0 {
			r.Detail += " configs=" + configNames(len(t.Configs), func(i int) string { return t.Configs[i].Name })
		}
		if req.ValidateOnly {
			r.Detail += " validate_only"
		}
		outcome(&r, resp, codes, t.Topic)
		rs = append(rs, r)
	}
	return rs
}

// outcome sets r's outcome from codes[key], or NETWORK_EXCEPTION if there
// was no response; a response without the key leaves it allowed with
// code 0.
func outcome[K comparable](r *Resource, resp kmsg.Response, codes map[K]int16, key K) {
	if resp == nil {
		setOutcome(r, noResponseCode)
		return
	}
	setOutcome(r, codes[key])
}

func configNames(n int, name func(int) string) string {
	s := make([]string, n)
	for i := range n {
		s[i] = name(i)
	}
	return strings.Join(s, ",")
}

func auditDeleteTopics(req *kmsg.DeleteTopicsRequest, resp kmsg.Response, names topicNamer) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.DeleteTopicsResponse); ok {
		for _, t := range resp.Topics {
			var n string
			if t.Topic != nil {
				n = *t.Topic
			}
			codes[topicName(n, t.TopicID, names)] = t.ErrorCode
			if n != "" && t.TopicID != [16]byte{} {
				codes[topicName("", t.TopicID, nil)] = t.ErrorCode
			}
		}
	}
	var topics []string
	if req.Version < 6 {
		topics = req.TopicNames
	} else {
		for _, t := range req.Topics {
			var n string
			if t.Topic != nil {
				n = *t.Topic
			}
			topics = append(topics, topicName(n, t.TopicID, names))
		}
	}
	rs := make([]Resource, 0, len(topics))
	for _, t := range topics {
		r := literal("TOPIC", t, "DELETE")
		outcome(&r, resp, codes, t)
		rs = append(rs, r)
	}
	return rs
}

func auditDeleteRecords(req *kmsg.DeleteRecordsRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.DeleteRecordsResponse); ok {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && codes[t.Topic] == 0 {
					codes[t.Topic] = p.ErrorCode
				}
			}
		}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		r := literal("TOPIC", t.Topic, "DELETE")
		parts := make([]string, len(t.Partitions))
		for i, p := range t.Partitions {
			parts[i] = fmt.Sprintf("%d<%d", p.Partition, p.Offset)
		}
		r.Detail = "before_offsets=" + strings.Join(parts, ",")
		outcome(&r, resp, codes, t.Topic)
		rs = append(rs, r)
	}
	return rs
}

func aclDetail(principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) string {
	return fmt.Sprintf("principal=%s host=%s operation=%s permission=%s", principal, host, op, perm)
}

func strOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

func auditCreateACLs(req *kmsg.CreateACLsRequest, resp kmsg.Response) []Resource {
	codes := map[int]int16{}
	if resp, ok := resp.(*kmsg.CreateACLsResponse); ok {
		for i, r := range resp.Results {
			codes[i] = r.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Creations))
	for i, c := range req.Creations {
		pattern := c.ResourcePatternType
		if req.Version == 0 {
			pattern = kmsg.ACLResourcePatternTypeLiteral
		}
		r := Resource{Type: c.ResourceType.String(), Name: c.ResourceName, PatternType: pattern.String(), Operation: "ALTER", Allowed: true,
			Detail: aclDetail(c.Principal, c.Host, c.Operation, c.PermissionType)}
		outcome(&r, resp, codes, i)
		rs = append(rs, r)
	}
	return rs
}

func auditDeleteACLs(req *kmsg.DeleteACLsRequest, resp kmsg.Response) []Resource {
	codes := map[int]int16{}
	matched := map[int]int{}
	if resp, ok := resp.(*kmsg.DeleteACLsResponse); ok {
		for i, r := range resp.Results {
			codes[i] = r.ErrorCode
			matched[i] = len(r.MatchingACLs)
		}
	}
	rs := make([]Resource, 0, len(req.Filters))
	for i, f := range req.Filters {
		pattern := f.ResourcePatternType
		if req.Version == 0 {
			pattern = kmsg.ACLResourcePatternTypeLiteral
		}
		r := Resource{Type: f.ResourceType.String(), Name: strOr(f.ResourceName, "*"), PatternType: pattern.String(), Operation: "ALTER", Allowed: true,
			Detail: aclDetail(strOr(f.Principal, "*"), strOr(f.Host, "*"), f.Operation, f.PermissionType)}
		outcome(&r, resp, codes, i)
		if resp != nil {
			r.Detail += fmt.Sprintf(" deleted=%d", matched[i])
		}
		rs = append(rs, r)
	}
	return rs
}

// configResource names a config resource the way Kafka's ACLs see it:
// broker configs are authorized on the CLUSTER.
func configResource(t kmsg.ConfigResourceType, name string) (typ, resName string) {
	switch t {
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		if name == "" {
			name = "default"
		}
		return t.String(), name
	}
	return t.String(), name
}

type configKey struct {
	t    kmsg.ConfigResourceType
	name string
}

func auditAlterConfigs(req *kmsg.AlterConfigsRequest, resp kmsg.Response) []Resource {
	codes := map[configKey]int16{}
	if resp, ok := resp.(*kmsg.AlterConfigsResponse); ok {
		for _, r := range resp.Resources {
			codes[configKey{r.ResourceType, r.ResourceName}] = r.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Resources))
	for _, c := range req.Resources {
		typ, name := configResource(c.ResourceType, c.ResourceName)
		r := literal(typ, name, "ALTER_CONFIGS")
		r.Detail = "set=" + configNames(len(c.Configs), func(i int) string { return c.Configs[i].Name })
		if req.ValidateOnly {
			r.Detail += " validate_only"
		}
		outcome(&r, resp, codes, configKey{c.ResourceType, c.ResourceName})
		rs = append(rs, r)
	}
	return rs
}

func auditIncrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest, resp kmsg.Response) []Resource {
	codes := map[configKey]int16{}
	if resp, ok := resp.(*kmsg.IncrementalAlterConfigsResponse); ok {
		for _, r := range resp.Resources {
			codes[configKey{r.ResourceType, r.ResourceName}] = r.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Resources))
	for _, c := range req.Resources {
		typ, name := configResource(c.ResourceType, c.ResourceName)
		r := literal(typ, name, "ALTER_CONFIGS")
		r.Detail = configNames(len(c.Configs), func(i int) string {
			return strings.ToLower(c.Configs[i].Op.String()) + ":" + c.Configs[i].Name
		})
		if req.ValidateOnly {
			r.Detail += " validate_only"
		}
		outcome(&r, resp, codes, configKey{c.ResourceType, c.ResourceName})
		rs = append(rs, r)
	}
	return rs
}

func auditCreatePartitions(req *kmsg.CreatePartitionsRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.CreatePartitionsResponse); ok {
		for _, t := range resp.Topics {
			codes[t.Topic] = t.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		r := literal("TOPIC", t.Topic, "ALTER")
		r.Detail = fmt.Sprintf("count=%d", t.Count)
		if req.ValidateOnly {
			r.Detail += " validate_only"
		}
		outcome(&r, resp, codes, t.Topic)
		rs = append(rs, r)
	}
	return rs
}

func auditDeleteGroups(req *kmsg.DeleteGroupsRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.DeleteGroupsResponse); ok {
		for _, g := range resp.Groups {
			codes[g.Group] = g.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Groups))
	for _, g := range req.Groups {
		r := literal("GROUP", g, "DELETE")
		outcome(&r, resp, codes, g)
		rs = append(rs, r)
	}
	return rs
}

func auditElectLeaders(req *kmsg.ElectLeadersRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	var top int16
	if resp, ok := resp.(*kmsg.ElectLeadersResponse); ok {
		top = resp.ErrorCode
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && codes[t.Topic] == 0 {
					codes[t.Topic] = p.ErrorCode
				}
			}
		}
	}
	if len(req.Topics) == 0 { // all partitions
		r := literal("CLUSTER", clusterResource, "ALTER")
		r.Detail = "all partitions"
		outcome(&r, resp, map[string]int16{"": top}, "")
		return []Resource{r}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		r := literal("TOPIC", t.Topic, "ALTER")
		r.Detail = fmt.Sprintf("partitions=%v", t.Partitions)
		outcome(&r, resp, codes, t.Topic)
		if resp != nil && top != 0 {
			setOutcome(&r, top)
		}
		rs = append(rs, r)
	}
	return rs
}

func auditAlterPartitionAssignments(req *kmsg.AlterPartitionAssignmentsRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	var top int16
	if resp, ok := resp.(*kmsg.AlterPartitionAssignmentsResponse); ok {
		top = resp.ErrorCode
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && codes[t.Topic] == 0 {
					codes[t.Topic] = p.ErrorCode
				}
			}
		}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		r := literal("TOPIC", t.Topic, "ALTER")
		parts := make([]string, len(t.Partitions))
		for i, p := range t.Partitions {
			if p.Replicas == nil {
				parts[i] = fmt.Sprintf("%d:cancel", p.Partition)
			} else {
				parts[i] = fmt.Sprintf("%d:%v", p.Partition, p.Replicas)
			}
		}
		r.Detail = "replicas=" + strings.Join(parts, ",")
		outcome(&r, resp, codes, t.Topic)
		if resp != nil && top != 0 {
			setOutcome(&r, top)
		}
		rs = append(rs, r)
	}
	return rs
}

func auditOffsetDelete(req *kmsg.OffsetDeleteRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	var top int16
	if resp, ok := resp.(*kmsg.OffsetDeleteResponse); ok {
		top = resp.ErrorCode
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && codes[t.Topic] == 0 {
					codes[t.Topic] = p.ErrorCode
				}
			}
		}
	}
	g := literal("GROUP", req.Group, "DELETE")
	outcome(&g, resp, map[string]int16{"": top}, "")
	rs := []Resource{g}
	for _, t := range req.Topics {
		r := literal("TOPIC", t.Topic, "READ")
		parts := make([]string, len(t.Partitions))
		for i, p := range t.Partitions {
			parts[i] = fmt.Sprint(p.Partition)
		}
		r.Detail = "group=" + req.Group + " partitions=" + strings.Join(parts, ",")
		if resp != nil && top != 0 {
			// The group was refused: no topic was looked at.
			continue
		}
		outcome(&r, resp, codes, t.Topic)
		rs = append(rs, r)
	}
	return rs
}

func quotaEntity(es []kmsg.AlterClientQuotasRequestEntryEntity) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Type + "=" + strOr(e.Name, "<default>")
	}
	return strings.Join(parts, ",")
}

func auditAlterClientQuotas(req *kmsg.AlterClientQuotasRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.AlterClientQuotasResponse); ok {
		for _, e := range resp.Entries {
			es := make([]kmsg.AlterClientQuotasRequestEntryEntity, len(e.Entity))
			for i, x := range e.Entity {
				es[i] = kmsg.AlterClientQuotasRequestEntryEntity{Type: x.Type, Name: x.Name}
			}
			codes[quotaEntity(es)] = e.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Entries))
	for _, e := range req.Entries {
		name := quotaEntity(e.Entity)
		r := literal("CLIENT_QUOTA", name, "ALTER_CONFIGS")
		r.Detail = configNames(len(e.Ops), func(i int) string {
			if e.Ops[i].Remove {
				return "remove:" + e.Ops[i].Key
			}
			return fmt.Sprintf("set:%s=%g", e.Ops[i].Key, e.Ops[i].Value)
		})
		outcome(&r, resp, codes, name)
		rs = append(rs, r)
	}
	return rs
}

func scramMechanism(m int8) string {
	switch m {
	case 1:
		return "SCRAM-SHA-256"
	case 2:
		return "SCRAM-SHA-512"
	}
	return fmt.Sprintf("mechanism-%d", m)
}

func auditAlterSCRAM(req *kmsg.AlterUserSCRAMCredentialsRequest, resp kmsg.Response) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.AlterUserSCRAMCredentialsResponse); ok {
		for _, r := range resp.Results {
			codes[r.User] = r.ErrorCode
		}
	}
	rs := make([]Resource, 0, len(req.Deletions)+len(req.Upsertions))
	for _, u := range req.Upsertions {
		r := literal("USER", u.Name, "ALTER")
		r.Detail = "upsert " + scramMechanism(u.Mechanism)
		outcome(&r, resp, codes, u.Name)
		rs = append(rs, r)
	}
	for _, d := range req.Deletions {
		r := literal("USER", d.Name, "ALTER")
		r.Detail = "delete " + scramMechanism(d.Mechanism)
		outcome(&r, resp, codes, d.Name)
		rs = append(rs, r)
	}
	return rs
}

func auditProduce(req *kmsg.ProduceRequest, resp kmsg.Response, names topicNamer) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.ProduceResponse); ok {
		for _, t := range resp.Topics {
			n := topicName(t.Topic, t.TopicID, names)
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && (codes[n] == 0 || denied(p.ErrorCode)) {
					codes[n] = p.ErrorCode
				}
			}
		}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		n := topicName(t.Topic, t.TopicID, names)
		r := literal("TOPIC", n, "WRITE")
		outcome(&r, resp, codes, n)
		rs = append(rs, r)
	}
	if req.TransactionID != nil {
		r := literal("TRANSACTIONAL_ID", *req.TransactionID, "WRITE")
		outcome(&r, resp, map[string]int16{}, "")
		rs = append(rs, r)
	}
	return rs
}

func auditFetch(req *kmsg.FetchRequest, resp kmsg.Response, names topicNamer) []Resource {
	codes := map[string]int16{}
	if resp, ok := resp.(*kmsg.FetchResponse); ok {
		if denied(resp.ErrorCode) { // v7+: the whole fetch (e.g. a replica fetch)
			return []Resource{{Type: "CLUSTER", Name: clusterResource, PatternType: "LITERAL", Operation: "CLUSTER_ACTION",
				ErrorCode: resp.ErrorCode, Error: errorName(resp.ErrorCode)}}
		}
		for _, t := range resp.Topics {
			n := topicName(t.Topic, t.TopicID, names)
			for _, p := range t.Partitions {
				if denied(p.ErrorCode) {
					codes[n] = p.ErrorCode
				}
			}
		}
	}
	rs := make([]Resource, 0, len(req.Topics))
	for _, t := range req.Topics {
		n := topicName(t.Topic, t.TopicID, names)
		r := literal("TOPIC", n, "READ")
		outcome(&r, resp, codes, n)
		rs = append(rs, r)
	}
	return rs
}

func auditOffsetCommit(req *kmsg.OffsetCommitRequest, resp kmsg.Response, names topicNamer) []Resource {
	codes := map[string]int16{}
	var groupCode int16
	if resp, ok := resp.(*kmsg.OffsetCommitResponse); ok {
		for _, t := range resp.Topics {
			n := topicName(t.Topic, t.TopicID, names)
			for _, p := range t.Partitions {
				if p.ErrorCode == kerr.GroupAuthorizationFailed.Code {
					groupCode = p.ErrorCode
				} else if denied(p.ErrorCode) {
					codes[n] = p.ErrorCode
				}
			}
		}
	}
	g := literal("GROUP", req.Group, "READ")
	outcome(&g, resp, map[string]int16{"": groupCode}, "")
	rs := []Resource{g}
	for _, t := range req.Topics {
		n := topicName(t.Topic, t.TopicID, names)
		r := literal("TOPIC", n, "READ")
		r.Detail = "group=" + req.Group
		outcome(&r, resp, codes, n)
		rs = append(rs, r)
	}
	return rs
}
