package codecs

import "fmt"

// SchemaVersion is the version of the audit event and verdict schema written
// by this build. Decoders accept every version up to and including it.
const SchemaVersion = 1

// Kind says what an audit event reports.
type Kind uint8

const (
	// KindUnknown is the zero value; it is never valid on the wire.
	KindUnknown Kind = iota
	// KindProduce reports one produced message at acknowledgement time: the
	// send time, the ack time, the partition/offset the broker assigned, or
	// the error the client was given.
	KindProduce
	// KindConsume reports one message returned to a consumer by poll.
	KindConsume
	// KindDrops reports audit events an interceptor could not deliver (its
	// queue was full, it was closing, or the audit cluster refused or timed
	// out the write): Dropped events of kind DroppedKind, on Topic (and
	// Group, for consume events), by the client ClientID, whose own event
	// times lie within [WindowStartNs, WindowEndNs]. It is sent when the
	// interceptor has room again, under a fresh correlation ID of its own;
	// several reports for one client, topic, group and window add up.
	KindDrops
)

// AnyTopic is the Topic (and Group) of a drop report that could not keep
// the drops apart by topic and group: an interceptor whose bounded table of
// drop counts was full folded them into one report per client and kind.
// Kafka topic names cannot contain '*', so it never names a real topic.
const AnyTopic = "*"

func (k Kind) String() string {
	switch k {
	case KindProduce:
		return "produce"
	case KindConsume:
		return "consume"
	case KindDrops:
		return "drops"
	default:
		return fmt.Sprintf("unknown(%d)", uint8(k))
	}
}

// ParseKind is the inverse of Kind.String for the valid kinds.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "produce":
		return KindProduce, nil
	case "consume":
		return KindConsume, nil
	case "drops":
		return KindDrops, nil
	}
	return KindUnknown, fmt.Errorf("codecs: unknown event kind %q", s)
}

// Event is one raw audit event, as written by an interceptor to the audit
// topic (keyed by CorrelationID). Times are Unix nanoseconds; zero means
// unknown.
type Event struct {
	Version       uint32 `json:"v"`
	Kind          Kind   `json:"kind"`
	CorrelationID string `json:"correlation_id"`
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
	// ClientID is the client.id of the producing or consuming client.
	ClientID string `json:"client_id,omitempty"`
	// Group is the consumer group of a consume event.
	Group string `json:"group,omitempty"`
	Host  string `json:"host,omitempty"`
	// Source names the client library that wrote the event
	// (franz-go, sarama, librdkafka, interceptor-json).
	Source string `json:"source,omitempty"`

	SendNs     int64 `json:"send_ns,omitempty"`
	AckNs      int64 `json:"ack_ns,omitempty"`
	ConsumeNs  int64 `json:"consume_ns,omitempty"`
	RecordTsNs int64 `json:"record_ts_ns,omitempty"`

	// Error is the error text of a failed produce.
	Error string `json:"error,omitempty"`
	// PayloadSize is len(key)+len(value) of the audited record.
	PayloadSize int32 `json:"payload_size"`
	// Digest is a 64-bit hash of the audited record's key and value
	// (see Digest), for integrity checks.
	Digest uint64 `json:"digest,omitempty"`

	// The fields of a KindDrops report (zero in every other event).
	// Dropped is the number of events not delivered; DroppedKind their kind
	// (KindProduce or KindConsume); WindowStartNs and WindowEndNs the
	// earliest and latest event time (Event.TimeNs) among them.
	Dropped       uint32 `json:"dropped,omitempty"`
	WindowStartNs int64  `json:"window_start_ns,omitempty"`
	WindowEndNs   int64  `json:"window_end_ns,omitempty"`
	DroppedKind   Kind   `json:"dropped_kind,omitempty"`
}

// Validate reports whether e has the fields every event needs.
func (e *Event) Validate() error {
	switch {
	case e.Version == 0 || e.Version > SchemaVersion:
		return fmt.Errorf("codecs: unsupported event version %d", e.Version)
	case e.Kind == KindDrops:
		return e.validateDrops()
	case e.Kind != KindProduce && e.Kind != KindConsume:
		return fmt.Errorf("codecs: invalid event kind %d", e.Kind)
	case e.Dropped != 0 || e.WindowStartNs != 0 || e.WindowEndNs != 0 || e.DroppedKind != KindUnknown:
		return fmt.Errorf("codecs: %s event with drops fields", e.Kind)
	case e.CorrelationID == "":
		return fmt.Errorf("codecs: event without correlation_id")
	case e.Topic == "":
		return fmt.Errorf("codecs: event without topic")
	case e.Kind == KindConsume && e.Group == "":
		return fmt.Errorf("codecs: consume event without consumer group")
	}
	return nil
}

func (e *Event) validateDrops() error {
	switch {
	case e.CorrelationID == "":
		return fmt.Errorf("codecs: drops event without correlation_id")
	case e.Topic == "":
		return fmt.Errorf("codecs: drops event without topic")
	case e.DroppedKind != KindProduce && e.DroppedKind != KindConsume:
		return fmt.Errorf("codecs: drops event with invalid dropped_kind %d", e.DroppedKind)
	case e.Dropped == 0:
		return fmt.Errorf("codecs: drops event with dropped 0")
	case e.WindowStartNs <= 0 || e.WindowEndNs < e.WindowStartNs:
		return fmt.Errorf("codecs: drops event with invalid window [%d, %d]", e.WindowStartNs, e.WindowEndNs)
	}
	return nil
}

// TimeNs is the event time of e: the ack time of a produce event (or its
// send time when the produce failed before an ack), the consume time of a
// consume event, the end of the window of a drops event.
func (e *Event) TimeNs() int64 {
	switch e.Kind {
	case KindConsume:
		return e.ConsumeNs
	case KindDrops:
		return e.WindowEndNs
	}
	if e.AckNs != 0 {
		return e.AckNs
	}
	return e.SendNs
}

// MarshalText implements encoding.TextMarshaler (JSON writes the name).
func (k Kind) MarshalText() ([]byte, error) {
	if k != KindProduce && k != KindConsume && k != KindDrops {
		return nil, fmt.Errorf("codecs: invalid event kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}
