package codecs

import "fmt"

// Status is the verdict on one message for one consumer group.
type Status uint8

const (
	StatusUnknown Status = iota
	// StatusDelivered: produced, acknowledged and consumed by the group.
	StatusDelivered
	// StatusLost: an expected group did not consume the message by its
	// deadline (cause not_consumed), or its consume may have gone unaudited
	// (cause audit_gap).
	StatusLost
	// StatusLate: an expected group consumed it after the deadline.
	StatusLate
	// StatusDuplicate: the group consumed it more than once, or it was
	// written twice.
	StatusDuplicate
	// StatusProduceFailed: the producer was told the write failed.
	StatusProduceFailed
	// StatusUnauditedProducer: consumed, but no produce event arrived.
	StatusUnauditedProducer
	// StatusCorrupted: the group read other bytes than were produced.
	StatusCorrupted
)

var statusNames = [...]string{
	StatusUnknown:           "UNKNOWN",
	StatusDelivered:         "DELIVERED",
	StatusLost:              "LOST",
	StatusLate:              "LATE",
	StatusDuplicate:         "DUPLICATE",
	StatusProduceFailed:     "PRODUCE_FAILED",
	StatusUnauditedProducer: "UNAUDITED_PRODUCER",
	StatusCorrupted:         "CORRUPTED",
}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// ParseStatus is the inverse of Status.String.
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if n == s && i != 0 {
			return Status(i), nil
		}
	}
	return StatusUnknown, fmt.Errorf("codecs: unknown status %q", s)
}

// Verdict is the correlator's judgement on one message (CorrelationID) for
// one consumer group. A later verdict for the same (CorrelationID, Group)
// carries a higher Version and replaces the earlier one.
type Verdict struct {
	Version       uint32 `json:"v"`
	CorrelationID string `json:"correlation_id"`
	Topic         string `json:"topic"`
	Group         string `json:"group"`
	Status        Status `json:"status"`
	Cause         string `json:"cause,omitempty"`
	// Seq orders the verdicts of one (CorrelationID, Group); it is the
	// ReplacingMergeTree version in ClickHouse.
	Seq uint64 `json:"seq"`

	// Produce facts.
	Partition      int32  `json:"partition"`
	Offset         int64  `json:"offset"`
	ProducerClient string `json:"producer_client,omitempty"`
	ProducerHost   string `json:"producer_host,omitempty"`
	SendNs         int64  `json:"send_ns,omitempty"`
	AckNs          int64  `json:"ack_ns,omitempty"`
	ProduceError   string `json:"produce_error,omitempty"`
	PayloadSize    int32  `json:"payload_size"`

	// Consume facts of this group.
	ConsumerClient   string `json:"consumer_client,omitempty"`
	ConsumerHost     string `json:"consumer_host,omitempty"`
	ConsumePartition int32  `json:"consume_partition"`
	ConsumeOffset    int64  `json:"consume_offset"`
	FirstConsumeNs   int64  `json:"first_consume_ns,omitempty"`
	LastConsumeNs    int64  `json:"last_consume_ns,omitempty"`
	ConsumeCount     uint32 `json:"consume_count"`

	// Derived latencies in microseconds; -1 when unknown.
	AckLatencyUs int64 `json:"ack_latency_us"`
	E2ELatencyUs int64 `json:"e2e_latency_us"`

	// FirstSeenNs is the event time of the first event of the trail; it
	// never changes for a trail, so it partitions the verdict rows.
	FirstSeenNs int64 `json:"first_seen_ns"`
	// DecidedNs is the event time at which this verdict was reached.
	DecidedNs int64 `json:"decided_ns"`

	// Expected says the group was expected to consume the message (a
	// declared expectation, or a learned one if Learned); DeadlineNs is
	// the delivery deadline (0 when not expected).
	Expected   bool  `json:"expected,omitempty"`
	Learned    bool  `json:"learned,omitempty"`
	DeadlineNs int64 `json:"deadline_ns,omitempty"`
}

// Key is the Kafka key of a verdict: the correlation ID.
func (v *Verdict) Key() string { return v.CorrelationID }

// MarshalText implements encoding.TextMarshaler (JSON writes the name).
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Validate reports whether v has the fields every verdict needs: a supported
// version, a correlation ID, topic and group, and a known status.
func (v *Verdict) Validate() error {
	switch {
	case v.Version == 0 || v.Version > SchemaVersion:
		return fmt.Errorf("codecs: unsupported verdict version %d", v.Version)
	case v.CorrelationID == "":
		return fmt.Errorf("codecs: verdict without correlation_id")
	case v.Topic == "":
		return fmt.Errorf("codecs: verdict without topic")
	case v.Group == "" && v.Status != StatusProduceFailed:
		// Only a failed produce has no group: no group could read it.
		return fmt.Errorf("codecs: verdict without consumer group")
	case v.Status == StatusUnknown || int(v.Status) >= len(statusNames):
		return fmt.Errorf("codecs: invalid verdict status %d", uint8(v.Status))
	}
	return nil
}
