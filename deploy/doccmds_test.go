package deploy_test

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/internal/testing/doccmd"
)

// docExemptions are the doc command lines no test runs, each with the
// reason. Keep it short: a command that can run here is run by a test.
var docExemptions = map[string]string{
	"README.md: make test": "it is what CI runs: every test, this one among them",
	"deploy/README.md: docker compose up --build": "no Docker engine on this machine; docker-compose.yml is " +
		"checked with `docker-compose config` by deploy/compose_test.go",
	"deploy/README.md: docker compose logs -f correlator sink": "no Docker engine on this machine; " +
		"the services it names are checked by deploy/compose_test.go",
	"deploy/README.md: docker compose down": "no Docker engine on this machine",
	"deploy/README.md: docker compose --profile cluster up --build": "no Docker engine on this machine; " +
		"the profile is checked with `docker-compose --profile cluster config` by TestComposeClusterProfile and TestClusterDoc",
	"docs/clickhouse-cluster.md: docker compose --profile cluster up --build": "no Docker engine on this machine; " +
		"the profile is checked with `docker-compose --profile cluster config` by TestComposeClusterProfile and TestClusterDoc",
}

const doccmdImport = "github.com/kaudit/kaudit/internal/testing/doccmd"

// TestDocCommandsClaimed enforces "every command line in the docs is
// executed by a test": it parses every _test.go file of the module, takes
// the (constant) arguments of each doccmd.Line call, and fails listing the
// command lines of the docs' sh blocks that no test claims and that are
// not in docExemptions. It lives here, next to the other doc tests, because
// it needs no server: it is pure source and doc reading, and runs in
// milliseconds with the deploy package's tests.
func TestDocCommandsClaimed(t *testing.T) {
	root := moduleRoot(t)
	cmds, err := doccmd.All(root)
	if err != nil {
		t.Fatal(err)
	}
	claims, errs := collectClaims(root)
	for _, e := range errs {
		t.Error(e)
	}
	inDocs := map[string]bool{}
	var unclaimed []string
	for _, c := range cmds {
		key := c.File + ": " + c.Text
		inDocs[key] = true
		if _, ok := docExemptions[key]; ok {
			continue
		}
		if len(claims[key]) == 0 {
			unclaimed = append(unclaimed, "\t"+c.String())
		}
	}
	if len(unclaimed) > 0 {
		t.Errorf("%d doc command lines are run by no test (claim each with doccmd.Line in the test that runs it, "+
			"or, if it cannot run here, add it with its reason to docExemptions):\n%s", len(unclaimed), strings.Join(unclaimed, "\n"))
	}
	for key, reason := range docExemptions {
		if !inDocs[key] {
			t.Errorf("docExemptions lists %q (%s), which no doc shows any more", key, reason)
		}
		if len(claims[key]) > 0 {
			t.Errorf("%q is exempt but claimed by %v: drop the exemption", key, claims[key])
		}
	}
	for key, where := range claims {
		if !inDocs[key] {
			t.Errorf("%v claim %q, which no doc shows", where, key)
		}
	}
	t.Logf("%d doc command lines: %d claimed, %d exempt", len(cmds), len(cmds)-len(unclaimed)-len(docExemptions), len(docExemptions))
}

// collectClaims returns, for each "file: text" key, where a doccmd.Line
// call claims it, and an error for each call whose arguments are not
// string constants.
func collectClaims(root0 string) (map[string][]string, []error) {
	claims := map[string][]string{}
	var errs []error
	byDir := map[string][]string{}
	root := root0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != root {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") {
			byDir[filepath.Dir(path)] = append(byDir[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		return nil, []error{err}
	}
	for dir, files := range byDir {
		rel, _ := filepath.Rel(root, dir)
		if filepath.ToSlash(rel) == "internal/testing/doccmd" {
			continue // the kit's own tests claim nothing
		}
		fset := token.NewFileSet()
		parsed := map[string]*ast.File{}
		consts := map[string]map[string]ast.Expr{} // package name -> const name -> value
		for _, path := range files {
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			parsed[path] = f
			pkg := f.Name.Name
			if consts[pkg] == nil {
				consts[pkg] = map[string]ast.Expr{}
			}
			for _, decl := range f.Decls {
				if gd, ok := decl.(*ast.GenDecl); ok && gd.Tok == token.CONST {
					addConsts(consts[pkg], gd)
				}
			}
		}
		for path, f := range parsed {
			if !strings.HasSuffix(path, "_test.go") {
				continue
			}
			name := importName(f)
			if name == "" {
				continue
			}
			pkgConsts := consts[f.Name.Name]
			inspect := func(root ast.Node, consts map[string]ast.Expr) {
				ast.Inspect(root, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok || sel.Sel.Name != "Line" {
						return true
					}
					if id, ok := sel.X.(*ast.Ident); !ok || id.Name != name {
						return true
					}
					pos := fset.Position(call.Pos())
					relPos := fmt.Sprintf("%s:%d", strings.TrimPrefix(pos.Filename, root0+string(filepath.Separator)), pos.Line)
					if len(call.Args) != 3 {
						errs = append(errs, fmt.Errorf("%s: doccmd.Line takes 3 arguments", relPos))
						return true
					}
					file, err1 := constString(call.Args[1], consts, 0)
					text, err2 := constString(call.Args[2], consts, 0)
					if err := cmp.Or(err1, err2); err != nil {
						errs = append(errs, fmt.Errorf("%s: doccmd.Line's doc and line must be string constants: %w", relPos, err))
						return true
					}
					key := file + ": " + text
					claims[key] = append(claims[key], relPos)
					return true
				})
			}
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					inspect(decl, pkgConsts)
					continue
				}
				// The function's own constants, over the package's (the
				// names of a function are taken to be unique in it).
				local := maps.Clone(pkgConsts)
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					if gd, ok := n.(*ast.GenDecl); ok && gd.Tok == token.CONST {
						addConsts(local, gd)
					}
					return true
				})
				inspect(fd.Body, local)
			}
		}
	}
	for _, where := range claims {
		slices.Sort(where)
	}
	return claims, errs
}

// addConsts adds the constants of a const declaration to consts.
func addConsts(consts map[string]ast.Expr, gd *ast.GenDecl) {
	for _, spec := range gd.Specs {
		vs := spec.(*ast.ValueSpec)
		for i, name := range vs.Names {
			if i < len(vs.Values) {
				consts[name.Name] = vs.Values[i]
			}
		}
	}
}

// importName is the name under which f imports doccmd, "" if it does not.
func importName(f *ast.File) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == doccmdImport {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return "doccmd"
		}
	}
	return ""
}

// constString evaluates a string constant expression: literals, names of
// the package's constants, and + of those.
func constString(e ast.Expr, consts map[string]ast.Expr, depth int) (string, error) {
	if depth > 20 {
		return "", fmt.Errorf("constant too deep")
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			return strconv.Unquote(e.Value)
		}
	case *ast.ParenExpr:
		return constString(e.X, consts, depth+1)
	case *ast.Ident:
		if v, ok := consts[e.Name]; ok {
			return constString(v, consts, depth+1)
		}
		return "", fmt.Errorf("%s is not a string constant of the package", e.Name)
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			a, err := constString(e.X, consts, depth+1)
			if err != nil {
				return "", err
			}
			b, err := constString(e.Y, consts, depth+1)
			return a + b, err
		}
	}
	return "", fmt.Errorf("%T is not a string constant", e)
}
