// Package proxy is kaudit's broker-side audit without patching brokers: a
// Kafka protocol proxy that hosts the broker-side interfaces of KIP-388
// (Observer: every request/response pair, with per-topic bytes and records)
// and KIP-567 (Auditor: every completed cluster change, and every request
// authorization denied, with its resources and outcome).
//
//	p, err := proxy.New(proxy.Config{
//		Upstream:  []string{"kafka-1:9092", "kafka-2:9092"},
//		Listen:    "0.0.0.0:19092", // brokers on 19093+node id
//		AdvertisedHost: "kaudit-proxy.internal",
//		Observers: []proxy.Observer{traffic.New(traffic.Config{Writers: ...})},
//		Auditors:  []proxy.Auditor{auditors.NewLog(os.Stdout, nil, auditors.FormatKaudit, nil)},
//	})
//	err = p.Run(ctx)
//
// # Forwarding
//
// Clients bootstrap on Listen; the proxy proxies upstream broker N on
// BrokerPortBase+N and rewrites every response that names brokers
// (Metadata, FindCoordinator, DescribeCluster, and the KIP-951 leader
// endpoints of Produce, Fetch, ShareFetch and ShareAcknowledge) so clients
// keep talking through it. Each client connection has one broker
// connection; frames are forwarded as they are, except those rewrites and
// ApiVersions, which is limited to the versions kmsg can decode (and gains
// SaslHandshake v0, see below). Requests pipelined on a connection stay in
// order (Kafka answers in order; a FIFO pairs answers with requests);
// acks=0 Produce requests get no answer and wait for none. The proxy
// decodes only what it needs: SASL, group and audited requests, Produce
// headers, and the responses it rewrites, observes or audits.
//
// # Identity
//
// A connection's principal is the SASL user read from the passing exchange
// (PLAIN's authentication id, SCRAM's n= user, OAUTHBEARER's sub claim),
// once the broker accepted it; else the subject of a client certificate the
// proxy verified (when it terminates TLS with client authentication); else
// User:ANONYMOUS. The proxy never needs or keeps passwords: SASL passes
// through. Clients that send SaslHandshake v0 (unframed tokens) are bridged
// to SaslAuthenticate, so they work in front of brokers that dropped v0.
// The client address is the TCP peer; the client id comes from each
// request header.
//
// Fetch requests name no consumer group. The proxy infers a connection's
// group from the group requests of the same client — same principal,
// client IP and client id — (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
// OffsetCommit, OffsetFetch, TxnOffsetCommit, ConsumerGroupHeartbeat, share
// group requests), the last one seen within an hour. Two consumers of
// different groups in one process with the same client id are
// indistinguishable; give them different client ids.
//
// # Bad input
//
// A malformed frame, one over MaxFrameBytes, an unknown API key or a
// version above kmsg's, a malformed request the proxy must decode, a
// response that does not match its request: the proxy closes that
// connection (both sides), logs the reason and counts it
// (Stats.ProtocolErrors); every other connection goes on. A client that
// disconnects, even inside a frame, has the answers to what it had already
// sent read (up to DrainTimeout) so they are audited.
//
// # Observers and auditors never block
//
// Each observer and auditor gets its own bounded queue and goroutine; when
// a queue is full the proxy drops the item and counts it (Stats.Dropped,
// kaudit_proxy_dropped_total). A client is never slowed down by auditing.
//
// # Crash safety (kill -9)
//
// The proxy keeps no state of its own on disk. Killed at any instant:
//   - every client connection breaks; clients reconnect (to the restarted
//     proxy, or directly) and retry as they do after any broker disconnect:
//     requests already forwarded may or may not have taken effect, exactly
//     as when a broker connection drops (idempotent producers deduplicate
//     their retries). A request the proxy was writing when killed reaches
//     the broker truncated, and the broker discards it with the connection.
//     Nothing half-forwarded is ever applied.
//   - audit events and traffic sums not yet handed on are lost: what sits
//     in the queues, the Kafka auditor's unacknowledged records, the current
//     traffic window. The log auditor's file never holds a partial line.
//   - with a fixed BrokerPortBase the restarted proxy offers the same
//     addresses, so clients' cached metadata stays valid; it relearns the
//     brokers from Config.Brokers, Discover, or the next client bootstrap.
//
// cmd/kaudit-proxy's TestKill9 kills the binary mid-traffic and checks that
// clients carry on through a restarted proxy with nothing lost or corrupt.
//
// # Limits
//
// Brokers see the proxy's address, not the client's, so host-based ACLs
// must allow the proxy's address. When the proxy terminates TLS, the broker
// sees the proxy's own certificate, so brokers authorizing by certificate
// need SASL through the proxy instead. DescribeCluster answers about
// controllers (KIP-919) and DescribeQuorum are not rewritten: controllers
// are not proxied. Message sets of magic 0 and 1 count a compressed wrapper
// as one record.
package proxy
