package audit

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderTruncated marks a dead-letter record whose key, value or headers
// were cut to fit the dead-letter producer's size limit; its value says what
// was cut ("value 1010000 bytes, kept 1024"). The Connect error headers are
// always kept whole.
const HeaderTruncated = "kaudit.errors.truncated"

// connectErrorsPrefix starts the Connect error headers' names.
const connectErrorsPrefix = "__connect.errors."

// StubBytes is how much of an oversized key or value a dead-letter stub
// keeps.
const StubBytes = 1024

// recordOverhead bounds what a record adds to its key, value and headers in
// a Kafka record batch (lengths, attributes, deltas), and batchOverhead the
// batch header; see the record batch format in the Kafka protocol guide.
const (
	recordOverhead = 32
	headerOverhead = 10
	batchOverhead  = 128
)

// RecordSize bounds the bytes r takes in a record batch of its own.
func RecordSize(r *kgo.Record) int {
	n := batchOverhead + recordOverhead + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += headerOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// FitDeadLetter returns dl unchanged if it fits in maxBytes (RecordSize),
// otherwise a stub of it: the first StubBytes of its key and value, its
// Connect error headers (those named __connect.errors.*), and a
// HeaderTruncated header saying what was cut. The second result reports
// whether dl was cut. A stub with minimal set ignores maxBytes and always
// cuts to the stub (for a broker whose limit is below the producer's).
func FitDeadLetter(dl *kgo.Record, maxBytes int, minimal bool) (*kgo.Record, bool) {
	if !minimal && RecordSize(dl) <= maxBytes {
		return dl, false
	}
	stub := &kgo.Record{Topic: dl.Topic, Key: dl.Key, Value: dl.Value}
	var cut []string
	if len(stub.Key) > StubBytes {
		cut = append(cut, fmt.Sprintf("key %d bytes, kept %d", len(stub.Key), StubBytes))
		stub.Key = stub.Key[:StubBytes]
	}
	if len(stub.Value) > StubBytes {
		cut = append(cut, fmt.Sprintf("value %d bytes, kept %d", len(stub.Value), StubBytes))
		stub.Value = stub.Value[:StubBytes]
	}
	dropped := 0
	for _, h := range dl.Headers {
		if strings.HasPrefix(h.Key, connectErrorsPrefix) {
			stub.Headers = append(stub.Headers, h)
		} else {
			dropped++
		}
	}
	if dropped > 0 {
		cut = append(cut, fmt.Sprintf("%d record headers dropped", dropped))
	}
	if len(cut) == 0 {
		cut = append(cut, "nothing to cut")
	}
	stub.Headers = append(stub.Headers, kgo.RecordHeader{Key: HeaderTruncated, Value: []byte(strings.Join(cut, "; "))})
	return stub, true
}
