// Package proxyscript is the test kit of kaudit-proxy's acceptance tests: a
// kfake cluster with SASL users (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
// ACLs, and a script of admin operations and traffic run through a proxy by
// real clients — franz-go/kadm, kcat and python3-confluent-kafka — some of
// them denied by the ACLs. Run returns what the script did, written down
// by the script itself as it goes (never read back from kaudit): every
// audited request with its resource, principal and outcome, and the
// records each principal produced to and consumed from each topic.
//
//	c := proxyscript.Cluster(t)
//	// ... start a proxy in front of c.ListenAddrs() ...
//	want := proxyscript.Run(t, c, proxyAddr)
package proxyscript

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The cluster's users.
const (
	AdminUser = "admin" // superuser, SCRAM-SHA-256
	AdminPass = "admin-secret"
	AliceUser = "alice" // SCRAM-SHA-256, franz-go/kadm
	AlicePass = "alice-secret"
	BobUser   = "bob" // PLAIN, kcat
	BobPass   = "bob-secret"
	CarolUser = "carol" // SCRAM-SHA-512, python3-confluent-kafka
	CarolPass = "carol-secret"
	// Mallory has no account; the script tries to log in as her.
	MalloryUser = "mallory"
)

// PythonBin is Debian's python, the one with python3-confluent-kafka.
const PythonBin = "/usr/bin/python3"

func acl(res kmsg.ACLResourceType, name string, pattern kmsg.ACLResourcePatternType, ops ...kmsg.ACLOperation) []kfake.ACL {
	out := make([]kfake.ACL, len(ops))
	for i, op := range ops {
		out[i] = kfake.ACL{Resource: res, Name: name, Pattern: pattern, Operation: op, Allow: true}
	}
	return out
}

const (
	topicT   = kmsg.ACLResourceTypeTopic
	groupT   = kmsg.ACLResourceTypeGroup
	literalP = kmsg.ACLResourcePatternTypeLiteral
	prefixP  = kmsg.ACLResourcePatternTypePrefixed
)

// Cluster starts a 3-broker kfake cluster with SASL and ACLs:
//
//   - alice: ALL on topics and groups prefixed "alice.", DESCRIBE on topic
//     "restricted" and group "shared.g" (so her READs there are denied);
//   - bob: READ and WRITE on topic "bob.events", READ on topic "shared"
//     (his WRITE there is denied), READ on groups prefixed "bob.";
//   - carol: ALL on topics prefixed "carol.", READ on groups prefixed
//     "carol.";
//
// and the topics "shared", "restricted" (1 partition each) and
// "bob.events" (3 partitions).
func Cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	var aliceACLs, bobACLs, carolACLs []kfake.ACL
	aliceACLs = append(aliceACLs, acl(topicT, "alice.", prefixP, kmsg.ACLOperationAll)...)
	aliceACLs = append(aliceACLs, acl(groupT, "alice.", prefixP, kmsg.ACLOperationAll)...)
	aliceACLs = append(aliceACLs, acl(topicT, "restricted", literalP, kmsg.ACLOperationDescribe)...)
	aliceACLs = append(aliceACLs, acl(groupT, "shared.g", literalP, kmsg.ACLOperationDescribe)...)
	bobACLs = append(bobACLs, acl(topicT, "bob.events", literalP, kmsg.ACLOperationRead, kmsg.ACLOperationWrite)...)
	bobACLs = append(bobACLs, acl(topicT, "shared", literalP, kmsg.ACLOperationRead)...)
	bobACLs = append(bobACLs, acl(groupT, "bob.", prefixP, kmsg.ACLOperationRead)...)
	carolACLs = append(carolACLs, acl(topicT, "carol.", prefixP, kmsg.ACLOperationAll)...)
	carolACLs = append(carolACLs, acl(groupT, "carol.", prefixP, kmsg.ACLOperationRead)...)
	all := append([]kfake.Opt{
		kfake.NumBrokers(3),
		kfake.EnableSASL(),
		kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", AdminUser, AdminPass),
		kfake.User("SCRAM-SHA-256", AliceUser, AlicePass, aliceACLs...),
		kfake.User("PLAIN", BobUser, BobPass, bobACLs...),
		kfake.User("SCRAM-SHA-512", CarolUser, CarolPass, carolACLs...),
		kfake.SeedTopics(1, "shared", "restricted"),
		kfake.SeedTopics(3, "bob.events"),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("proxyscript: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// AdminOpts are franz-go options that reach c directly (not through a
// proxy) as the superuser.
func AdminOpts(c *kfake.Cluster) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), AdminAuth()}
}

