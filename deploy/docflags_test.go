package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/doccmd"
)

var (
	codeSpan  = regexp.MustCompile("`([^`\n]+)`")
	bareWord  = regexp.MustCompile(`^[a-z][a-z-]*$`)
	flagToken = regexp.MustCompile(`^--([a-z0-9][a-z0-9.*-]*)`)
)

// TestDocInlineCommands is the lighter check of the docs' inline code:
// every span of README.md, docs/*.md and deploy/README.md that starts with
// `kaudit ` or `kaudit-<binary> ` names a subcommand that exists and only
// flags that it has (in its --help, or accepted: aliases; `--audit-*` names
// flags by prefix), so
// that the prose cannot name what the CLI does not have.
func TestDocInlineCommands(t *testing.T) {
	root := moduleRoot(t)
	bins := buildBinaries(t, root)
	docs, err := doccmd.Docs(root)
	if err != nil {
		t.Fatal(err)
	}
	helps := map[string]string{} // "bin words" -> help, "" when not a command
	help := func(bin string, words []string) (string, bool) {
		key := bin + " " + strings.Join(words, " ")
		if h, ok := helps[key]; ok {
			return h, h != ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bins[bin], append(append([]string{}, words...), "--help")...).CombinedOutput()
		h := string(out)
		if err != nil {
			h = ""
		}
		helps[key] = h
		return h, h != ""
	}
	spans := 0
	for _, doc := range docs {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		inFence := false
		for n, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "```") {
				inFence = !inFence
				continue
			}
			if inFence {
				continue
			}
			for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
				f := strings.Fields(m[1])
				if len(f) < 2 {
					continue
				}
				if _, ok := bins[f[0]]; !ok || f[0] == "kaudit-rdkafka" {
					continue
				}
				spans++
				where := doc + ":" + itoa(n+1) + ": `" + m[1] + "`"
				var words []string
				for _, w := range f[1:] {
					if !bareWord.MatchString(w) {
						break
					}
					words = append(words, w)
				}
				// The longest leading words that are a command; for
				// kaudit, at least its subcommand.
				var h string
				ok := false
				for k := len(words); k >= 0 && !ok; k-- {
					if f[0] == "kaudit" && k == 0 {
						break
					}
					if h, ok = help(f[0], words[:k]); ok && k < len(words) && strings.Contains(h, "<command>") {
						ok = false // a group of commands, and the next word is none of them
					}
				}
				if !ok {
					t.Errorf("%s: %s %s is not a command", where, f[0], strings.Join(words, " "))
					continue
				}
				for _, tok := range f[1:] {
					fm := flagToken.FindStringSubmatch(tok)
					if fm == nil {
						continue
					}
					name := strings.TrimRight(fm[1], ".")
					if prefix, glob := strings.CutSuffix(name, "*"); glob {
						if !strings.Contains(h, "--"+prefix) {
							t.Errorf("%s: no flag --%s... in `%s --help`", where, prefix, f[0])
						}
						continue
					}
					if !regexp.MustCompile(`--(\[no-\])?`+regexp.QuoteMeta(name)+`([=\s,]|$)`).MatchString(h) && !accepts(bins[f[0]], words, name) {
						t.Errorf("%s: no flag --%s in its --help", where, name)
					}
				}
			}
		}
	}
	if spans < 20 {
		t.Errorf("only %d inline kaudit commands found: is the span pattern broken?", spans)
	}
	t.Logf("%d inline commands checked", spans)
}

// accepts reports whether bin accepts --name (an alias, which --help does
// not list): kong reads the flags before it acts on --help.
func accepts(bin string, words []string, name string) bool {
	for _, arg := range []string{"--" + name + "=1", "--" + name} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := exec.CommandContext(ctx, bin, append(append([]string{}, words...), arg, "--help")...).Run()
		cancel()
		if err == nil {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
