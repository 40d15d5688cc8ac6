package proxy

import (
	"context"
	"time"
)

// Observer is KIP-388's broker-side observer: it is given every completed
// request with its response. The proxy calls Record from one goroutine per
// observer, through a bounded queue: an observer slower than the traffic
// loses pairs (counted in Stats.Dropped), it never slows a client. Record
// must not keep req or resp after it returns.
type Observer interface {
	Record(req *RequestInfo, resp *ResponseInfo)
	// Close flushes what the observer holds; it is called once, after the
	// last Record, and should return by ctx's deadline.
	Close(ctx context.Context) error
}

// RequestInfo is what KIP-388's RequestInfo gives an observer.
type RequestInfo struct {
	Time          time.Time // when the proxy read the request
	APIKey        int16
	APIVersion    int16
	CorrelationID int32
	ClientID      string // from the request header
	ClientAddr    string // the client's ip:port as the proxy saw it
	Principal     string // "User:<name>", see Identity
	// Group is the consumer group the client last named (JoinGroup,
	// SyncGroup, Heartbeat, OffsetCommit, ...), "" if none; Fetch requests
	// carry no group, so a consumer's fetches get the group of the same
	// client (principal, client address, client id).
	Group string
	// Broker is the upstream broker's node id, -1 for the bootstrap
	// listener.
	Broker int32
	// Size is the request's size in bytes (header and body, without the
	// 4-byte length).
	Size int
	// Acks is the Produce request's acks (0 means no response).
	Acks int16
	// Produce is, for Produce, the bytes and records per partition, read
	// from the record-batch headers (no decompression), with each
	// partition's error code from the response.
	Produce []PartitionData
}

// ResponseInfo is what KIP-388's ResponseInfo gives an observer.
type ResponseInfo struct {
	// None is set for acks=0 Produce requests, which have no response;
	// the other fields are then zero.
	None    bool
	Size    int           // the response's size in bytes
	Latency time.Duration // from the request read to the response read
	// ErrorCounts counts the error codes in the response (every
	// ErrorCode field, 0 included, as KIP-388's getErrorCounts).
	ErrorCounts map[int16]int
	// Fetch is, for Fetch, the bytes and records returned per partition.
	Fetch []PartitionData
}

// PartitionData is the traffic of one topic partition in a request or
// response.
type PartitionData struct {
	Topic     string
	Partition int32
	Bytes     int64 // record-batch bytes
	Records   int64 // records, from the batch headers
	ErrorCode int16
}
