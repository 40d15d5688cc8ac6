// Package doccmd gives tests the command lines the docs show, so that
// every one of them is run by a test (deploy's TestDocCommandsClaimed
// fails on a line no test claims).
//
// The command lines are those of the ```sh blocks of README.md, docs/*.md
// and deploy/README.md: continuation lines (a trailing \, or a quoted
// string still open) are joined with one space, a trailing # comment is
// removed, blank and comment-only lines are skipped.
//
//	line := doccmd.Line(t, "README.md", "kaudit expect list") // fails unless README.md shows it
//	args := strings.Fields(strings.ReplaceAll(line, "kafka:9092", broker))
package doccmd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Command is one command line of a doc.
type Command struct {
	// File is the doc's path relative to the module root, with slashes.
	File string
	// Line is the 1-based line number where the command starts.
	Line int
	// Text is the command, continuation lines joined, comment removed.
	Text string
}

func (c Command) String() string { return fmt.Sprintf("%s:%d: %s", c.File, c.Line, c.Text) }

// Docs returns the docs whose commands are collected, relative to root:
// README.md, docs/*.md and deploy/README.md.
func Docs(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	out := []string{"README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		out = append(out, filepath.ToSlash(rel))
	}
	slices.Sort(out[1:])
	return append(out, "deploy/README.md"), nil
}

// All returns the command lines of every doc of Docs.
func All(root string) ([]Command, error) {
	docs, err := Docs(root)
	if err != nil {
		return nil, err
	}
	var out []Command
	for _, d := range docs {
		cmds, err := File(root, d)
		if err != nil {
			return nil, err
		}
		out = append(out, cmds...)
	}
	return out, nil
}

// File returns the command lines of the ```sh blocks of one doc (a path
// relative to root).
func File(root, doc string) ([]Command, error) {
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(doc)))
	if err != nil {
		return nil, fmt.Errorf("doccmd: %w", err)
	}
	defer f.Close()
	var (
		out     []Command
		inBlock bool
		cur     *Command // a command continued on the next line
		quote   rune     // the open quote of cur, if any
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		if strings.HasPrefix(raw, "```") {
			if cur != nil {
				return nil, fmt.Errorf("doccmd: %s:%d: the command does not end before its block does", doc, cur.Line)
			}
			inBlock = !inBlock && strings.HasPrefix(raw, "```sh")
			continue
		}
		if !inBlock {
			continue
		}
		line := strings.TrimSpace(raw)
		if cur == nil && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		text, open, more := scan(line, quote)
		if cur == nil {
			cur = &Command{File: doc, Line: n, Text: text}
		} else {
			cur.Text = strings.TrimSpace(cur.Text + " " + text)
		}
		quote = open
		if !more && open == 0 {
			cur.Text = strings.TrimSpace(cur.Text)
			out = append(out, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("doccmd: %s: %w", doc, err)
	}
	if cur != nil {
		return nil, fmt.Errorf("doccmd: %s:%d: the command does not end before its block does", doc, cur.Line)
	}
	return out, nil
}

// scan reads one physical line that starts inside quote (0: none) and
// returns its text without a trailing comment or continuation backslash,
// the quote still open at its end, and whether a backslash continues it.
func scan(line string, quote rune) (text string, open rune, more bool) {
	var b strings.Builder
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == 0 && r == '#' && (i == 0 || rs[i-1] == ' ' || rs[i-1] == '\t'):
			return strings.TrimSpace(b.String()), 0, false
		case quote == 0 && r == '\\' && i == len(rs)-1:
			return strings.TrimSpace(b.String()), 0, true
		case quote != '\'' && r == '\\' && i+1 < len(rs):
			b.WriteRune(r)
			b.WriteRune(rs[i+1])
			i++
			continue
		case quote == 0 && (r == '"' || r == '\''):
			quote = r
		case quote != 0 && r == quote:
			quote = 0
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String()), quote, false
}

// Root returns the module root: the nearest folder at or above the
// working directory holding go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("doccmd: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

var cache struct {
	sync.Mutex
	files map[string][]Command
}

// Line fails the test unless doc (relative to the module root, e.g.
// "README.md" or "docs/proxy.md") shows exactly the command line text,
// and returns it. TestDocCommandsClaimed reads the arguments of every call
// from the source, so both must be string constants.
func Line(t testing.TB, doc, text string) string {
	t.Helper()
	cmds, err := load(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if c.Text == text {
			return text
		}
	}
	var have []string
	for _, c := range cmds {
		have = append(have, "\n\t"+c.String())
	}
	t.Fatalf("%s does not show the command line\n\t%s\nIts command lines:%s", doc, text, strings.Join(have, ""))
	return ""
}

func load(doc string) ([]Command, error) {
	cache.Lock()
	defer cache.Unlock()
	if cmds, ok := cache.files[doc]; ok {
		return cmds, nil
	}
	root, err := Root()
	if err != nil {
		return nil, err
	}
	cmds, err := File(root, doc)
	if err != nil {
		return nil, err
	}
	if cache.files == nil {
		cache.files = map[string][]Command{}
	}
	cache.files[doc] = cmds
	return cmds, nil
}
