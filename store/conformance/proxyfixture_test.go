package conformance_test

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// flowSpec is one client's traffic on one topic in the proxy fixture.
type flowSpec struct {
	principal, client, group, topic, api string
}

var proxyFlows = []flowSpec{
	{"User:alice", "shop", "", "orders", "Produce"},
	{"User:alice", "shop", "", "payments", "Produce"},
	{"User:carol", "pay-svc", "", "payments", "Produce"},
	{"User:bob", "billing-1", "billing", "orders", "Fetch"},
	{"User:bob", "billing-1", "billing", "payments", "Fetch"},
	{"User:dave", "search-1", "search", "orders", "Fetch"},
	{"User:erin", "ledger-1", "ledger", "orders", "ShareFetch"},
}

// apiKeys are the Kafka API keys of the fixture's APIs (part of a traffic
// record's key).
var apiKeys = map[string]int16{"Produce": 0, "Fetch": 1, "Metadata": 3, "ShareFetch": 78}

// addProxy adds kaudit-proxy's audit to the fixture: per-minute traffic
// records over the last 40 minutes (each flow in most minutes, some from
// two proxy instances, with per-API totals of topic "" and Metadata rows
// that are not flows), admin audit events over the last 20 hours (several
// in the same second, one to three resources each, some denied), and
// both kinds on the old days, for retention.
func (f *fixture) addProxy(r *rand.Rand) {
	rec := func(at time.Time, fl flowSpec, instance string) traffic.Record {
		n := r.Int64N(500)
		errs := int64(0)
		if r.IntN(20) == 0 {
			errs = 1 + r.Int64N(3)
		}
		return traffic.Record{Type: "traffic", WindowStart: at, WindowEnd: at.Add(time.Minute), Proxy: "edge", Instance: instance,
			Principal: fl.principal, ClientID: fl.client, ClientAddress: "10.0.0." + fmt.Sprint(len(fl.client)), Group: fl.group,
			Topic: fl.topic, APIKey: apiKeys[fl.api], API: fl.api, Requests: 1 + r.Int64N(20), Errors: errs, Records: n, Bytes: n * (90 + r.Int64N(20)),
			RequestBytes: 100 + r.Int64N(1000), ResponseBytes: 100 + r.Int64N(1000)}
	}
	minute := func(at time.Time) {
		for _, fl := range proxyFlows {
			if r.IntN(5) == 0 {
				continue
			}
			f.traffic = append(f.traffic, rec(at, fl, "i1"))
			if r.IntN(3) == 0 {
				f.traffic = append(f.traffic, rec(at, fl, "i2"))
			}
		}
		for _, api := range []string{"Produce", "Fetch"} { // per-API totals
			f.traffic = append(f.traffic, rec(at, flowSpec{"User:bob", "billing-1", "billing", "", api}, "i1"))
		}
		f.traffic = append(f.traffic, rec(at, flowSpec{"User:alice", "shop", "", "orders", "Metadata"}, "i1"))
	}
	for k := 1; k <= 40; k++ {
		minute(f.now.Add(-time.Duration(k) * time.Minute))
	}

	methods := []struct{ method, op, typ string }{
		{"CreateTopics", "CREATE", "TOPIC"}, {"DeleteTopics", "DELETE", "TOPIC"}, {"AlterConfigs", "ALTER_CONFIGS", "TOPIC"},
		{"CreateAcls", "ALTER", "TOPIC"}, {"DeleteGroups", "DELETE", "GROUP"}, {"SaslAuthenticate", "DESCRIBE", "CLUSTER"},
	}
	principals := []string{"User:alice", "User:bob", "User:ops", "User:mallory"}
	names := []string{"orders", "payments", "billing", "audit-' OR 1=1 --"}
	seq := 0
	event := func(at time.Time) {
		m := methods[r.IntN(len(methods))]
		seq++
		ev := proxy.AuditEvent{ID: fmt.Sprintf("ev-%04d-%x", seq, r.Uint32()), Time: at, Method: m.method, APIKey: int16(r.IntN(60)),
			APIVersion: int16(r.IntN(5)), Principal: principals[r.IntN(len(principals))],
			ClientAddr: fmt.Sprintf("10.0.1.%d:%d", r.IntN(9), 40000+r.IntN(1000)), ClientID: "admin-" + fmt.Sprint(r.IntN(3)),
			Broker: int32(r.IntN(3)), ClusterID: "c1", Proxy: "edge"}
		for i := range 1 + r.IntN(3) {
			res := proxy.Resource{Type: m.typ, Name: names[r.IntN(len(names))], PatternType: "LITERAL", Operation: m.op, Allowed: true}
			if m.method == "CreateAcls" {
				res.PatternType = "PREFIXED"
			}
			if ev.Principal == "User:mallory" || r.IntN(8) == 0 {
				res.Allowed, res.ErrorCode, res.Error = false, 29, "TOPIC_AUTHORIZATION_FAILED"
			}
			if r.IntN(4) == 0 {
				res.Detail = "retention.ms=" + fmt.Sprint(r.IntN(1000))
			}
			f.admin = append(f.admin, sinks.AdminRow{Event: ev, ResourceIndex: i, Resource: res})
		}
	}
	for range 150 { // the last 40 minutes; whole seconds, so that some share one
		at := f.now.Add(-time.Duration(1+r.Int64N(40*60)) * time.Second)
		event(at)
		if r.IntN(10) == 0 {
			event(at)
		}
	}
	for range 60 { // the last 20 hours
		event(f.now.Add(-time.Duration(3600+r.Int64N(19*3600)) * time.Second).Add(time.Duration(r.Int64N(1e9))))
	}
	for _, day := range f.oldDays {
		minute(day.Add(2 * time.Hour))
		for i := range 5 {
			event(day.Add(time.Duration(i) * time.Hour))
		}
	}
}

