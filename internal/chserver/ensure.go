package chserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned by Find when no ClickHouse server binary is
// installed.
var ErrNotFound = errors.New("chserver: clickhouse-server not found")

// candidates are tried in order: the dedicated server binary (Debian's
// 18.16 package installs /usr/sbin/clickhouse-server, which is not on a
// normal user's PATH; official packages link /usr/bin/clickhouse-server),
// then the multi-call binary of modern releases, run as "clickhouse server".
var candidates = []struct {
	name string
	path bool // look up name on PATH
}{
	{"clickhouse-server", true},
	{"/usr/sbin/clickhouse-server", false},
	{"/usr/bin/clickhouse-server", false},
	{"clickhouse", true},
	{"/usr/bin/clickhouse", false},
}

// Find returns the path of an installed ClickHouse server binary, or an
// error wrapping ErrNotFound.
func Find() (string, error) {
	var looked []string
	for _, c := range candidates {
		looked = append(looked, c.name)
		if c.path {
			if p, err := exec.LookPath(c.name); err == nil {
				return p, nil
			}
			continue
		}
		if fi, err := os.Stat(c.name); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c.name, nil
		}
	}
	return "", fmt.Errorf("%w (looked for %s)", ErrNotFound, strings.Join(looked, ", "))
}

// Ensure returns the path of the ClickHouse server binary. When there is
// none and the process runs as root, it installs Debian's clickhouse-server
// package (apt-get update, then apt-get install -y clickhouse-server),
// logging that it does so; as another user it returns an error that says
// how to install it.
func Ensure(ctx context.Context, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := Find()
	if err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w; install it (Debian/Ubuntu: sudo apt-get install clickhouse-server) or pass its path", err)
	}
	log.Warn("clickhouse-server not found: installing Debian package clickhouse-server (apt-get update && apt-get install -y clickhouse-server)")
	start := time.Now()
	if err := aptGet(ctx, "update"); err != nil {
		return "", err
	}
	if err := aptGet(ctx, "install", "-y", "clickhouse-server"); err != nil {
		return "", err
	}
	p, err = Find()
	if err != nil {
		return "", fmt.Errorf("chserver: installed Debian package clickhouse-server but still: %w", err)
	}
	log.Warn("installed Debian package clickhouse-server", "binary", p, "took", time.Since(start).Round(time.Millisecond))
	return p, nil
}

func aptGet(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("chserver: apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(out, 20))
	}
	return nil
}

// isMultiCall reports whether bin is the multi-call "clickhouse" binary,
// which needs the "server" subcommand.
func isMultiCall(bin string) bool {
	return filepath.Base(bin) == "clickhouse"
}

// serverArgs returns the arguments that run bin as a server with config.
func serverArgs(bin string, extra ...string) []string {
	if isMultiCall(bin) {
		return append([]string{"server"}, extra...)
	}
	return extra
}

var versionRe = regexp.MustCompile(`(?i)version\s+(\d+)\.(\d+)`)

// majorVersion asks bin for its version. Old servers (18.16) do not know
// --version and yield 0.
func majorVersion(ctx context.Context, bin string) int {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, serverArgs(bin, "--version")...).CombinedOutput()
	m := versionRe.FindSubmatch(out)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0
	}
	return n
}

// lastLines returns at most n trailing lines of b.
func lastLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
