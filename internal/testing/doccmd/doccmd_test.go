package doccmd

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFile(t *testing.T) {
	root := t.TempDir()
	doc := "text\n" +
		"```sh\n" +
		"make demo   # a comment\n" +
		"\n" +
		"# only a comment\n" +
		"kaudit-correlator --brokers a:1 \\\n" +
		"  --metrics-addr :9100\n" +
		"echo \"a # not a comment\" # but this is\n" +
		"client --query \"SELECT a,\n" +
		"           b FROM t\" --x\n" +
		"```\n" +
		"```go\n" +
		"not a command\n" +
		"```\n" +
		"```text\n" +
		"nor this\n" +
		"```\n" +
		"```sh\n" +
		"kcat -L\n" +
		"```\n"
	if err := os.WriteFile(filepath.Join(root, "README.md"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := File(root, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := []Command{
		{"README.md", 3, "make demo"},
		{"README.md", 6, "kaudit-correlator --brokers a:1 --metrics-addr :9100"},
		{"README.md", 8, `echo "a # not a comment"`},
		{"README.md", 9, `client --query "SELECT a, b FROM t" --x`},
		{"README.md", 19, "kcat -L"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestFileUnterminated(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "README.md"), []byte("```sh\na \\\n```\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := File(root, "README.md"); err == nil {
		t.Fatal("a continuation running into the end of the block was accepted")
	}
}

// TestLine: the module's README shows `make test` (the command CI runs).
func TestLine(t *testing.T) {
	if got := Line(t, "README.md", "make test"); got != "make test" {
		t.Fatalf("Line returned %q", got)
	}
}

func TestLineMissing(t *testing.T) {
	ft := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		Line(ft, "README.md", "make no-such-target")
	}()
	if !ft.failed {
		t.Fatal("Line accepted a command line README.md does not show")
	}
}

// fakeT records a Fatalf and stops the calling function.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
func (f *fakeT) Fatal(...any) {
	f.failed = true
	panic("fatal")
}
