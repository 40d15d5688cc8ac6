package clickhouse

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/sinks"
)

// Batch is a batch of rows of the events and deliveries tables, held column
// by column: the runner decodes each record (see Topics) straight into the
// columns the insert sends, and Reset keeps their memory for the next
// batch. Write it with the sink of Sink.Columnar.
type Batch struct {
	Events   *Rows[sinks.EventRecord]
	Verdicts *Rows[codecs.Verdict]
	// Admin and Traffic are kaudit-proxy's admin audit and client traffic.
	Admin   *Rows[sinks.AdminRow]
	Traffic *Rows[traffic.Record]
	// Lag holds the correlators' lag reports.
	Lag *Rows[audit.LagReport]
	// decided is each verdict's DecidedNs, for freshness measurements.
	decided []int64

	// Decoding scratch.
	v codecs.Verdict
	e sinks.EventRecord
}

// NewBatch returns an empty Batch.
func NewBatch() *Batch {
	return &Batch{Events: Events.NewRows(), Verdicts: Deliveries.NewRows(), Admin: AdminAudit.NewRows(), Traffic: ClientTraffic.NewRows(), Lag: ConsumerLag.NewRows()}
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	b.Events.Reset()
	b.Verdicts.Reset()
	b.Admin.Reset()
	b.Traffic.Reset()
	b.Lag.Reset()
	b.decided = b.decided[:0]
}

// Len is the number of rows in b.
func (b *Batch) Len() int {
	return b.Events.Len() + b.Verdicts.Len() + b.Admin.Len() + b.Traffic.Len() + b.Lag.Len()
}

// AddVerdict appends a verdict's row.
func (b *Batch) AddVerdict(v *codecs.Verdict) {
	b.Verdicts.Add(v)
	b.decided = append(b.decided, v.DecidedNs)
}

// AddEvent appends an event's row.
func (b *Batch) AddEvent(e *sinks.EventRecord) { b.Events.Add(e) }

// DecidedNs returns the DecidedNs of b's verdicts (the event time that
// decided each one), in order; the slice is b's.
func (b *Batch) DecidedNs() []int64 { return b.decided }

// Topics returns the topics decoded into a Batch: verdicts, raw events,
// kaudit-proxy's admin audit and traffic, and the correlators' lag
// reports, decoded as sinks.AuditTopics, sinks.ProxyTopics and
// sinks.LagTopics decode them for sinks.Batch; an empty name is not read.
func Topics(verdictsTopic, eventsTopic, adminTopic, trafficTopic, lagTopic string) []sinks.Topic[*Batch] {
	var ts []sinks.Topic[*Batch]
	for _, t := range []sinks.Topic[*Batch]{
		{Name: verdictsTopic, Kind: sinks.KindVerdict, Decode: decodeVerdict},
		{Name: eventsTopic, Kind: sinks.KindEvent, Decode: decodeEvent},
		{Name: adminTopic, Kind: sinks.KindAdmin, Decode: decodeAdmin},
		{Name: trafficTopic, Kind: sinks.KindTraffic, Decode: decodeTraffic},
		{Name: lagTopic, Kind: sinks.KindLag, Decode: decodeLag},
	} {
		if t.Name != "" {
			ts = append(ts, t)
		}
	}
	return ts
}

func decodeVerdict(b *Batch, rec *kgo.Record) error {
	if err := sinks.UnmarshalVerdict(rec.Value, &b.v); err != nil {
		return err
	}
	b.AddVerdict(&b.v)
	return nil
}

func decodeEvent(b *Batch, rec *kgo.Record) error {
	if err := sinks.UnmarshalEvent(rec, &b.e); err != nil {
		return err
	}
	b.AddEvent(&b.e)
	return nil
}

func decodeAdmin(b *Batch, rec *kgo.Record) error {
	rows, err := sinks.DecodeAdmin(rec.Value)
	if err != nil {
		return err
	}
	for i := range rows {
		b.Admin.Add(&rows[i])
	}
	return nil
}

func decodeTraffic(b *Batch, rec *kgo.Record) error {
	t, err := sinks.DecodeTraffic(rec.Value)
	if err != nil {
		return err
	}
	b.Traffic.Add(&t)
	return nil
}

func decodeLag(b *Batch, rec *kgo.Record) error {
	r, err := sinks.DecodeLag(rec.Value)
	if err != nil {
		return err
	}
	b.Lag.Add(&r)
	return nil
}
