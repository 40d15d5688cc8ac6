package emitter

// Stats are the Emitter's counters since New.
//
// Every Emit call is either Enqueued or Dropped; every enqueued event ends
// up Sent or Failed, and until then is counted in Queued. Every Dropped or
// Failed event is covered by an acknowledged drop report (DropsReported)
// or not (DropsUnreported: not yet, or never, if it was dropped by a
// closed Emitter or Close ran out of time).
type Stats struct {
	// Enqueued events were accepted by Emit.
	Enqueued uint64
	// Dropped events were refused by Emit: queue full (by count or bytes,
	// after EnqueueTimeout, if set) or Emitter closed; and those counted
	// with AddDrops.
	Dropped uint64
	// Sent events were acknowledged by the audit cluster.
	Sent uint64
	// Failed events were accepted but could not be produced (the client
	// gave up, or Close ran out of time).
	Failed uint64
	// Queued events were accepted and are neither sent nor failed yet:
	// waiting in the queue or in flight in the client.
	Queued int
	// DropReports counts the drop reports (codecs.KindDrops events)
	// acknowledged by the audit cluster; DropsReported the dropped and
	// failed events they cover.
	DropReports   uint64
	DropsReported uint64
	// DropsUnreported counts the dropped and failed events no acknowledged
	// drop report covers (Dropped + Failed - DropsReported).
	DropsUnreported uint64
}

// Stats returns a snapshot of the counters. The fields are read one by
// one, so a snapshot taken while events flow may be off by the few events
// that moved in between.
func (e *Emitter) Stats() Stats {
	s := Stats{
		DropReports:   e.reports.Load(),
		DropsReported: e.reported.Load(),
		Dropped:       e.dropped.Load(),
		Sent:          e.sent.Load(),
		Failed:        e.failed.Load(),
		Queued:        int(max(e.pending.Load(), 0)),
	}
	s.Enqueued = s.Sent + s.Failed + uint64(s.Queued)
	s.DropsUnreported = s.Dropped + s.Failed - min(s.DropsReported, s.Dropped+s.Failed)
	return s
}
