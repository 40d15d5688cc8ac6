package chserver

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Defaults of Options.
const (
	DefaultStartTimeout = 60 * time.Second
	DefaultStopTimeout  = 30 * time.Second
)

// Options configures Start.
type Options struct {
	// Dir holds config.xml, users.xml, data/ and log/. Empty means a new
	// temporary directory, removed by Stop. A given Dir is kept, so its data
	// survives restarts.
	Dir string
	// Logger receives start/stop/install messages; nil discards them.
	Logger *slog.Logger
	// Install lets Start install Debian's clickhouse-server package when no
	// binary is found (see Ensure; root only).
	Install bool
	// Binary is the server binary: clickhouse-server, or the multi-call
	// clickhouse binary (run as "clickhouse server"). Empty means Find.
	Binary string
	// StartTimeout bounds the wait for the server to answer a ping.
	StartTimeout time.Duration
	// StopTimeout bounds the graceful shutdown before Stop kills the server.
	StopTimeout time.Duration
	// TCPPort and HTTPPort fix the ports on 127.0.0.1 (to restart a server
	// where its clients expect it); zero picks free ports.
	TCPPort, HTTPPort int
	// Node, if set, makes the server a node of ClickHouse clusters: it
	// uses a ZooKeeper (replicated tables, the distributed DDL queue), has
	// macros, remote_servers and an interserver port for replicas to fetch
	// parts. Nil: a single server, configured as before.
	Node *Node
	// Users are users besides "default" (which has no password), each
	// with a password, reaching the server from localhost with the
	// default profile. ClickHouse 18.16 has no CREATE USER: users are
	// configured in users.xml, rewritten at every start.
	Users []User
}

// User is a ClickHouse user of users.xml.
type User struct {
	Name, Password string
}

// Node is a cluster node's configuration.
type Node struct {
	// ZooKeeper is host:port.
	ZooKeeper string
	// Macros are the node's macros, e.g. shard and replica.
	Macros map[string]string
	// Clusters are the node's remote_servers.
	Clusters []Cluster
	// InterserverPort fixes the interserver HTTP port (on 127.0.0.1);
	// zero picks a free one.
	InterserverPort int
}

// Cluster is one entry of remote_servers: shards of replicas (native
// protocol host:port), internally replicated.
type Cluster struct {
	Name   string
	Shards [][]string
}

var xmlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// config returns the node's part of config.xml.
func (n *Node) config(interserverPort int) (*nodeConfig, error) {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	hp := func(addr string) (hostPort, error) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return hostPort{}, fmt.Errorf("chserver: address %q: %w", addr, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return hostPort{}, fmt.Errorf("chserver: port of %q: %w", addr, err)
		}
		return hostPort{Host: esc(h), Port: port}, nil
	}
	zk, err := hp(n.ZooKeeper)
	if err != nil {
		return nil, err
	}
	c := &nodeConfig{InterserverPort: interserverPort, ZooKeeperHost: zk.Host, ZooKeeperPort: zk.Port}
	for _, k := range slices.Sorted(maps.Keys(n.Macros)) {
		if !xmlName.MatchString(k) {
			return nil, fmt.Errorf("chserver: macro name %q is not an XML name", k)
		}
		c.Macros = append(c.Macros, kv{k, esc(n.Macros[k])})
	}
	for _, cl := range n.Clusters {
		if !xmlName.MatchString(cl.Name) {
			return nil, fmt.Errorf("chserver: cluster name %q is not an XML name", cl.Name)
		}
		cc := clusterConfig{Name: cl.Name}
		for _, shard := range cl.Shards {
			var rs []hostPort
			for _, r := range shard {
				a, err := hp(r)
				if err != nil {
					return nil, err
				}
				rs = append(rs, a)
			}
			cc.Shards = append(cc.Shards, rs)
		}
		c.Clusters = append(c.Clusters, cc)
	}
	return c, nil
}

