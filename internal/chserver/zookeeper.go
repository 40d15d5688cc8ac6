package chserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Debian's zookeeper package: the server's jar (its manifest names the
// jars it needs) and, if installed, an SLF4J binding that logs to stderr.
var (
	zooKeeperJar     = "/usr/share/java/zookeeper.jar"
	zooKeeperLogJars = []string{"/usr/share/java/slf4j-simple.jar"}
)

// ErrZooKeeperNotFound is returned by FindZooKeeper when Java or the
// ZooKeeper jar is missing.
var ErrZooKeeperNotFound = errors.New("chserver: zookeeper not found")

// ZooKeeperOptions configures StartZooKeeper.
type ZooKeeperOptions struct {
	// Dir holds zoo.cfg, data/ and zookeeper.log. Empty means a new
	// temporary directory, removed by Stop.
	Dir string
	// Port fixes the client port on 127.0.0.1; zero picks a free one.
	Port int
	// Logger receives start/stop/install messages; nil discards them.
	Logger *slog.Logger
	// Install lets StartZooKeeper install Debian's zookeeper package when
	// it is missing (root only).
	Install bool
	// StartTimeout bounds the wait for the server to answer (default
	// DefaultStartTimeout).
	StartTimeout time.Duration
}

// ZooKeeper is a running standalone ZooKeeper server process, for the
// replicated tables and the distributed DDL queue of local ClickHouse
// clusters.
type ZooKeeper struct {
	addr      string
	dir       string
	removeDir bool
	log       *slog.Logger
	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error

	stopOnce sync.Once
	stopErr  error
}

// FindZooKeeper returns the java binary and the ZooKeeper classpath of
// Debian's zookeeper package, or an error wrapping ErrZooKeeperNotFound.
func FindZooKeeper() (java, classpath string, err error) {
	java, err = exec.LookPath("java")
	if err != nil {
		return "", "", fmt.Errorf("%w: no java on PATH", ErrZooKeeperNotFound)
	}
	if _, err := os.Stat(zooKeeperJar); err != nil {
		return "", "", fmt.Errorf("%w: no %s", ErrZooKeeperNotFound, zooKeeperJar)
	}
	cp := []string{zooKeeperJar}
	for _, j := range zooKeeperLogJars {
		if _, err := os.Stat(j); err == nil {
			cp = append(cp, j)
		}
	}
	return java, strings.Join(cp, ":"), nil
}

// EnsureZooKeeper is FindZooKeeper, installing Debian's zookeeper package
// first when it is missing and the process runs as root.
func EnsureZooKeeper(ctx context.Context, log *slog.Logger) (java, classpath string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	java, classpath, err = FindZooKeeper()
	if err == nil || os.Geteuid() != 0 {
		if err != nil {
			err = fmt.Errorf("%w; install it (Debian/Ubuntu: sudo apt-get install zookeeper)", err)
		}
		return java, classpath, err
	}
	log.Warn("zookeeper not found: installing Debian package zookeeper (apt-get install -y zookeeper)")
	if err := aptGet(ctx, "update"); err != nil {
		return "", "", err
	}
	if err := aptGet(ctx, "install", "-y", "--no-install-recommends", "zookeeper"); err != nil {
		return "", "", err
	}
	return FindZooKeeper()
}

// StartZooKeeper runs a standalone ZooKeeper server as a child process
// listening on 127.0.0.1 (client port only: no admin server, no quorum
// ports) with its data in opts.Dir, and returns once it serves clients.
// Like Start, the child is in its own process group and, on Linux, gets
// SIGTERM if the starting thread dies.
func StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeper, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	var java, cp string
	var err error
	if opts.Install {
		java, cp, err = EnsureZooKeeper(ctx, log)
	} else {
		java, cp, err = FindZooKeeper()
	}
	if err != nil {
		return nil, err
	}
	dir, removeDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kaudit-zookeeper-"); err != nil {
			return nil, fmt.Errorf("chserver: create temporary directory: %w", err)
		}
		removeDir = true
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("chserver: directory %q: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("chserver: create %s: %w", dir, err)
	}
	port := opts.Port
	if port == 0 {
		ports, err := freePorts(1)
		if err != nil {
			cleanupDir(dir, removeDir)
			return nil, err
		}
		port = ports[0]
	}
	// Fast ticks (sessions of 1 to 10 s), no fsync: a test's ZooKeeper.
	cfg := fmt.Sprintf(`# Written by kaudit's chserver; rewritten at every start.
tickTime=500
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
forceSync=no
4lw.commands.whitelist=srvr
`, filepath.Join(dir, "data"), port)
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		cleanupDir(dir, removeDir)
		return nil, fmt.Errorf("chserver: write zoo.cfg: %w", err)
	}
	z := &ZooKeeper{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, removeDir: removeDir, log: log}
	out, err := os.OpenFile(filepath.Join(dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		cleanupDir(dir, removeDir)
		return nil, fmt.Errorf("chserver: open zookeeper log: %w", err)
	}
	z.cmd = exec.Command(java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.admin.enableServer=false", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath)
	z.cmd.Dir = dir
	z.cmd.Stdout, z.cmd.Stderr = out, out
	z.cmd.SysProcAttr = sysProcAttr()
	z.done = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the parent-death signal follows this thread
		defer runtime.UnlockOSThread()
		defer close(z.done)
		defer out.Close()
		if err := z.cmd.Start(); err != nil {
			started <- err
			z.waitErr = err
			return
		}
		started <- nil
		z.waitErr = z.cmd.Wait()
	}()
	if err := <-started; err != nil {
		<-z.done
		cleanupDir(dir, removeDir)
		return nil, fmt.Errorf("chserver: run %s: %w", java, err)
	}
	if err := z.waitReady(ctx, cmp.Or(opts.StartTimeout, DefaultStartTimeout)); err != nil {
		_ = z.cmd.Process.Kill()
		<-z.done
		tail := tailFile(filepath.Join(dir, "zookeeper.log"), 20)
		cleanupDir(dir, removeDir)
		return nil, fmt.Errorf("chserver: zookeeper (dir %s) did not start: %w\n--- zookeeper log tail ---\n%s", dir, err, tail)
	}
	log.Info("zookeeper started", "addr", z.addr, "dir", dir, "took", time.Since(began).Round(time.Millisecond))
	return z, nil
}

