package chdb

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// lib is libchdb.so's C API, loaded once per process: the library boots one
// engine per process, on one data directory.
type lib struct {
	path string

	setSignalHandlers func(enabled int32)
	connect           func(argc int32, argv unsafe.Pointer) unsafe.Pointer
	closeConn         func(conn unsafe.Pointer)
	queryN            func(conn unsafe.Pointer, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr) unsafe.Pointer
	resultBuffer      func(res unsafe.Pointer) unsafe.Pointer
	resultLength      func(res unsafe.Pointer) uintptr
	resultError       func(res unsafe.Pointer) string
	destroyResult     func(res unsafe.Pointer)
	streamInsertN     func(conn unsafe.Pointer, query unsafe.Pointer, queryLen uintptr, format unsafe.Pointer, formatLen uintptr) unsafe.Pointer
	streamAppend      func(stream unsafe.Pointer, data unsafe.Pointer, n uintptr) int32
	streamDone        func(stream unsafe.Pointer) unsafe.Pointer
	streamInsertError func(stream unsafe.Pointer) string
	destroyStream     func(stream unsafe.Pointer)
	version           func() string
}

var loaded struct {
	mu  sync.Mutex
	lib *lib
	err error
}

// load dlopens the library at path (once per process; a second path is an
// error).
func load(path string) (*lib, error) {
	loaded.mu.Lock()
	defer loaded.mu.Unlock()
	if loaded.lib != nil || loaded.err != nil {
		if loaded.err == nil && loaded.lib.path != path {
			return nil, fmt.Errorf("chdb: %s already loaded, cannot load %s too", loaded.lib.path, path)
		}
		return loaded.lib, loaded.err
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		loaded.err = fmt.Errorf("chdb: load %s: %w", path, err)
		return nil, loaded.err
	}
	l := &lib{path: path}
	for name, fn := range map[string]any{
		"chdb_set_signal_handlers_enabled": &l.setSignalHandlers,
		"chdb_connect":                     &l.connect,
		"chdb_close_conn":                  &l.closeConn,
		"chdb_query_n":                     &l.queryN,
		"chdb_result_buffer":               &l.resultBuffer,
		"chdb_result_length":               &l.resultLength,
		"chdb_result_error":                &l.resultError,
		"chdb_destroy_query_result":        &l.destroyResult,
		"chdb_stream_insert_n":             &l.streamInsertN,
		"chdb_stream_append":               &l.streamAppend,
		"chdb_stream_done":                 &l.streamDone,
		"chdb_stream_insert_error":         &l.streamInsertError,
		"chdb_destroy_insert_stream":       &l.destroyStream,
		"chdb_version":                     &l.version,
	} {
		sym, err := purego.Dlsym(h, name)
		if err != nil {
			loaded.err = fmt.Errorf("chdb: %s has no %s (not a chDB 26.x library?): %w", path, name, err)
			return nil, loaded.err
		}
		purego.RegisterFunc(fn, sym)
	}
	// The Go runtime owns the process's signals (preemption, panics on
	// faults); the engine must not replace its handlers.
	l.setSignalHandlers(0)
	loaded.lib = l
	return l, nil
}

// Engine is one connection to the in-process engine. Its methods are safe
// for concurrent use; statements run one at a time.
type Engine struct {
	lib  *lib
	mu   sync.Mutex
	conn unsafe.Pointer // chdb_connection* from chdb_connect
	db   string         // the session's current database
}