// AdminAuth logs a franz-go client in as the superuser.
func AdminAuth() kgo.Opt {
	return kgo.SASL(scram.Auth{User: AdminUser, Pass: AdminPass}.AsSha256Mechanism())
}

// Audit is one audited resource as the script expects it.
type Audit struct {
	Method       string // Kafka API name, e.g. CreateTopics
	ResourceType string // TOPIC, GROUP, CLUSTER, USER, CLIENT_QUOTA
	Resource     string
	PatternType  string
	Operation    string
	Principal    string
	Allowed      bool
	Error        string // Kafka error name, "" for none
}

func (a Audit) String() string {
	return fmt.Sprintf("%s %s %s:%s(%s) by %s allowed=%t error=%q", a.Method, a.Operation, a.ResourceType, a.Resource, a.PatternType, a.Principal, a.Allowed, a.Error)
}

// Flow is one principal's traffic on one topic.
type Flow struct {
	Principal, Topic string
}

// Expected is what the script did.
type Expected struct {
	// Audit lists every audited resource of every audited request, in
	// script order (failed logins excluded, see AuthFailures).
	Audit []Audit
	// Produced and Fetched count the records each principal's clients
	// wrote (acknowledged) and read, per topic.
	Produced, Fetched map[Flow]int64
	// Groups is the consumer group each Fetched flow used.
	Groups map[Flow]string
	// AuthFailures are the principals that failed to log in (each at
	// least once: clients retry).
	AuthFailures []string
}

