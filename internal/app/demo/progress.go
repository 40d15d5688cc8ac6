package demo

import (
	"fmt"
	"io"
	"time"

	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/internal/app/pipeline"
	"github.com/kaudit/kaudit/internal/app/traffic"
	"github.com/kaudit/kaudit/sinks"
)

// progress prints one line of rates and counts per call.
type progress struct {
	out   io.Writer
	p     *pipeline.Pipeline
	tr    *traffic.Traffic
	em    *emitter.Emitter
	start time.Time

	lastAt     time.Time
	lastEvents uint64
}

func newProgress(out io.Writer, p *pipeline.Pipeline, tr *traffic.Traffic, em *emitter.Emitter, start time.Time) *progress {
	return &progress{out: out, p: p, tr: tr, em: em, start: start, lastAt: start}
}

func (g *progress) print() {
	now := time.Now()
	cs := g.p.Correlator.Stats()
	ss := g.p.Sink.Stats()
	rate := float64(cs.Events-g.lastEvents) / now.Sub(g.lastAt).Seconds()
	g.lastAt, g.lastEvents = now, cs.Events
	fmt.Fprintf(g.out, "[%4.0fs] produced %6d | consumed billing %6d analytics %6d archiver %6d | correlator %6.0f events/s, %6d verdicts | ClickHouse: %6d verdicts %6d events | audit dropped %d\n",
		now.Sub(g.start).Seconds(), g.tr.Produced(), g.tr.Consumed("billing"), g.tr.Consumed("analytics"), g.tr.Consumed("archiver"),
		rate, cs.Verdicts, ss.Written[sinks.KindVerdict], ss.Written[sinks.KindEvent], g.em.Stats().Dropped)
}

// drained reports whether the live groups consumed everything produced and
// every verdict the correlator emitted was written.
func (g *progress) drained() bool {
	n := g.tr.Produced()
	for _, grp := range []string{"billing", "analytics"} {
		if g.tr.Consumed(grp) < n {
			return false
		}
	}
	return g.p.Sink.Stats().Written[sinks.KindVerdict] >= g.p.Correlator.Stats().Verdicts && g.p.Correlator.Stats().Verdicts >= uint64(2*n)
}
