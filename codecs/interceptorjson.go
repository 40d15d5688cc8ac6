package codecs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The interceptor-JSON format is what the librdkafka audit interceptors of
// the source blog post ("Interceptors for Librdkafka") write to their audit
// topic: one compact JSON object per produced or consumed message. kaudit
// reads it (kaudit ingest) and writes it (the librdkafka plugin's
// audit.format=interceptor-json). Until release 0.2 the format was called
// blog-json; that name is still accepted everywhere.

// InterceptorJSONSource is the Event.Source of events decoded from
// interceptor-JSON records.
const InterceptorJSONSource = "interceptor-json"

// LegacyInterceptorJSONName is the format's former name, accepted as an
// alias wherever a format is named.
const LegacyInterceptorJSONName = "blog-json"

// InterceptorTimeLayout is the layout (for package time) of the interceptors' timestamp: C
// asctime(3) text without its trailing newline, e.g.
// "Fri Jun  7 13:23:43 2024". It has a resolution of one second and no time
// zone: the interceptors print the writer's local time.
const InterceptorTimeLayout = time.ANSIC

// InterceptorRecord is one audit record as the source blog's librdkafka interceptors
// write it to their audit topic: a compact JSON object (written by jansson,
// keys in this order), keyed by the correlation ID. One record is written per
// acknowledged produce ("produce", Client is the producer's client.id) and
// per consumed message ("consume", Client is the consumer's group.id).
// Timestamp is asctime(3) output, which ends in a newline, so the JSON
// string ends in "\n":
//
//	{"timestamp":"Fri Jun  7 13:23:43 2024\n","correlation_id":"c0613861-f1a9-47f0-9b92-09a2346fe250","action":"produce","topic":"test_topic","client":"ksb-demo-producer","partition":0,"offset":13}
type InterceptorRecord struct {
	Timestamp     string `json:"timestamp"`
	CorrelationID string `json:"correlation_id"`
	Action        string `json:"action"`
	Topic         string `json:"topic"`
	Client        string `json:"client"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
}

// interceptorWire detects missing keys: every key the interceptors write is required.
type interceptorWire struct {
	Timestamp     *string `json:"timestamp"`
	CorrelationID *string `json:"correlation_id"`
	Action        *string `json:"action"`
	Topic         *string `json:"topic"`
	Client        *string `json:"client"`
	Partition     *int32  `json:"partition"`
	Offset        *int64  `json:"offset"`
}

// UnmarshalInterceptorRecord decodes one blog audit record into r, which it resets
// first. All seven keys are required (unknown keys are ignored); the JSON
// must be one object. It checks the shape only: Event checks the values.
// Malformed input returns an error wrapping ErrMalformed.
func UnmarshalInterceptorRecord(b []byte, r *InterceptorRecord) error {
	if r == nil {
		return fmt.Errorf("codecs: UnmarshalInterceptorRecord into nil *InterceptorRecord")
	}
	*r = InterceptorRecord{}
	var w interceptorWire
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("codecs: interceptor-json record: %w: %v", ErrMalformed, err)
	}
	missing := func(key string) error {
		return fmt.Errorf("codecs: interceptor-json record: %w: missing %q", ErrMalformed, key)
	}
	switch {
	case w.Timestamp == nil:
		return missing("timestamp")
	case w.CorrelationID == nil:
		return missing("correlation_id")
	case w.Action == nil:
		return missing("action")
	case w.Topic == nil:
		return missing("topic")
	case w.Client == nil:
		return missing("client")
	case w.Partition == nil:
		return missing("partition")
	case w.Offset == nil:
		return missing("offset")
	}
	*r = InterceptorRecord{
		Timestamp:     *w.Timestamp,
		CorrelationID: *w.CorrelationID,
		Action:        *w.Action,
		Topic:         *w.Topic,
		Client:        *w.Client,
		Partition:     *w.Partition,
		Offset:        *w.Offset,
	}
	return nil
}

// Event converts r to a kaudit event, reading the timestamp as a time in loc
// (nil means UTC). A "produce" record becomes a KindProduce event whose send
// and ack times are both the timestamp (the blog records the ack time only),
// with ClientID = Client; a "consume" record becomes a KindConsume event
// with Group = Client (the interceptors write the group.id, not the client.id) and
// consume time = the timestamp. Source is InterceptorJSONSource; host, digest and size
// are unknown (zero). Every time has a resolution of one second, so
// latencies computed from these events are whole seconds (an ack latency of
// zero, an end-to-end latency truncated to the second on both ends).
func (r *InterceptorRecord) Event(loc *time.Location) (*Event, error) {
	ns, err := ParseInterceptorTime(r.Timestamp, loc)
	if err != nil {
		return nil, err
	}
	e := &Event{
		Version:       SchemaVersion,
		CorrelationID: r.CorrelationID,
		Topic:         r.Topic,
		Partition:     r.Partition,
		Offset:        r.Offset,
		Source:        InterceptorJSONSource,
	}
	switch r.Action {
	case "produce":
		e.Kind = KindProduce
		e.ClientID = r.Client
		e.SendNs, e.AckNs = ns, ns
	case "consume":
		e.Kind = KindConsume
		e.Group = r.Client
		e.ConsumeNs = ns
	default:
		return nil, fmt.Errorf("codecs: interceptor-json record: %w: action %q is neither produce nor consume", ErrMalformed, r.Action)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("codecs: interceptor-json record: %w", err)
	}
	return e, nil
}

// ParseInterceptorRecord decodes one of the blog's audit records (the value of a
// record on its audit topic) into a kaudit event, reading the timestamp as
// UTC; see ParseInterceptorRecordIn for writers in another time zone and
// InterceptorRecord.Event for the mapping. It never panics: malformed input returns
// an error wrapping ErrMalformed, a record that makes an invalid event (a
// consume without a group, an empty correlation ID or topic) the Validate
// error.
func ParseInterceptorRecord(b []byte) (*Event, error) { return ParseInterceptorRecordIn(b, time.UTC) }

// ParseInterceptorRecordIn is ParseInterceptorRecord reading the timestamp as a local time
// in loc (nil means UTC): the interceptors print the writer's local
// time (localtime(3)) without a zone, so a reader must be told the writers'
// zone. In a zone with daylight saving time, the repeated hour at the end of
// summer time is ambiguous; package time picks the first occurrence.
func ParseInterceptorRecordIn(b []byte, loc *time.Location) (*Event, error) {
	var r InterceptorRecord
	if err := UnmarshalInterceptorRecord(b, &r); err != nil {
		return nil, err
	}
	return r.Event(loc)
}

// Range of the blog timestamps accepted: after the Unix epoch (zero means
// "unknown" in an Event) and within int64 nanoseconds.
var (
	interceptorMinTime = time.Unix(1, 0)
	interceptorMaxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ParseInterceptorTime parses a blog timestamp (asctime text, with or without its
// trailing newline) as a local time in loc (nil means UTC) and returns it in
// Unix nanoseconds (whole seconds). The weekday must match the date; years
// must be four digits, after 1970 and before 2262.
func ParseInterceptorTime(s string, loc *time.Location) (int64, error) {
	if loc == nil {
		loc = time.UTC
	}
	text := strings.TrimSuffix(s, "\n")
	t, err := time.ParseInLocation(InterceptorTimeLayout, text, loc)
	if err != nil {
		return 0, fmt.Errorf("codecs: interceptor-json record: %w: timestamp %q is not asctime text: %v", ErrMalformed, s, err)
	}
	if !strings.HasPrefix(text, t.Weekday().String()[:3]) {
		return 0, fmt.Errorf("codecs: interceptor-json record: %w: timestamp %q: %s is a %s", ErrMalformed, s, t.Format("2006-01-02"), t.Weekday())
	}
	if t.Before(interceptorMinTime) || !t.Before(interceptorMaxTime) {
		return 0, fmt.Errorf("codecs: interceptor-json record: %w: timestamp %q out of range", ErrMalformed, s)
	}
	return t.UnixNano(), nil
}

// AppendInterceptorRecord appends e to b as exactly the JSON the blog's
// interceptors write (see InterceptorRecord), with the event time (e.TimeNs: ack
// time of a produce, consume time of a consume) printed in UTC; see
// AppendInterceptorRecordIn. It never fails: e is not validated.
func AppendInterceptorRecord(b []byte, e *Event) []byte {
	return AppendInterceptorRecordIn(b, e, time.UTC)
}

// AppendInterceptorRecordIn is AppendInterceptorRecord printing the time as a local time in
// loc (nil means UTC; time.Local is what the blog's C code does). The output
// is byte for byte what jansson's json_dumps(JSON_COMPACT) writes for the
// blog's object: keys timestamp, correlation_id, action, topic, client,
// partition, offset in that order, no spaces, the timestamp ending in an
// escaped newline; strings escaped as jansson escapes them (\" \\ \b \f \n
// \r \t, other control characters as \uXXXX, everything else raw UTF-8).
// Invalid UTF-8, which jansson refuses, is written as U+FFFD. "client" is
// e.ClientID for a produce and e.Group for a consume. Sub-second parts of the
// time are dropped. Appending to a buffer with room allocates nothing.
func AppendInterceptorRecordIn(b []byte, e *Event, loc *time.Location) []byte {
	if loc == nil {
		loc = time.UTC
	}
	client := e.ClientID
	if e.Kind == KindConsume {
		client = e.Group
	}
	b = append(b, `{"timestamp":"`...)
	b = appendAsctime(b, time.Unix(0, e.TimeNs()).In(loc))
	b = append(b, `\n","correlation_id":`...)
	b = appendJanssonString(b, e.CorrelationID)
	b = append(b, `,"action":`...)
	switch e.Kind {
	case KindProduce, KindConsume:
		b = append(b, '"')
		b = append(b, e.Kind.String()...)
		b = append(b, '"')
	default:
		b = appendJanssonString(b, e.Kind.String())
	}
	b = append(b, `,"topic":`...)
	b = appendJanssonString(b, e.Topic)
	b = append(b, `,"client":`...)
	b = appendJanssonString(b, client)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	return append(b, '}')
}

// appendAsctime appends t as asctime(3) prints it, without the newline:
// "%.3s %.3s%3d %.2d:%.2d:%.2d %d".
func appendAsctime(b []byte, t time.Time) []byte {
	b = append(b, t.Weekday().String()[:3]...)
	b = append(b, ' ')
	b = append(b, t.Month().String()[:3]...)
	if d := t.Day(); d < 10 {
		b = append(b, ' ', ' ', byte('0'+d))
	} else {
		b = append(b, ' ', byte('0'+d/10), byte('0'+d%10))
	}
	b = append(b, ' ')
	b = append2(b, t.Hour())
	b = append(b, ':')
	b = append2(b, t.Minute())
	b = append(b, ':')
	b = append2(b, t.Second())
	b = append(b, ' ')
	return strconv.AppendInt(b, int64(t.Year()), 10)
}

func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

// appendJanssonString appends s as a JSON string escaped the way jansson's
// default flags escape it.
func appendJanssonString(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}
