package deploy_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConfigurationReference keeps docs/configuration.md equal to what the
// binaries print for --help: flags, environment variables and defaults are
// declared once, in the code, and the reference is generated from it. Run
// with KAUDIT_UPDATE_DOCS=1 to rewrite the file.
func TestConfigurationReference(t *testing.T) {
	root := moduleRoot(t)
	bins := buildBinaries(t, root)
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the binaries' `--help` by `KAUDIT_UPDATE_DOCS=1 go test ./deploy/ -run TestConfigurationReference`;\n")
	b.WriteString("a test fails when it is out of date. Every flag can also be set with the environment variable shown in\n")
	b.WriteString("parentheses.\n")
	section := func(title, bin string, args ...string) {
		out := runHelp(t, bins[bin], args, nil)
		b.WriteString("\n## `" + strings.TrimSpace(title) + "`\n\n```text\n")
		b.WriteString(strings.TrimRight(out, "\n") + "\n```\n")
	}
	section("kaudit-correlator", "kaudit-correlator")
	section("kaudit-sink", "kaudit-sink")
	section("kaudit-proxy", "kaudit-proxy")
	top := runHelp(t, bins["kaudit"], nil, nil)
	section("kaudit", "kaudit")
	for _, sub := range subcommands(top) {
		section("kaudit "+sub, "kaudit", strings.Fields(sub)...)
	}
	path := filepath.Join(root, "docs", "configuration.md")
	if os.Getenv("KAUDIT_UPDATE_DOCS") != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with KAUDIT_UPDATE_DOCS=1)", err)
	}
	if string(have) != b.String() {
		t.Errorf("docs/configuration.md is out of date: regenerate it with KAUDIT_UPDATE_DOCS=1 go test ./deploy/ -run TestConfigurationReference")
	}
}

var commandLine = regexp.MustCompile(`^  ([a-z][a-z-]*(?: [a-z][a-z-]*)*)(?: <[^>]+>(?: \.\.\.)?)*(?: \[flags\])?$`)

// subcommands lists the leaf commands of kaudit's top-level help.
func subcommands(help string) []string {
	var out []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		if line == "Commands:" {
			in = true
			continue
		}
		if in {
			if m := commandLine.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}
