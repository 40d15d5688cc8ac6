package audit

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers, named as Kafka Connect names them, so tools built
// for Connect's dead-letter queues read kaudit's.
const (
	HeaderErrTopic     = "__connect.errors.topic"
	HeaderErrPartition = "__connect.errors.partition"
	HeaderErrOffset    = "__connect.errors.offset"
	HeaderErrMessage   = "__connect.errors.exception.message"
	HeaderErrStage     = "__connect.errors.stage"
)

// MaxReasonLen bounds the reason text written to a dead-letter header: a
// reason quoting a hostile key must not make the dead-letter record too
// large to produce.
const MaxReasonLen = 1024

// DeadLetterHeaders returns the Connect error headers for a record read at
// topic/partition/offset that stage (correlator, sink, ...) could not
// process for reason. The reason is cut to MaxReasonLen bytes.
func DeadLetterHeaders(topic string, partition int32, offset int64, stage string, reason error) []kgo.RecordHeader {
	msg := "unknown"
	if reason != nil {
		msg = reason.Error()
	}
	if len(msg) > MaxReasonLen {
		msg = msg[:MaxReasonLen] + "…"
	}
	return []kgo.RecordHeader{
		{Key: HeaderErrTopic, Value: []byte(topic)},
		{Key: HeaderErrPartition, Value: []byte(strconv.Itoa(int(partition)))},
		{Key: HeaderErrOffset, Value: []byte(strconv.FormatInt(offset, 10))},
		{Key: HeaderErrMessage, Value: []byte(msg)},
		{Key: HeaderErrStage, Value: []byte(stage)},
	}
}

// DeadLetter returns the dead-letter record for rec: the same key, value
// and headers, plus the Connect error headers.
func DeadLetter(rec *kgo.Record, dlqTopic, stage string, reason error) *kgo.Record {
	headers := append(append([]kgo.RecordHeader(nil), rec.Headers...),
		DeadLetterHeaders(rec.Topic, rec.Partition, rec.Offset, stage, reason)...)
	return &kgo.Record{Topic: dlqTopic, Key: rec.Key, Value: rec.Value, Headers: headers}
}
