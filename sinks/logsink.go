package sinks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// LogSink writes verdicts as JSON lines, one per verdict, to a writer. It is
// the sink to use without ClickHouse, and the default auditor of the source
// KIPs: a log. Events are not written unless WithEvents is set. It is
// idempotent in the sense a log can be: each line carries the verdict's seq,
// so readers keep the highest seq per (correlation_id, group).
type LogSink struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closer io.Closer
	events bool
}

// NewLogSink returns a sink writing to w. If w is an io.Closer, Close closes it.
func NewLogSink(w io.Writer, withEvents bool) *LogSink {
	s := &LogSink{w: bufio.NewWriterSize(w, 64<<10), events: withEvents}
	if c, ok := w.(io.Closer); ok {
		s.closer = c
	}
	return s
}

// WriteBatch implements Sink.
func (s *LogSink) WriteBatch(_ context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	enc := json.NewEncoder(s.w)
	for i := range b.Verdicts {
		if err := enc.Encode(&b.Verdicts[i]); err != nil {
			return fmt.Errorf("log sink: encode verdict: %w", err)
		}
	}
	if s.events {
		for i := range b.Events {
			if err := enc.Encode(&b.Events[i].Event); err != nil {
				return fmt.Errorf("log sink: encode event: %w", err)
			}
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("log sink: write: %w", err)
	}
	return nil
}

// Close implements Sink.
func (s *LogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if s.closer != nil {
		if cerr := s.closer.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
