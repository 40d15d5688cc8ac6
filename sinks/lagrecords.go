package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
)

// KindLag is the kind of the correlators' lag reports.
const KindLag = "lag"

// DecodeLag decodes a lag-topic record: one correlator's audit.LagReport
// (JSON) for one minute, topic and consumer group. A report that no
// correlator writes is refused with the reason (so the runner
// dead-letters it): not one JSON object, no topic, group or instance, a
// minute that is not the start of a minute a DateTime holds, no oldest
// acknowledgement, a negative age.
func DecodeLag(value []byte) (audit.LagReport, error) {
	var r audit.LagReport
	if len(bytes.TrimSpace(value)) == 0 {
		return r, errors.New("lag record: empty value")
	}
	if err := json.Unmarshal(value, &r); err != nil {
		return audit.LagReport{}, fmt.Errorf("lag record: %w", err)
	}
	switch {
	case r.Topic == "" || r.Group == "" || r.Instance == "":
		return r, errors.New("lag record: no topic, group or instance (not a correlator's lag report)")
	case r.Minute <= 0 || r.Minute > math.MaxUint32 || r.Minute%60 != 0:
		return r, fmt.Errorf("lag record: minute %d is not the start of a minute (Unix seconds)", r.Minute)
	case r.OldestAckNs <= 0:
		return r, fmt.Errorf("lag record: oldest_ack_ns %d is not a time", r.OldestAckNs)
	case r.AgeMs < 0:
		return r, fmt.Errorf("lag record: negative age_ms %d", r.AgeMs)
	}
	return r, nil
}

// LagTopics returns the correlators' lag topic (audit.DefaultLagTopic by
// default in the binaries); an empty name is not read.
func LagTopics(lagTopic string) []Topic[*Batch] {
	if lagTopic == "" {
		return nil
	}
	return []Topic[*Batch]{{Name: lagTopic, Kind: KindLag, Decode: DecodeLagRecord}}
}

// DecodeLagRecord decodes a lag-topic record into b (a Decoder).
func DecodeLagRecord(b *Batch, rec *kgo.Record) error {
	r, err := DecodeLag(rec.Value)
	if err != nil {
		return err
	}
	b.Lag = append(b.Lag, r)
	return nil
}