// Server is a running ClickHouse server process (or, from External, a
// server someone else runs).
type Server struct {
	addr     string
	httpAddr string
	version  string
	dir      string

	removeDir   bool
	stopTimeout time.Duration
	log         *slog.Logger

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// ErrAddrInUse marks a start that failed because a chosen port was taken
// between choosing and binding it; Start retries with new ports (a caller
// that fixed the ports, as a cluster does, retries itself).
var ErrAddrInUse = errors.New("address already in use")

// Start runs a ClickHouse server as a child process listening on free
// ports of 127.0.0.1 (native protocol and HTTP; nothing else), with its
// own configuration written into opts.Dir, and returns once the server
// answers a native-protocol ping. ctx bounds the start only; the server
// runs until Stop. If the server does not come up, the error carries the
// tail of its logs.
//
// The child is put in its own process group (a terminal's Ctrl-C does
// not reach it, so Stop decides the shutdown) and, on Linux, receives
// SIGTERM if the starting process dies.
func Start(ctx context.Context, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	began := time.Now()

	bin := opts.Binary
	if bin == "" {
		var err error
		if opts.Install {
			bin, err = Ensure(ctx, log)
		} else {
			bin, err = Find()
			if err != nil {
				err = fmt.Errorf("%w; install Debian's clickhouse-server package or set Options.Install", err)
			}
		}
		if err != nil {
			return nil, err
		}
	}

	dir, removeDir := opts.Dir, false
	if dir == "" {
		d, err := os.MkdirTemp("", "kaudit-clickhouse-")
		if err != nil {
			return nil, fmt.Errorf("chserver: create temporary directory: %w", err)
		}
		dir, removeDir = d, true
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("chserver: directory %q: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chserver: create %s: %w", dir, err)
	}

	root := "yandex"
	if majorVersion(ctx, bin) >= 21 {
		root = "clickhouse"
	}

	const attempts = 3
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			cleanupDir(dir, removeDir)
			return nil, err
		}
		fixed := opts.TCPPort != 0 || opts.HTTPPort != 0
		if opts.TCPPort != 0 {
			ports[0] = opts.TCPPort
		}
		if opts.HTTPPort != 0 {
			ports[1] = opts.HTTPPort
		}
		var node *nodeConfig
		if opts.Node != nil {
			fixed = fixed || opts.Node.InterserverPort != 0
			if opts.Node.InterserverPort != 0 {
				ports[2] = opts.Node.InterserverPort
			}
			if node, err = opts.Node.config(ports[2]); err != nil {
				cleanupDir(dir, removeDir)
				return nil, err
			}
		}
		s := &Server{
			addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
			httpAddr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
			dir:         dir,
			removeDir:   removeDir,
			stopTimeout: cmp.Or(opts.StopTimeout, DefaultStopTimeout),
			log:         log,
		}
		cfg, err := writeConfig(serverConfig{Root: root, Dir: dir, TCPPort: ports[0], HTTPPort: ports[1], Node: node, Users: opts.Users})
		if err != nil {
			cleanupDir(dir, removeDir)
			return nil, err
		}
		err = s.launch(ctx, bin, cfg, cmp.Or(opts.StartTimeout, DefaultStartTimeout))
		if err == nil {
			log.Info("clickhouse server started", "addr", s.addr, "http", s.httpAddr,
				"version", s.version, "dir", dir, "binary", bin, "took", time.Since(began).Round(time.Millisecond))
			return s, nil
		}
		if errors.Is(err, ErrAddrInUse) && attempt < attempts && !fixed {
			log.Warn("clickhouse server could not bind its ports; retrying with others", "err", err)
			continue
		}
		cleanupDir(dir, removeDir)
		return nil, err
	}
}

// launch starts the process and waits until it answers.
func (s *Server) launch(ctx context.Context, bin, cfg string, timeout time.Duration) error {
	out, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chserver: open stdout log: %w", err)
	}
	cmd := exec.Command(bin, serverArgs(bin, "--config-file="+cfg)...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	// Start and wait on one locked OS thread: the parent-death signal fires
	// when the starting thread exits, so that thread must live as long as
	// the server.
	s.done = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(s.done)
		defer out.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			s.waitErr = err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-s.done
		return fmt.Errorf("chserver: run %s: %w", bin, err)
	}
	s.cmd = cmd

	if err := s.waitReady(ctx, timeout); err != nil {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		tail := s.logTail()
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", ErrAddrInUse, err)
		}
		return fmt.Errorf("chserver: clickhouse server (%s, dir %s) did not start: %w\n--- server log tail ---\n%s", bin, s.dir, err, tail)
	}
	return nil
}