// Sorted returns the audit rows sorted, for comparing as multisets.
func Sorted(as []Audit) []Audit {
	out := append([]Audit(nil), as...)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

type script struct {
	t    testing.TB
	c    *kfake.Cluster
	addr string
	want Expected
}

func (s *script) expect(a Audit) { s.want.Audit = append(s.want.Audit, a) }

const timeout = 60 * time.Second

// Run runs the script against the proxy at proxyAddr (the cluster c is
// reached directly only to check results). kcat and python3 must be
// installed.
func Run(t testing.TB, c *kfake.Cluster, proxyAddr string) Expected {
	t.Helper()
	s := &script{t: t, c: c, addr: proxyAddr, want: Expected{
		Produced: map[Flow]int64{}, Fetched: map[Flow]int64{}, Groups: map[Flow]string{},
	}}
	s.alice()
	s.admin()
	s.bob()
	s.carol()
	s.mallory()
	return s.want
}

func (s *script) client(user string, m sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	s.t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(s.addr), kgo.SASL(m), kgo.ClientID("kadm-" + user),
		kgo.RetryTimeout(10 * time.Second)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		s.t.Fatalf("proxyscript: client for %s: %v", user, err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

func (s *script) check(what string, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("proxyscript: %s: %v", what, err)
	}
}

// checkDenied asserts err (or code) is the authorization error want.
func (s *script) checkDenied(what string, err error, want *kerr.Error) {
	s.t.Helper()
	if !errors.Is(err, want) {
		s.t.Fatalf("proxyscript: %s: got %v, want %v", what, err, want)
	}
}

const (
	topicAuth   = "TOPIC_AUTHORIZATION_FAILED"
	groupAuth   = "GROUP_AUTHORIZATION_FAILED"
	clusterAuth = "CLUSTER_AUTHORIZATION_FAILED"
)

// alice administers her own topics with kadm, produces and consumes with
// franz-go, and tries a few things she may not.
func (s *script) alice() {
	p := "User:" + AliceUser
	cl := s.client(AliceUser, scram.Auth{User: AliceUser, Pass: AlicePass}.AsSha256Mechanism())
	adm := kadm.NewClient(cl)
	c, cancel := ctx()
	defer cancel()

	// alice.orders carries her traffic; alice.scratch is deleted at the
	// end (a consumer's last long-polling fetch may still wait on
	// alice.orders when the script moves on, and a deleted topic would
	// end it with an error).
	const orders, scratch = "alice.orders", "alice.scratch"
	rs, err := adm.CreateTopics(c, 3, 1, nil, orders, scratch)
	s.check("alice creates alice.orders and alice.scratch", errors.Join(err, rs.Error()))
	s.expect(Audit{"CreateTopics", "TOPIC", orders, "LITERAL", "CREATE", p, true, ""})
	s.expect(Audit{"CreateTopics", "TOPIC", scratch, "LITERAL", "CREATE", p, true, ""})

	r, err := adm.CreateTopic(c, 1, 1, nil, "bob.secret")
	if err == nil {
		err = r.Err
	}
	s.checkDenied("alice creates bob.secret", err, kerr.TopicAuthorizationFailed)
	s.expect(Audit{"CreateTopics", "TOPIC", "bob.secret", "LITERAL", "CREATE", p, false, topicAuth})

	cp, err := adm.CreatePartitions(c, 1, orders)
	s.check("alice adds a partition", errors.Join(err, cp.Error()))
	s.expect(Audit{"CreatePartitions", "TOPIC", orders, "LITERAL", "ALTER", p, true, ""})

	retention := "3600000"
	ac, err := adm.AlterTopicConfigs(c, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &retention}}, orders)
	s.check("alice alters configs (incremental)", errors.Join(err, firstConfigErr(ac)))
	s.expect(Audit{"IncrementalAlterConfigs", "TOPIC", orders, "LITERAL", "ALTER_CONFIGS", p, true, ""})

	policy := "delete"
	ac, err = adm.AlterTopicConfigsState(c, []kadm.AlterConfig{{Name: "cleanup.policy", Value: &policy}}, orders)
	s.check("alice alters configs", errors.Join(err, firstConfigErr(ac)))
	s.expect(Audit{"AlterConfigs", "TOPIC", orders, "LITERAL", "ALTER_CONFIGS", p, true, ""})

	// Traffic: 100 records in, the same 100 out through group alice.g1.
	prod := s.client(AliceUser, scram.Auth{User: AliceUser, Pass: AlicePass}.AsSha256Mechanism(), kgo.DefaultProduceTopic(orders))
	sent := map[string]bool{}
	for i := range 100 {
		v := fmt.Sprintf("alice-order-%03d", i)
		s.check("alice produces", prod.ProduceSync(c, &kgo.Record{Value: []byte(v)}).FirstErr())
		sent[v] = true
	}
	s.want.Produced[Flow{p, orders}] += 100
	got := s.consumeKgo(AliceUser, scram.Auth{User: AliceUser, Pass: AlicePass}.AsSha256Mechanism(), orders, "alice.g1", 100)
	s.sameValues("alice's consumer", got, sent)
	s.want.Fetched[Flow{p, orders}] += 100
	s.want.Groups[Flow{p, orders}] = "alice.g1"

	dr, err := adm.DeleteRecords(c, kadm.Offsets{orders: {0: {Topic: orders, Partition: 0, At: 0}}})
	s.check("alice deletes records", errors.Join(err, dr.Error()))
	s.expect(Audit{"DeleteRecords", "TOPIC", orders, "LITERAL", "DELETE", p, true, ""})

	do, err := adm.DeleteOffsets(c, "alice.g1", kadm.TopicsSet{orders: {0: {}, 1: {}, 2: {}, 3: {}}})
	s.check("alice deletes offsets", errors.Join(err, do.Error()))
	s.expect(Audit{"OffsetDelete", "GROUP", "alice.g1", "LITERAL", "DELETE", p, true, ""})
	s.expect(Audit{"OffsetDelete", "TOPIC", orders, "LITERAL", "READ", p, true, ""})

	dg, err := adm.DeleteGroup(c, "alice.g1")
	s.check("alice deletes her group", errors.Join(err, dg.Err))
	s.expect(Audit{"DeleteGroups", "GROUP", "alice.g1", "LITERAL", "DELETE", p, true, ""})

	ca, err := adm.CreateACLs(c, kadm.NewACLs().Allow(p).Topics("restricted").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err == nil && len(ca) == 1 {
		err = ca[0].Err
	}
	s.checkDenied("alice creates an ACL", err, kerr.ClusterAuthorizationFailed)
	s.expect(Audit{"CreateAcls", "TOPIC", "restricted", "LITERAL", "ALTER", p, false, clusterAuth})

	_, err = adm.AlterPartitionAssignments(c, kadm.AlterPartitionAssignmentsReq{orders: {0: {1}}})
	s.checkDenied("alice reassigns a partition", err, kerr.ClusterAuthorizationFailed)
	s.expect(Audit{"AlterPartitionReassignments", "TOPIC", orders, "LITERAL", "ALTER", p, false, clusterAuth})

	as, err := adm.AlterUserSCRAMs(c, nil, []kadm.UpsertSCRAM{{User: AliceUser, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "new"}})
	if err == nil {
		err = as.Error()
	}
	s.checkDenied("alice changes her password", err, kerr.ClusterAuthorizationFailed)
	s.expect(Audit{"AlterUserScramCredentials", "USER", AliceUser, "LITERAL", "ALTER", p, false, clusterAuth})

	// One JoinGroup and one Fetch where she may DESCRIBE but not READ.
	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Group, jg.ProtocolType, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis = "shared.g", "consumer", 30_000, 30_000
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name, jp.Metadata = "range", (&kmsg.ConsumerMemberMetadata{Topics: []string{"restricted"}}).AppendTo(nil)
	jg.Protocols = append(jg.Protocols, jp)
	jr, err := jg.RequestWith(c, cl)
	s.check("alice joins shared.g (request)", err)
	s.checkDenied("alice joins shared.g", kerr.ErrorForCode(jr.ErrorCode), kerr.GroupAuthorizationFailed)
	s.expect(Audit{"JoinGroup", "GROUP", "shared.g", "LITERAL", "READ", p, false, groupAuth})

	s.deniedFetch(c, cl, "restricted")
	s.expect(Audit{"Fetch", "TOPIC", "restricted", "LITERAL", "READ", p, false, topicAuth})

	dt, err := adm.DeleteTopic(c, scratch)
	s.check("alice deletes alice.scratch", errors.Join(err, dt.Err))
	s.expect(Audit{"DeleteTopics", "TOPIC", scratch, "LITERAL", "DELETE", p, true, ""})
}

func firstConfigErr(rs kadm.AlterConfigsResponses) error {
	for _, r := range rs {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// deniedFetch sends one Fetch for partition 0 of topic to its leader.
func (s *script) deniedFetch(c context.Context, cl *kgo.Client, topic string) {
	s.t.Helper()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(c, cl)
	s.check("metadata of "+topic, err)
	if len(mresp.Topics) != 1 || len(mresp.Topics[0].Partitions) == 0 {
		s.t.Fatalf("proxyscript: metadata of %s: %+v", topic, mresp.Topics)
	}
	leader := mresp.Topics[0].Partitions[0].Leader
	f := kmsg.NewPtrFetchRequest()
	f.ReplicaID, f.MaxWaitMillis, f.MaxBytes = -1, 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, mresp.Topics[0].TopicID // v13+ carry only the id
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	resp, err := cl.Broker(int(leader)).RetriableRequest(c, f)
	s.check("fetch "+topic, err)
	fr := resp.(*kmsg.FetchResponse)
	var code int16
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			code = p.ErrorCode
		}
	}
	s.checkDenied("fetch "+topic, kerr.ErrorForCode(code), kerr.TopicAuthorizationFailed)
}

// consumeKgo reads n records of topic with group through the proxy.
func (s *script) consumeKgo(user string, m sasl.Mechanism, topic, group string, n int) []string {
	s.t.Helper()
	cl := s.client(user, m, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	c, cancel := ctx()
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			s.t.Fatalf("proxyscript: %s consumed %d of %d records of %s", user, len(got), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	s.check("commit", cl.CommitUncommittedOffsets(c))
	cl.Close() // leaves the group, so its offsets can be deleted
	return got
}

func (s *script) sameValues(who string, got []string, sent map[string]bool) {
	s.t.Helper()
	seen := map[string]bool{}
	for _, v := range got {
		if !sent[v] || seen[v] {
			s.t.Fatalf("proxyscript: %s got %q, which was not sent or came twice", who, v)
		}
		seen[v] = true
	}
	if len(seen) != len(sent) {
		s.t.Fatalf("proxyscript: %s got %d of %d records", who, len(seen), len(sent))
	}
}

// admin uses the superuser through the proxy for what only it may do.
func (s *script) admin() {
	p := "User:" + AdminUser
	cl := s.client(AdminUser, scram.Auth{User: AdminUser, Pass: AdminPass}.AsSha256Mechanism())
	adm := kadm.NewClient(cl)
	c, cancel := ctx()
	defer cancel()

	b := kadm.NewACLs().Allow("User:" + BobUser).AllowHosts("*").Topics("restricted").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	cr, err := adm.CreateACLs(c, b)
	s.check("admin creates an ACL", err)
	for _, r := range cr {
		s.check("admin creates an ACL", r.Err)
	}
	s.expect(Audit{"CreateAcls", "TOPIC", "restricted", "LITERAL", "ALTER", p, true, ""})

	dr, err := adm.DeleteACLs(c, b)
	s.check("admin deletes an ACL", err)
	for _, r := range dr {
		s.check("admin deletes an ACL", r.Err)
	}
	s.expect(Audit{"DeleteAcls", "TOPIC", "restricted", "LITERAL", "ALTER", p, true, ""})

	as, err := adm.AlterUserSCRAMs(c, nil, []kadm.UpsertSCRAM{{User: "dave", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "dave-secret"}})
	s.check("admin adds dave", errors.Join(err, as.Error()))
	s.expect(Audit{"AlterUserScramCredentials", "USER", "dave", "LITERAL", "ALTER", p, true, ""})

	ap, err := adm.AlterPartitionAssignments(c, kadm.AlterPartitionAssignmentsReq{"bob.events": {0: {0}}})
	s.check("admin reassigns bob.events/0", errors.Join(err, ap.Error()))
	s.expect(Audit{"AlterPartitionReassignments", "TOPIC", "bob.events", "LITERAL", "ALTER", p, true, ""})

	user := BobUser
	aq, err := adm.AlterClientQuotas(c, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &user}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1 << 30}},
	}})
	s.check("admin sets bob's quota", err)
	for _, q := range aq {
		s.check("admin sets bob's quota", q.Err)
	}
	s.expect(Audit{"AlterClientQuotas", "CLIENT_QUOTA", "user=bob", "LITERAL", "ALTER_CONFIGS", p, true, ""})
}

