// Package codecs defines kaudit's audit records, codecs.Event (one produce or
// consume seen by an interceptor) and codecs.Verdict (the correlator's
// judgement per message and consumer group), and their encodings:
//
//   - a compact binary encoding in protobuf wire format (schema in
//     audit.proto), hand-written without reflection for the producer hot path:
//     AppendEvent/UnmarshalEvent and AppendVerdict/UnmarshalVerdict;
//   - JSON via encoding/json (kinds and statuses as names), with
//     UnmarshalEventJSON/UnmarshalVerdictJSON adding validation;
//   - DecodeEvent/DecodeVerdict, which accept either format;
//   - goka codecs: EventCodec, EventJSONCodec, VerdictCodec, VerdictJSONCodec;
//   - Digest, the integrity hash of a record's key and value.
//
// Decoders never panic: malformed input returns an error wrapping
// ErrMalformed, and a well-formed record that fails Validate returns the
// validation error. Unknown binary fields and unknown JSON keys are skipped,
// so older readers accept newer writers.
//
// Usage in an interceptor and in a reader:
//
//	e := codecs.Event{
//		Version:       codecs.SchemaVersion,
//		Kind:          codecs.KindProduce,
//		CorrelationID: id,
//		Topic:         r.Topic,
//		Partition:     r.Partition,
//		Offset:        r.Offset,
//		Digest:        codecs.Digest(r.Key, r.Value),
//	}
//	buf = codecs.AppendEvent(buf[:0], &e) // reuse buf: no allocation
//
//	got, err := codecs.DecodeEvent(value) // binary or JSON
package codecs
