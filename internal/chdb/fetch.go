package chdb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// The npm package that ships libchdb.so, pinned: its version and npm's
// integrity hash of its tarball (checked before anything is extracted).
const (
	Package   = "@chdb/lib-linux-x64-gnu"
	Version   = "26.7.3-stable.1"
	Integrity = "sha512-XP97mMqnc5tZpKQywR8N7cLTsHNiTmHr30pC5mzo3jWmukjKn2IBa60c2B/gWUNcuFjOMjWoorQICCqBVj5wpw=="
)

// EnvLib names a libchdb.so to use instead of the cached download.
const EnvLib = "KAUDIT_CHDB_LIB"

// CacheDir is where Ensure keeps the library: <user cache dir>/kaudit/chdb/<Version>.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("chdb: no cache directory: %w", err)
	}
	return filepath.Join(base, "kaudit", "chdb", Version), nil
}

// Ensure returns the path of libchdb.so: $KAUDIT_CHDB_LIB if set, else the
// cached copy, fetched first with `npm pack` (about 180 MB, once per
// machine) and verified against Integrity. Concurrent callers (test
// binaries of several packages) wait for one fetch.
func Ensure(ctx context.Context, log *slog.Logger) (string, error) {
	if p := os.Getenv(EnvLib); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("chdb: %s=%s: %w", EnvLib, p, err)
		}
		return p, nil
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return "", fmt.Errorf("chdb: %s ships a linux/amd64 library only (this is %s/%s); set %s to a libchdb.so",
			Package, runtime.GOOS, runtime.GOARCH, EnvLib)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	lib := filepath.Join(dir, "libchdb.so")
	if _, err := os.Stat(lib); err == nil {
		return lib, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("chdb: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("chdb: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("chdb: lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(lib); err == nil {
		return lib, nil // fetched by another process while we waited
	}
	tmp, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		return "", fmt.Errorf("chdb: %w", err)
	}
	defer os.RemoveAll(tmp)
	spec := Package + "@" + Version
	log.Warn("fetching the ClickHouse 26.x engine for the tests (once per machine)", "package", spec, "cache", dir)
	began := time.Now()
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", "--pack-destination", tmp, spec)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("chdb: npm is needed to fetch %s (Debian: apt-get install npm): %w", spec, err)
		}
		return "", fmt.Errorf("chdb: npm pack %s: %w: %s", spec, err, strings.TrimSpace(string(out)))
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	if err := verify(tgz, Integrity); err != nil {
		return "", err
	}
	if err := extract(tgz, "package/libchdb.so", lib+".part"); err != nil {
		return "", err
	}
	if err := os.Rename(lib+".part", lib); err != nil {
		return "", fmt.Errorf("chdb: %w", err)
	}
	log.Warn("fetched the ClickHouse 26.x engine", "package", spec, "took", time.Since(began).Round(time.Second))
	return lib, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// verify checks a file against an npm integrity string (sha512-<base64>).
func verify(path, integrity string) error {
	want, ok := strings.CutPrefix(integrity, "sha512-")
	if !ok {
		return fmt.Errorf("chdb: unsupported integrity %q", integrity)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("chdb: %w", err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("chdb: read %s: %w", path, err)
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("chdb: %s has sha512 %s, want %s", filepath.Base(path), got, want)
	}
	return nil
}

// extract writes the member name of the gzipped tar at path to dst.
func extract(path, name, dst string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("chdb: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("chdb: %s: %w", path, err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("chdb: %s has no %s", filepath.Base(path), name)
		}
		if err != nil {
			return fmt.Errorf("chdb: %s: %w", path, err)
		}
		if hdr.Name != name {
			continue
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
		if err != nil {
			return fmt.Errorf("chdb: %w", err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return fmt.Errorf("chdb: extract %s: %w", name, err)
		}
		return out.Close()
	}
}