// proxyBounds are a ClientFilter's [from, to) in Unix seconds, as
// report computes them (whole minutes).
func proxyBounds(since, until time.Time) (int64, int64) {
	from := store.UnixSeconds(since) / 60 * 60
	to := int64(math.MaxUint32)
	if !until.IsZero() {
		to = min((store.UnixSeconds(until)+59)/60*60, math.MaxUint32)
	}
	return from, to
}

// isFlow says whether a traffic record is a topic's Produce or Fetch share.
func isFlow(t traffic.Record) bool {
	return t.Topic != "" && (t.API == "Produce" || t.API == "Fetch" || t.API == "ShareFetch")
}

// flows is what report.ClientFlows must return for f.
func (fx *fixture) flows(f report.ClientFilter) []report.ClientFlow {
	from, to := proxyBounds(f.Since, f.Until)
	type key struct{ topic, principal, client, group, dir string }
	sums := map[key]*report.ClientFlow{}
	minutes := map[key]map[int64]bool{}
	for _, t := range fx.traffic {
		s := t.WindowStart.Unix()
		if !isFlow(t) || s < from || s >= to || (f.Topic != "" && t.Topic != f.Topic) || (f.Principal != "" && t.Principal != f.Principal) {
			continue
		}
		dir := "consume"
		if t.API == "Produce" {
			dir = "produce"
		}
		k := key{t.Topic, t.Principal, t.ClientID, t.Group, dir}
		c := sums[k]
		if c == nil {
			c = &report.ClientFlow{Topic: t.Topic, Principal: t.Principal, ClientID: t.ClientID, Group: t.Group, Direction: dir}
			sums[k] = c
			minutes[k] = map[int64]bool{}
		}
		c.Records += uint64(t.Records)
		c.Bytes += uint64(t.Bytes)
		c.Requests += uint64(t.Requests)
		c.Errors += uint64(t.Errors)
		minutes[k][s/60] = true
	}
	var out []report.ClientFlow
	for k, c := range sums {
		c.Minutes = uint64(len(minutes[k]))
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b report.ClientFlow) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), -strings.Compare(a.Direction, b.Direction), -cmp.Compare(a.Records, b.Records),
			strings.Compare(a.Principal, b.Principal), strings.Compare(a.ClientID, b.ClientID), strings.Compare(a.Group, b.Group))
	})
	return out[:min(len(out), 1000)]
}

// topicMinutes is what report.TopicMinutes must return for f.
func (fx *fixture) topicMinutes(f report.ClientFilter) []report.TopicMinute {
	from, to := proxyBounds(f.Since, f.Until)
	type key struct {
		m     int64
		topic string
	}
	sums := map[key]*report.TopicMinute{}
	for _, t := range fx.traffic {
		s := t.WindowStart.Unix()
		if !isFlow(t) || s < from || s >= to || (f.Topic != "" && t.Topic != f.Topic) || (f.Principal != "" && t.Principal != f.Principal) {
			continue
		}
		k := key{s / 60 * 60, t.Topic}
		m := sums[k]
		if m == nil {
			m = &report.TopicMinute{Minute: time.Unix(k.m, 0).UTC(), Topic: t.Topic}
			sums[k] = m
		}
		if t.API == "Produce" {
			m.ProducedRecords += uint64(t.Records)
			m.ProducedBytes += uint64(t.Bytes)
		} else {
			m.ConsumedRecords += uint64(t.Records)
			m.ConsumedBytes += uint64(t.Bytes)
		}
	}
	var out []report.TopicMinute
	for _, m := range sums {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b report.TopicMinute) int {
		return cmp.Or(a.Minute.Compare(b.Minute), strings.Compare(a.Topic, b.Topic))
	})
	return out
}

// audit is what report.AdminAudit must return for f.
func (fx *fixture) audit(f report.AuditFilter) []report.AuditRow {
	from := store.UnixSeconds(f.Since)
	to := int64(math.MaxUint32)
	if !f.Until.IsZero() {
		to = store.UnixSeconds(f.Until)
	}
	type row struct {
		report.AuditRow
		id  string
		idx int
	}
	var rows []row
	for _, a := range fx.admin {
		s := a.Event.Time.Unix()
		if s < from || s >= to || (f.Principal != "" && a.Event.Principal != f.Principal) ||
			(f.Method != "" && a.Event.Method != f.Method) || (f.Resource != "" && a.Resource.Name != f.Resource) ||
			(f.Denied && a.Resource.Allowed) {
			continue
		}
		rows = append(rows, row{report.AuditRow{Time: time.Unix(s, 0).UTC(), Method: a.Event.Method, Operation: a.Resource.Operation,
			ResourceType: a.Resource.Type, ResourceName: a.Resource.Name, PatternType: a.Resource.PatternType,
			Principal: a.Event.Principal, ClientAddress: a.Event.ClientAddr, ClientID: a.Event.ClientID,
			Allowed: a.Resource.Allowed, Error: a.Resource.Error, Detail: a.Resource.Detail}, a.Event.ID, a.ResourceIndex})
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(-a.Time.Compare(b.Time), strings.Compare(a.id, b.id), cmp.Compare(a.idx, b.idx))
	})
	limit := cmp.Or(f.Limit, 200)
	out := []report.AuditRow{}
	for _, r := range rows[:min(len(rows), limit)] {
		out = append(out, r.AuditRow)
	}
	return out
}