func kcatArgs(addr string, extra ...string) []string {
	return append([]string{"-b", addr,
		"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
		"-X", "sasl.username=" + BobUser, "-X", "sasl.password=" + BobPass,
		"-X", "client.id=kcat-bob"}, extra...)
}

func run(t testing.TB, stdin string, name string, args ...string) (string, string, error) {
	t.Helper()
	c, cancel := ctx()
	defer cancel()
	cmd := exec.CommandContext(c, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if c.Err() != nil {
		t.Fatalf("proxyscript: %s timed out: %s", name, errb.String())
	}
	return out.String(), errb.String(), err
}

// bob produces and consumes with kcat (SASL/PLAIN), and tries to write
// where he may only read.
func (s *script) bob() {
	t := s.t
	p := "User:" + BobUser
	var in strings.Builder
	sent := map[string]bool{}
	for i := range 200 {
		v := fmt.Sprintf("bob-event-%03d", i)
		in.WriteString(v + "\n")
		sent[v] = true
	}
	if _, stderr, err := run(t, in.String(), "kcat", kcatArgs(s.addr, "-P", "-t", "bob.events")...); err != nil {
		t.Fatalf("proxyscript: kcat -P bob.events: %v: %s", err, stderr)
	}
	s.want.Produced[Flow{p, "bob.events"}] += 200

	_, stderr, _ := run(t, "not allowed\n", "kcat", kcatArgs(s.addr, "-P", "-t", "shared")...)
	if !strings.Contains(strings.ToLower(stderr), "authorization") {
		t.Fatalf("proxyscript: kcat -P shared: want an authorization error, got: %s", stderr)
	}
	s.expect(Audit{"Produce", "TOPIC", "shared", "LITERAL", "WRITE", p, false, topicAuth})

	out, stderr, err := run(t, "", "kcat", kcatArgs(s.addr, "-G", "bob.c1", "-X", "auto.offset.reset=earliest",
		"-c", "200", "-f", "%s\n", "-q", "bob.events")...)
	if err != nil {
		t.Fatalf("proxyscript: kcat -G bob.c1: %v: %s", err, stderr)
	}
	s.sameValues("kcat -G bob.c1", strings.Fields(out), sent)
	s.want.Fetched[Flow{p, "bob.events"}] += 200
	s.want.Groups[Flow{p, "bob.events"}] = "bob.c1"
}

// carolPy administers and uses carol's topics with confluent-kafka.
const carolPy = `
import json, sys, time
from confluent_kafka import Producer, Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource

addr, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
conf = {'bootstrap.servers': addr, 'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': 'SCRAM-SHA-512', 'sasl.username': user, 'sasl.password': pw,
        'client.id': 'py-carol'}
out = {}
def result(name, futures):
    for k, f in futures.items():
        try:
            f.result(30)
            out[name] = ''
        except KafkaException as e:
            out[name] = e.args[0].name()

a = AdminClient(conf)
result('create carol.t1', a.create_topics([NewTopic('carol.t1', 2, 1)], operation_timeout=10))
result('create alice.x', a.create_topics([NewTopic('alice.x', 1, 1)], operation_timeout=10))
result('partitions carol.t1', a.create_partitions([NewPartitions('carol.t1', 3)], operation_timeout=10))
result('configs carol.t1', a.alter_configs([ConfigResource('topic', 'carol.t1', set_config={'retention.ms': '7200000'})]))

p = Producer(conf)
acked = []
def cb(err, msg):
    if err is None:
        acked.append(msg.value().decode())
for i in range(50):
    p.produce('carol.t1', ('carol-%03d' % i).encode(), on_delivery=cb)
p.flush(30)
out['acked'] = acked

c = Consumer(dict(conf, **{'group.id': 'carol.g', 'auto.offset.reset': 'earliest'}))
c.subscribe(['carol.t1'])
got, deadline = [], time.time() + 30
while len(got) < 50 and time.time() < deadline:
    m = c.poll(1)
    if m is not None and m.error() is None:
        got.append(m.value().decode())
c.close()
out['consumed'] = got

result('delete carol.t1', a.delete_topics(['carol.t1'], operation_timeout=10))
print(json.dumps(out))
`

// carol runs admin operations, produces and consumes with
// python3-confluent-kafka (SASL/SCRAM-SHA-512).
func (s *script) carol() {
	t := s.t
	p := "User:" + CarolUser
	stdout, stderr, err := run(t, "", PythonBin, "-c", carolPy, s.addr, CarolUser, CarolPass)
	if err != nil {
		t.Fatalf("proxyscript: python carol: %v: %s", err, stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &out); err != nil {
		t.Fatalf("proxyscript: python carol output %q: %v (stderr %s)", stdout, err, stderr)
	}
	want := map[string]string{
		"create carol.t1": "", "create alice.x": topicAuth, "partitions carol.t1": "",
		"configs carol.t1": "", "delete carol.t1": "",
	}
	for k, v := range want {
		if out[k] != v {
			t.Fatalf("proxyscript: python carol: %s gave %q, want %q (all: %v)", k, out[k], v, out)
		}
	}
	s.expect(Audit{"CreateTopics", "TOPIC", "carol.t1", "LITERAL", "CREATE", p, true, ""})
	s.expect(Audit{"CreateTopics", "TOPIC", "alice.x", "LITERAL", "CREATE", p, false, topicAuth})
	s.expect(Audit{"CreatePartitions", "TOPIC", "carol.t1", "LITERAL", "ALTER", p, true, ""})
	s.expect(Audit{"AlterConfigs", "TOPIC", "carol.t1", "LITERAL", "ALTER_CONFIGS", p, true, ""})
	s.expect(Audit{"DeleteTopics", "TOPIC", "carol.t1", "LITERAL", "DELETE", p, true, ""})

	sent := map[string]bool{}
	for i := range 50 {
		sent[fmt.Sprintf("carol-%03d", i)] = true
	}
	s.sameValues("python producer acks", strs(out["acked"]), sent)
	s.sameValues("python consumer", strs(out["consumed"]), sent)
	s.want.Produced[Flow{p, "carol.t1"}] += 50
	s.want.Fetched[Flow{p, "carol.t1"}] += 50
	s.want.Groups[Flow{p, "carol.t1"}] = "carol.g"
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// mallory tries to log in without an account.
func (s *script) mallory() {
	cl := s.client(MalloryUser, plain.Auth{User: MalloryUser, Pass: "guess"}.AsMechanism())
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Ping(c); err == nil {
		s.t.Fatalf("proxyscript: mallory logged in")
	}
	cl.Close()
	s.want.AuthFailures = append(s.want.AuthFailures, "User:"+MalloryUser)
}
