package conformance_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/store"
)

// sqlStart matches a string that starts an SQL statement.
var sqlStart = regexp.MustCompile(`(?i)^\s*(SELECT|INSERT|ALTER|CREATE|DROP|OPTIMIZE|TRUNCATE|RENAME|SYSTEM|WITH)\s`)

// The packages that read ClickHouse or write it outside the sink write
// their SQL in store.NewQuery calls only, so that the registry the
// conformance test enumerates is complete. (store/migrations is checked by
// applying every migration on both engines; the sink's inserts are
// written through on both.)
func TestSQLOnlyInTheRegistry(t *testing.T) {
	for _, dir := range []string{"..", "../../report", "../../web"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s (%v)", dir, err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			inQuery := map[*ast.BasicLit]bool{}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name := ""
				switch fn := call.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				}
				if name == "NewQuery" {
					ast.Inspect(call, func(m ast.Node) bool {
						if lit, ok := m.(*ast.BasicLit); ok {
							inQuery[lit] = true
						}
						return true
					})
				}
				return true
			})
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || inQuery[lit] {
					return true
				}
				if s, err := strconv.Unquote(lit.Value); err == nil && sqlStart.MatchString(s) {
					t.Errorf("%s: SQL outside store.NewQuery: %.60q", fset.Position(lit.Pos()), s)
				}
				return true
			})
		}
	}
}

// Every registered statement names its tables by placeholders that
// Query.SQL knows (a table without one would become "{}" or "{name}" in
// the SQL and fail only when it runs).
func TestQueryPlaceholdersResolve(t *testing.T) {
	left := regexp.MustCompile(`\{[a-z_]*\}`)
	if len(store.Queries()) < 20 {
		t.Fatalf("only %d registered queries", len(store.Queries()))
	}
	for _, q := range store.Queries() {
		if m := left.FindString(q.SQL("db")); m != "" {
			t.Errorf("%s: placeholder %s left in its SQL", q.Name, m)
		}
	}
}
