package auditors

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// Log writes audit events and traffic records as JSON lines.
type Log struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	format Format
	log    *slog.Logger
	buf    []byte

	written atomic.Uint64
	failed  atomic.Uint64
}

var (
	_ proxy.Auditor  = (*Log)(nil)
	_ traffic.Writer = (*Log)(nil)
)

// NewLog writes to w in format; Close closes closer if it is not nil.
func NewLog(w io.Writer, closer io.Closer, format Format, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{w: w, closer: closer, format: format, log: log}
}

// Audit implements proxy.Auditor.
func (l *Log) Audit(ev *proxy.AuditEvent) {
	recs, err := Encode(ev, l.format)
	if err != nil {
		l.failed.Add(1)
		l.log.Error("audit log: cannot encode event", "err", err)
		return
	}
	l.write(recs)
}

// WriteTraffic implements traffic.Writer.
func (l *Log) WriteTraffic(recs []traffic.Record) {
	lines := make([][]byte, 0, len(recs))
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			l.failed.Add(1)
			continue
		}
		lines = append(lines, b)
	}
	l.write(lines)
}

// write writes whole lines with one Write, so a crash never leaves half a
// line.
func (l *Log) write(lines [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = l.buf[:0]
	for _, b := range lines {
		l.buf = append(l.buf, b...)
		l.buf = append(l.buf, '\n')
	}
	if _, err := l.w.Write(l.buf); err != nil {
		l.failed.Add(uint64(len(lines)))
		l.log.Error("audit log: write failed", "err", err)
		return
	}
	l.written.Add(uint64(len(lines)))
}

// Written and Failed count lines.
func (l *Log) Written() uint64 { return l.written.Load() }

// Failed counts lines that could not be encoded or written.
func (l *Log) Failed() uint64 { return l.failed.Load() }

// Close implements proxy.Auditor.
func (l *Log) Close(context.Context) error {
	if l.closer != nil {
		return l.closer.Close()
	}
	return nil
}
