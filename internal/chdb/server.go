package chdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Options configure Start. Zero fields take defaults.
type Options struct {
	// Lib is libchdb.so's path (default: Ensure's).
	Lib string
	// Dir holds the engine's tables (default: a new temporary directory,
	// removed by Stop). A process can use one directory only.
	Dir string
	// Logger; nil discards.
	Logger *slog.Logger
	// Record, if set, sees every statement the server runs (Handler.Record).
	Record func(sql string)
}

// Server is the engine behind an HTTP listener on 127.0.0.1 that speaks
// ClickHouse's HTTP interface (see Handler).
type Server struct {
	eng     *Engine
	ln      net.Listener
	hs      *http.Server
	dir     string
	tempDir bool
	done    chan error
}

// Start loads the engine (fetching it if needed) and serves it on a free
// port of 127.0.0.1.
func Start(ctx context.Context, opt Options) (*Server, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lib := opt.Lib
	if lib == "" {
		var err error
		if lib, err = Ensure(ctx, log); err != nil {
			return nil, err
		}
	}
	s := &Server{dir: opt.Dir, done: make(chan error, 1)}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "kaudit-chdb-")
		if err != nil {
			return nil, fmt.Errorf("chdb: %w", err)
		}
		s.dir, s.tempDir = d, true
	}
	eng, err := Open(lib, s.dir)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.eng = eng
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		s.cleanup()
		return nil, fmt.Errorf("chdb: listen: %w", err)
	}
	s.ln = ln
	s.hs = &http.Server{Handler: &Handler{Engine: eng, Log: log, Record: opt.Record}, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.done <- s.hs.Serve(ln) }()
	log.Debug("chdb serving", "addr", s.Addr(), "version", eng.Version(), "dir", s.dir)
	return s, nil
}

// Addr is the HTTP interface's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Engine is the server's engine connection.
func (s *Server) Engine() *Engine { return s.eng }

// Stop stops serving, closes the engine's connection and removes a
// temporary data directory.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.hs.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.eng.Close()
	s.cleanup()
	if err != nil {
		return fmt.Errorf("chdb: stop: %w", err)
	}
	return nil
}

func (s *Server) cleanup() {
	if s.tempDir {
		_ = os.RemoveAll(s.dir)
	}
}