// waitReady pings the native port until the server answers, exits, or the
// timeout passes.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:         []string{s.addr},
		DialTimeout:  time.Second,
		MaxOpenConns: 1,
	})
	if err != nil {
		return fmt.Errorf("open client: %w", err)
	}
	defer conn.Close()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := conn.Ping(pctx)
		cancel()
		if err == nil {
			if v, err := conn.ServerVersion(); err == nil {
				s.version = fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch)
			}
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("server exited during startup: %v", s.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no answer on %s within %s (last ping: %v)", s.addr, timeout, err)
		case <-tick.C:
		}
	}
}

// External returns a Server for a ClickHouse server that runs elsewhere
// (httpAddr may be empty). Its Stop does nothing and its Done never closes.
func External(addr, httpAddr string) *Server {
	return &Server{addr: addr, httpAddr: httpAddr}
}

// Addr is the native-protocol address, host:port.
func (s *Server) Addr() string { return s.addr }

// HTTPAddr is the HTTP interface's address, host:port.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Dir is the server's config, data and log directory ("" for External).
func (s *Server) Dir() string { return s.dir }

// Version is the server's version as reported at start, e.g. "18.16.1"
// ("" for External).
func (s *Server) Version() string { return s.version }

// Done is closed when the server process has exited (nil for External).
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop shuts the server down gracefully (SIGTERM), waits for it to exit
// (killing it after the stop timeout) and removes a temporary directory.
// It returns an error if the server had died before Stop or had to be
// killed. Calling Stop again returns the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit; its directory is kept when it was given (Options.Dir), so a new
// Start on it (with the same ports) brings the node back with its data.
// Stop after Kill does nothing.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
		if s.cmd == nil {
			return
		}
		defer cleanupDir(s.dir, s.removeDir)
		select {
		case <-s.done:
			return
		default:
		}
		_ = s.cmd.Process.Kill()
		<-s.done
		s.log.Info("clickhouse server killed", "addr", s.addr)
	})
}

func (s *Server) stop() error {
	if s.cmd == nil {
		return nil
	}
	defer cleanupDir(s.dir, s.removeDir)
	select {
	case <-s.done:
		return fmt.Errorf("chserver: clickhouse server had exited before Stop: %v\n--- server log tail ---\n%s", s.waitErr, s.logTail())
	default:
	}
	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("chserver: signal clickhouse server: %w", err)
	}
	timer := time.NewTimer(s.stopTimeout)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("chserver: clickhouse server did not stop within %s of SIGTERM; killed it", s.stopTimeout)
	}
	var exit *exec.ExitError
	if s.waitErr != nil && !(errors.As(s.waitErr, &exit) && exit.ExitCode() == 0) {
		return fmt.Errorf("chserver: clickhouse server stopped with %w\n--- server log tail ---\n%s", s.waitErr, s.logTail())
	}
	s.log.Info("clickhouse server stopped", "addr", s.addr, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

func cleanupDir(dir string, remove bool) {
	if remove && dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// freePorts returns n distinct free TCP ports of 127.0.0.1. They are free
// when chosen; the server binds them a moment later (Start retries if one
// was taken meanwhile).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("chserver: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// LogTail returns the last lines of the server's error log and of its
// stdout/stderr, for a failing test to show.
func (s *Server) LogTail() string { return s.logTail() }

// logTail returns the last lines of the server's error log (or its main
// log when the error log is empty) and of its stdout/stderr.
func (s *Server) logTail() string {
	var b strings.Builder
	logDir := filepath.Join(s.dir, "log")
	errLog := tailFile(filepath.Join(logDir, "clickhouse-server.err.log"), 20)
	if errLog == "" {
		errLog = tailFile(filepath.Join(logDir, "clickhouse-server.log"), 20)
	}
	if errLog != "" {
		b.WriteString(errLog)
		b.WriteString("\n")
	}
	if out := tailFile(filepath.Join(logDir, "stdout.log"), 10); out != "" {
		b.WriteString("--- stdout/stderr ---\n")
		b.WriteString(out)
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "(no server output in " + logDir + ")"
	}
	return b.String()
}

// tailFile returns at most n trailing lines of the file at path ("" if it
// is missing or empty).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxRead = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		if _, err := f.Seek(-maxRead, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	return lastLines(b, n)
}
