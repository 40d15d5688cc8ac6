package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/kaudit/kaudit/"

// layers, bottom first: a package may import its own layer and those
// below. The longest matching prefix names a package's layer.
var layers = [][]string{
	// Leaves: no kaudit imports.
	{"internal/wire", "internal/chserver", "internal/chdb", "internal/devbroker", "internal/kafkaconn", "processors/internal/gokaopts", "proxy"},
	// The wire schema.
	{"codecs"},
	// The contracts: the audit topics, the ClickHouse schema, the proxy's
	// audit records.
	{"audit", "store", "proxy/traffic", "proxy/auditors"},
	// The components and the read side.
	{"interceptors", "processors", "sinks", "report", "alerts", "web", "internal/cli"},
	// Whole applications (the demo, its traffic), assembled from components.
	{"internal/app"},
	// Binaries.
	{"cmd"},
}

// testOnly are imported by tests only (and by each other).
var testOnly = []string{"internal/testing", "internal/layout", "e2e", "deploy"}

func layerOf(rel string) int {
	best, layer := -1, -1
	for i, ps := range layers {
		for _, p := range ps {
			if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > best {
				best, layer = len(p), i
			}
		}
	}
	return layer
}

func under(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportsFollowTheLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "rdkafka", "-json=ImportPath,Imports", module+"...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		rel := strings.TrimPrefix(p.ImportPath, module)
		self := layerOf(rel)
		if self < 0 && !under(rel, testOnly) {
			t.Errorf("%s is in no layer: add it to layers (and README's package table)", rel)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			switch {
			case under(dep, testOnly) && !under(rel, testOnly):
				t.Errorf("%s imports the test kit %s", rel, dep)
			case under(rel, testOnly):
			case layerOf(dep) > self:
				t.Errorf("%s (layer %d) imports %s (layer %d): an import back up the layers", rel, self, dep, layerOf(dep))
			}
		}
	}
	if n < 30 {
		t.Fatalf("go list listed %d packages: the pattern is wrong", n)
	}
}

// The rule itself fails on an import back up the layers.
func TestLayerOf(t *testing.T) {
	for rel, want := range map[string]int{
		"codecs": 1, "store/migrations": 2, "proxy": 0, "proxy/auditors": 2, "sinks/clickhouse": 3,
		"processors/internal/gokaopts": 0, "internal/app/demo": 4, "cmd/kaudit": 5, "e2e": -1,
	} {
		if got := layerOf(rel); got != want {
			t.Errorf("layerOf(%s) = %d, want %d", rel, got, want)
		}
	}
}

// README's package table names every top-level directory of Go packages,
// and every path in its first column exists.
func TestReadmePackageTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	_, table, ok := strings.Cut(string(readme), "| package | what it is |\n")
	if !ok {
		t.Fatal(`README has no "| package | what it is |" table`)
	}
	table, _, _ = strings.Cut(table, "\n\n")
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.Contains(cells[1], "`") {
			continue
		}
		for i, tok := range strings.Split(cells[1], "`") {
			if i%2 == 0 {
				continue
			}
			tok = strings.TrimSuffix(tok, "/")
			if st, err := os.Stat(filepath.Join("..", "..", tok)); err != nil || !st.IsDir() {
				t.Errorf("README's package table names %s, which is not a directory", tok)
			}
			named[strings.Split(tok, "/")[0]] = true
		}
	}
	out, err := exec.Command("go", "list", "-tags", "rdkafka", "-f", "{{.ImportPath}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		top := strings.Split(strings.TrimPrefix(p, module), "/")[0]
		if !named[top] {
			t.Errorf("README's package table does not name %s/ (package %s)", top, p)
			named[top] = true
		}
	}
}