// Open loads the library at libPath (once per process) and connects to an
// engine whose tables live in dataDir. All Engines of a process must use
// the same dataDir.
func Open(libPath, dataDir string) (*Engine, error) {
	l, err := load(libPath)
	if err != nil {
		return nil, err
	}
	args := []string{"kaudit", "--path=" + dataDir}
	cargs := make([][]byte, len(args))
	argv := make([]unsafe.Pointer, len(args)+1)
	for i, a := range args {
		cargs[i] = append([]byte(a), 0)
		argv[i] = unsafe.Pointer(&cargs[i][0])
	}
	conn := l.connect(int32(len(args)), unsafe.Pointer(&argv[0]))
	runtime.KeepAlive(cargs)
	runtime.KeepAlive(argv)
	if conn == nil {
		return nil, fmt.Errorf("chdb: connect to %s failed", dataDir)
	}
	return &Engine{lib: l, conn: conn, db: "default"}, nil
}

// Version is the library's version, e.g. "26.7.0".
func (e *Engine) Version() string { return e.lib.version() }

// handle is the chdb_connection the pointer from chdb_connect points at.
func (e *Engine) handle() unsafe.Pointer { return *(*unsafe.Pointer)(e.conn) }

// Close closes the connection.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		e.lib.closeConn(e.conn)
		e.conn = nil
	}
}

// ErrClosed is returned by an Engine after Close.
var ErrClosed = errors.New("chdb: engine closed")

// Query runs one statement in database db ("" keeps the current one) and
// returns its output in format (e.g. "Native", "TSV").
func (e *Engine) Query(db, query, format string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return nil, ErrClosed
	}
	if err := e.use(db); err != nil {
		return nil, err
	}
	return e.query(query, format)
}

func (e *Engine) use(db string) error {
	if db == "" || db == e.db {
		return nil
	}
	if _, err := e.query("USE "+quoteIdent(db), "TSV"); err != nil {
		return err
	}
	e.db = db
	return nil
}

func (e *Engine) query(query, format string) ([]byte, error) {
	q, f := cbytes(query), cbytes(format)
	res := e.lib.queryN(e.handle(), unsafe.Pointer(&q[0]), uintptr(len(query)), unsafe.Pointer(&f[0]), uintptr(len(format)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if res == nil {
		return nil, errors.New("chdb: query returned no result")
	}
	defer e.lib.destroyResult(res)
	if msg := e.lib.resultError(res); msg != "" {
		return nil, &Error{Message: msg}
	}
	n := e.lib.resultLength(res)
	if n == 0 {
		return nil, nil
	}
	buf := e.lib.resultBuffer(res)
	return append([]byte(nil), unsafe.Slice((*byte)(buf), n)...), nil
}

// Insert runs insert (an INSERT statement without FORMAT or data) in
// database db with data in format as its input.
func (e *Engine) Insert(db, insert, format string, data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return ErrClosed
	}
	if err := e.use(db); err != nil {
		return err
	}
	q, f := cbytes(insert), cbytes(format)
	st := e.lib.streamInsertN(e.handle(), unsafe.Pointer(&q[0]), uintptr(len(insert)), unsafe.Pointer(&f[0]), uintptr(len(format)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if st == nil {
		return errors.New("chdb: insert returned no stream")
	}
	defer e.lib.destroyStream(st)
	if msg := e.lib.streamInsertError(st); msg != "" {
		return &Error{Message: msg}
	}
	if len(data) > 0 {
		rc := e.lib.streamAppend(st, unsafe.Pointer(&data[0]), uintptr(len(data)))
		runtime.KeepAlive(data)
		if rc != 0 {
			if msg := e.lib.streamInsertError(st); msg != "" {
				return &Error{Message: msg}
			}
			return errors.New("chdb: insert: append failed")
		}
	}
	res := e.lib.streamDone(st)
	if res == nil {
		if msg := e.lib.streamInsertError(st); msg != "" {
			return &Error{Message: msg}
		}
		return errors.New("chdb: insert: no result")
	}
	defer e.lib.destroyResult(res)
	if msg := e.lib.resultError(res); msg != "" {
		return &Error{Message: msg}
	}
	return nil
}

// cbytes is s with a terminating NUL (never empty, so &b[0] is valid).
func cbytes(s string) []byte { return append([]byte(s), 0) }