// waitReady polls the server until it serves clients.
func (z *ZooKeeper) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = z.serving(); last == nil {
			return nil
		}
		select {
		case <-z.done:
			return fmt.Errorf("zookeeper exited during startup: %v", z.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no answer on %s within %s (last: %v)", z.addr, timeout, last)
		case <-tick.C:
		}
	}
}

// serving asks "srvr": the server answers 4-letter words before it
// serves clients ("not currently serving requests"), and a ClickHouse
// 18.16 server whose first ZooKeeper session fails can crash on its first
// distributed DDL statement.
func (z *ZooKeeper) serving() error {
	c, err := net.DialTimeout("tcp", z.addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "srvr"); err != nil {
		return err
	}
	out, err := io.ReadAll(c)
	if strings.Contains(string(out), "Mode: standalone") {
		return nil
	}
	return fmt.Errorf("srvr answered %q (%v)", out, err)
}

// Addr is the client address, host:port.
func (z *ZooKeeper) Addr() string { return z.addr }

// Stop ends the server (SIGTERM, SIGKILL after DefaultStopTimeout) and
// removes a temporary directory. Calling it again returns the first
// result.
func (z *ZooKeeper) Stop() error {
	z.stopOnce.Do(func() {
		defer cleanupDir(z.dir, z.removeDir)
		select {
		case <-z.done:
			z.stopErr = fmt.Errorf("chserver: zookeeper had exited before Stop: %v", z.waitErr)
			return
		default:
		}
		_ = z.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-z.done:
		case <-time.After(DefaultStopTimeout):
			_ = z.cmd.Process.Kill()
			<-z.done
			z.stopErr = fmt.Errorf("chserver: zookeeper did not stop within %s of SIGTERM; killed it", DefaultStopTimeout)
			return
		}
		z.log.Info("zookeeper stopped", "addr", z.addr)
	})
	return z.stopErr
}
