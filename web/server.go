// Package web is kaudit's built-in dashboard: an HTTP server (net/http,
// html/template, charts drawn server-side as inline SVG, no JavaScript)
// whose pages read ClickHouse through the report package:
//
//   - / : per topic and consumer group, over a time window (15m to 7d),
//     expected, delivered, lost, audit-gap (LOST of cause audit_gap, not
//     counted as lost), late, duplicate and corrupted messages,
//     completeness and ack/end-to-end latency quantiles; charts of p50/p99
//     end-to-end latency and of lost and late messages per minute; the
//     latest anomalies (verdicts other than DELIVERED) linking to their
//     trails. ?window=1h&topic=T&group=G narrow it down.
//   - /trail?id=<correlation ID>: one message's audit events and verdicts.
//   - /clients: kaudit-proxy's client traffic: per topic, which principals
//     and client ids produce and consume, records and bytes, records per
//     minute, and the client–topic graph. ?window=&topic=&principal=.
//   - /admin: kaudit-proxy's admin audit: who did what, allowed or denied.
//     ?window=&principal=&method=&resource=&denied=1.
//   - /alerts: the SLOs' status per topic and consumer group (objective,
//     measured value, error budget left, burn rates, state) and the alert
//     history with each alert's evidence and sample messages linking to
//     their trails, as `kaudit alerts` stored them.
//
// Templates, styles and everything else the pages need are embedded in the
// binary; the pages load nothing from elsewhere, so the dashboard works
// without internet access. User input only ever reaches ClickHouse as
// bound query parameters; a correlation ID that matches nothing, whatever
// it contains, gives a "not found" page.
//
//	srv, err := web.New(conn, web.Config{Database: "kaudit", Refresher: store.NewRefresher(conn, store.RefresherConfig{Database: "kaudit"})})
//	if err != nil {
//		return err
//	}
//	ln, err := net.Listen("tcp", "127.0.0.1:8080")
//	...
//	err = srv.Serve(ctx, ln) // until ctx ends
package web

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/store"
)

// DefaultAddr is where kaudit serves the dashboard unless told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// DefaultRefreshEvery is Config.RefreshEvery's default.
const DefaultRefreshEvery = 5 * time.Second

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Server. Zero fields take defaults.
type Config struct {
	// Database holds kaudit's tables (default store.DefaultDatabase).
	Database string
	// Refresher, if set, refreshes the rollups before a page reads them,
	// at most once per RefreshEvery; a failed refresh is logged and the
	// page shows the rollups as they are.
	Refresher *store.Refresher
	// RefreshEvery defaults to DefaultRefreshEvery.
	RefreshEvery time.Duration
	// AutoReload makes the overview page reload itself this often
	// (0: never).
	AutoReload time.Duration
	// QueryTimeout bounds the ClickHouse reads of one page (default 30s).
	QueryTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives request errors; nil discards.
	Logger *slog.Logger
}

// Server serves the dashboard; it is an http.Handler.
type Server struct {
	conn  driver.Conn
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

var _ http.Handler = (*Server)(nil)

// New returns a dashboard reading ClickHouse through conn.
func New(conn driver.Conn, cfg Config) (*Server, error) {
	if conn == nil {
		return nil, errors.New("web: no ClickHouse connection")
	}
	cfg.Database = cmp.Or(cfg.Database, store.DefaultDatabase)
	cfg.RefreshEvery = cmp.Or(cfg.RefreshEvery, DefaultRefreshEvery)
	cfg.QueryTimeout = cmp.Or(cfg.QueryTimeout, 30*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{conn: conn, cfg: cfg, log: log, pages: map[string]*template.Template{}}
	for _, page := range []string{"overview", "trail", "message", "clients", "admin", "alerts"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/chart.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("web: parse template %s: %w", page, err)
		}
		s.pages[page] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.overview)
	s.mux.HandleFunc("GET /trail", s.trail)
	s.mux.HandleFunc("GET /clients", s.clients)
	s.mux.HandleFunc("GET /admin", s.admin)
	s.mux.HandleFunc("GET /alerts", s.alerts)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.message(w, http.StatusMethodNotAllowed, "Method not allowed", "This dashboard only answers GET requests.")
			return
		}
		s.message(w, http.StatusNotFound, "Not found", "There is no such page.")
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// Serve serves the dashboard on ln until ctx ends, then shuts down
// gracefully (waiting up to 5 seconds for requests in flight).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("web: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("web: shut down: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// render executes a page into a buffer first, so that a failing template
// never sends half a page.
func (s *Server) render(w http.ResponseWriter, status int, page string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("web: render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// messagePage is the data of the message template.
type messagePage struct {
	Title, Text string
	ID          string // a correlation ID that was not found
}

func (s *Server) message(w http.ResponseWriter, status int, title, text string) {
	s.render(w, status, "message", messagePage{Title: title, Text: text})
}

// unavailable answers a page whose ClickHouse read failed: the details go to
// the log, not to the browser.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("web: read ClickHouse", "path", r.URL.Path, "err", err)
	s.message(w, http.StatusServiceUnavailable, "ClickHouse unavailable",
		"kaudit could not read its results from ClickHouse; see the server log.")
}

// queryContext bounds a page's reads.
func (s *Server) queryContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
}
