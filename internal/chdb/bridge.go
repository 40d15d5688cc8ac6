package chdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	chproto "github.com/ClickHouse/ch-go/proto"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// maxBody bounds a request body (a query or an INSERT's rows).
const maxBody = 256 << 20

// Handler serves ClickHouse's HTTP interface on an Engine, as far as
// clickhouse-go (protocol HTTP) uses it: POST of a query in the body, or of
// rows with the INSERT ... FORMAT in the query parameter; the parameters
// database, default_format, client_protocol_version, query_id and
// max_execution_time (which clickhouse-go sends for a context deadline and
// enforces on its side as well; the engine runs without it). Any
// other parameter (a setting, a server-side query parameter) is refused
// with an error, so that nothing is silently ignored.
//
// The engine writes Native blocks as for a client of protocol revision 0;
// a client that asks for a later revision (client_protocol_version, as
// clickhouse-go does) gets the blocks re-encoded for it by clickhouse-go's
// own block codec, with the block info and per-column serialization flags
// that revision expects, as clickhouse-server writes them.
type Handler struct {
	Engine *Engine
	// Log receives one debug line per statement; nil discards.
	Log *slog.Logger
	// Record, if set, is called with every statement run, after the
	// client bound its parameters (the SQL text the engine parsed).
	Record func(sql string)
}

var formatRe = regexp.MustCompile(`(?is)^(.*?)\s+FORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$`)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if r.URL.Path == "/ping" {
		_, _ = io.WriteString(w, "Ok.\n")
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		http.Error(w, "only GET and POST", http.StatusMethodNotAllowed)
		return
	}
	params := r.URL.Query()
	for k := range params {
		switch k {
		case "database", "default_format", "client_protocol_version", "query", "query_id",
			"max_execution_time": // clickhouse-go's context deadline; the client enforces it too
		default:
			fail(w, fmt.Errorf("chdb bridge: unsupported parameter %q", k))
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		fail(w, fmt.Errorf("chdb bridge: read request: %w", err))
		return
	}
	if len(body) > maxBody {
		fail(w, fmt.Errorf("chdb bridge: request body over %d bytes", maxBody))
		return
	}
	db := params.Get("database")
	rev, _ := strconv.ParseUint(params.Get("client_protocol_version"), 10, 64)

	// Rows to insert: the statement is in the query parameter, the data in
	// the body.
	if q := params.Get("query"); q != "" && len(body) > 0 {
		m := formatRe.FindStringSubmatch(q)
		if m == nil || !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(m[1])), "INSERT") {
			fail(w, fmt.Errorf("chdb bridge: data sent with a statement that is not INSERT ... FORMAT: %.200q", q))
			return
		}
		h.record(q)
		log.Debug("chdb insert", "sql", q, "bytes", len(body))
		if err := h.Engine.Insert(db, m[1], m[2], body); err != nil {
			fail(w, err)
		}
		return
	}
	sql := strings.TrimSpace(params.Get("query") + "\n" + string(body))
	format := params.Get("default_format")
	if format == "" {
		format = "TabSeparated"
	}
	h.record(sql)
	log.Debug("chdb query", "sql", sql)
	out, err := h.Engine.Query(db, sql, format)
	if err != nil {
		fail(w, err)
		return
	}
	if strings.EqualFold(format, "Native") && rev > 0 && len(out) > 0 && formatRe.FindStringSubmatch(sql) == nil {
		if out, err = reencode(out, rev); err != nil {
			fail(w, fmt.Errorf("chdb bridge: re-encode result for protocol revision %d: %w", rev, err))
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

func (h *Handler) record(sql string) {
	if h.Record != nil {
		h.Record(sql)
	}
}

// reencode turns Native blocks written for revision 0 into blocks for
// revision rev.
func reencode(native []byte, rev uint64) ([]byte, error) {
	r := chproto.NewReader(bytes.NewReader(native))
	var out chproto.Buffer
	for {
		b := proto.Block{ServerContext: &column.ServerContext{Revision: rev}}
		if err := b.Decode(r, 0); err != nil {
			if errors.Is(err, io.EOF) {
				return out.Buf, nil
			}
			return nil, err
		}
		if err := b.Encode(&out, rev); err != nil {
			return nil, err
		}
	}
}

// fail answers an error the way clickhouse-server does: status 500, the
// exception code in a header and the message in the body.
func fail(w http.ResponseWriter, err error) {
	msg := err.Error()
	code := 1001 // STD_EXCEPTION
	var e *Error
	if errors.As(err, &e) {
		msg = strings.TrimSpace(e.Message)
		if c := e.Code(); c != 0 {
			code = c
		}
	}
	if !strings.HasPrefix(msg, "Code: ") {
		msg = fmt.Sprintf("Code: %d. DB::Exception: %s", code, msg)
	}
	w.Header().Set("X-ClickHouse-Exception-Code", strconv.Itoa(code))
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = io.WriteString(w, msg+"\n")
}
