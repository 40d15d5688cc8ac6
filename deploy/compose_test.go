package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"gopkg.in/yaml.v3"
)

// composeFile is the part of `docker-compose config`'s normalized output the
// tests read.
type composeFile struct {
	Services map[string]service `yaml:"services"`
}

type service struct {
	Image       string            `yaml:"image"`
	Profiles    []string          `yaml:"profiles"`
	Build       yaml.Node         `yaml:"build"`
	Entrypoint  yaml.Node         `yaml:"entrypoint"`
	Command     yaml.Node         `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Volumes     []yaml.Node       `yaml:"volumes"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
}

// built reports whether the service is built from the repository's own
// Dockerfile (build context = the module root, default Dockerfile).
func (s service) built(t *testing.T, root string) bool {
	t.Helper()
	var dir, dockerfile string
	switch s.Build.Kind {
	case 0:
		return false
	case yaml.ScalarNode:
		dir = s.Build.Value
	case yaml.MappingNode:
		var b struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		}
		if err := s.Build.Decode(&b); err != nil {
			t.Fatalf("build section: %v", err)
		}
		dir, dockerfile = b.Context, b.Dockerfile
	default:
		t.Fatalf("build section of unexpected YAML kind %v", s.Build.Kind)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if !samePath(dir, root) {
		return false
	}
	return dockerfile == "" || dockerfile == "Dockerfile" || samePath(dockerfile, filepath.Join(root, "Dockerfile"))
}

// samePath compares two absolute paths after resolving symbolic links.
func samePath(a, b string) bool {
	if ra, err := filepath.EvalSymlinks(a); err == nil {
		a = ra
	}
	if rb, err := filepath.EvalSymlinks(b); err == nil {
		b = rb
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// argv returns entrypoint + command. Both must be in exec (list) form: a
// shell string would need a shell, which the distroless image has not.
func (s service) argv(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, part := range []struct {
		key  string
		node yaml.Node
	}{{"entrypoint", s.Entrypoint}, {"command", s.Command}} {
		switch part.node.Kind {
		case 0:
		case yaml.SequenceNode:
			var l []string
			if err := part.node.Decode(&l); err != nil {
				t.Fatalf("service %s: %s: %v", name, part.key, err)
			}
			out = append(out, l...)
		default:
			t.Fatalf("service %s: %s must be a list (exec form), got %q", name, part.key, part.node.Value)
		}
	}
	return out
}

// dependsOn returns the service's dependencies and their conditions
// ("" when given in list form).
func (s service) dependsOn(t *testing.T, name string) map[string]string {
	t.Helper()
	deps := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var l []string
		if err := s.DependsOn.Decode(&l); err != nil {
			t.Fatalf("service %s: depends_on: %v", name, err)
		}
		for _, d := range l {
			deps[d] = ""
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatalf("service %s: depends_on: %v", name, err)
		}
		for d, c := range m {
			deps[d] = c.Condition
		}
	default:
		t.Fatalf("service %s: depends_on of unexpected YAML kind %v", name, s.DependsOn.Kind)
	}
	return deps
}

func (s service) healthy() bool {
	return s.Healthcheck != nil && !s.Healthcheck.Disable && len(s.Healthcheck.Test) > 0 && s.Healthcheck.Test[0] != "NONE"
}

// moduleRoot is the repository root: the parent of this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	return root
}

// loadCompose runs `docker-compose config` on the repository's compose file
// and parses its normalized output.
func loadCompose(t *testing.T, root string, profiles ...string) composeFile {
	t.Helper()
	for i := len(profiles) - 1; i >= 0; i-- {
		profiles = slices.Insert(profiles, i, "--profile")
	}
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose is not installed (%v): run ./scripts/deps.sh (or `make test`, which runs it) to install Debian's docker-compose package", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-f", filepath.Join(root, "docker-compose.yml")}, append(profiles, "config")...)...)
	cmd.Dir = root
	// Values the file takes from the environment must come from its own
	// defaults, not from whoever runs the test.
	cmd.Env = withoutComposeVars(os.Environ())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker-compose config rejected docker-compose.yml: %v\n%s", err, stderr.String())
	}
	var cf composeFile
	if err := yaml.Unmarshal(stdout.Bytes(), &cf); err != nil {
		t.Fatalf("parse docker-compose config output: %v\n%s", err, stdout.String())
	}
	if len(cf.Services) == 0 {
		t.Fatalf("docker-compose config printed no services:\n%s", stdout.String())
	}
	return cf
}

// withoutComposeVars drops the variables docker-compose.yml reads with
// defaults, and compose's own settings.
func withoutComposeVars(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "COMPOSE_") || strings.HasPrefix(k, "KAUDIT_") ||
			strings.HasPrefix(k, "CLICKHOUSE_") || strings.HasPrefix(k, "KAFKA_") || strings.HasPrefix(k, "GRAFANA_") ||
			strings.HasSuffix(k, "_PORT")
	})
}

func TestComposeServices(t *testing.T) {
	itest.Integration(t)
	root := moduleRoot(t)
	cf := loadCompose(t, root)

	for _, name := range []string{"kafka", "clickhouse", "migrate", "correlator", "sink", "traffic", "dashboard", "grafana"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("service %q missing; have %v", name, serviceNames(cf))
		}
	}

	// Third-party images: the official ones, pinned to a tag.
	official := map[string]string{"kafka": "apache/kafka", "clickhouse": "clickhouse/clickhouse-server", "grafana": "grafana/grafana-oss"}
	for name, repo := range official {
		s, ok := cf.Services[name]
		if !ok {
			continue
		}
		if r, _ := splitImage(s.Image); r != repo {
			t.Errorf("service %s: image %q, want the official %s", name, s.Image, repo)
		}
	}
	var kauditImages []string
	for _, name := range serviceNames(cf) {
		s := cf.Services[name]
		if s.built(t, root) {
			kauditImages = append(kauditImages, s.Image)
			continue
		}
		if s.Build.Kind != 0 {
			t.Errorf("service %s: built from something other than the repo's Dockerfile", name)
			continue
		}
		repo, tag := splitImage(s.Image)
		switch {
		case repo == "":
			t.Errorf("service %s: no image", name)
		case strings.Contains(s.Image, "@sha256:"):
			// A digest pins it.
		case tag == "" || tag == "latest":
			t.Errorf("service %s: image %q is not pinned to a version tag", name, s.Image)
		}
	}

	// kaudit's own services: one shared image built from the repo.
	for _, name := range []string{"migrate", "correlator", "sink", "traffic", "dashboard"} {
		if s, ok := cf.Services[name]; ok && !s.built(t, root) {
			t.Errorf("service %s is not built from the repo's Dockerfile (build: .)", name)
		}
	}
	slices.Sort(kauditImages)
	if kauditImages = slices.Compact(kauditImages); len(kauditImages) != 1 || kauditImages[0] == "" {
		t.Errorf("kaudit services should share one named image, have %q", kauditImages)
	}

	// Start order: every dependency exists; waiting for health needs a
	// healthcheck; the migration job must have finished before the sink.
	for _, name := range serviceNames(cf) {
		for dep, cond := range cf.Services[name].dependsOn(t, name) {
			d, ok := cf.Services[dep]
			if !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
				continue
			}
			if cond == "service_healthy" && !d.healthy() {
				t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
	for _, name := range []string{"kafka", "clickhouse", "correlator", "sink"} {
		if s, ok := cf.Services[name]; ok && !s.healthy() {
			t.Errorf("service %s has no healthcheck", name)
		}
	}
	// The kaudit processes are checked on their own /readyz, on the port
	// of their --metrics-addr.
	for _, name := range []string{"correlator", "sink"} {
		s, ok := cf.Services[name]
		if !ok || s.Healthcheck == nil {
			continue
		}
		argv := s.argv(t, name)
		port := ""
		for i, a := range argv {
			if a == "--metrics-addr" && i+1 < len(argv) {
				port = argv[i+1][strings.LastIndex(argv[i+1], ":")+1:]
			}
		}
		want := []string{"CMD", "kaudit", "health", "http://127.0.0.1:" + port + "/readyz"}
		if port == "" || !slices.Equal(s.Healthcheck.Test, want) {
			t.Errorf("service %s: healthcheck %q, want %q (its --metrics-addr port)", name, s.Healthcheck.Test, want)
		}
	}
	if s, ok := cf.Services["sink"]; ok {
		deps := s.dependsOn(t, "sink")
		for dep, want := range map[string]string{"kafka": "service_healthy", "clickhouse": "service_healthy", "migrate": "service_completed_successfully"} {
			if got := deps[dep]; got != want {
				t.Errorf("sink depends_on %s: condition %q, want %q", dep, got, want)
			}
		}
	}
}

// TestComposeCommands runs every kaudit service's command, with --help
// appended, against binaries built from this tree. kong rejects unknown
// subcommands and flags, so exit status 0 proves each one exists.
func TestComposeCommands(t *testing.T) {
	itest.Integration(t)
	root := moduleRoot(t)
	cf := loadCompose(t, root)
	df := readDockerfile(t, root)
	bins := buildBinaries(t, root)

	ran := 0
	for _, name := range serviceNames(cf) {
		s := cf.Services[name]
		if !s.built(t, root) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			argv := s.argv(t, name)
			if len(argv) == 0 {
				t.Fatalf("service %s has no command; the image's default only prints help", name)
			}
			exe := filepath.Base(argv[0])
			if !slices.Contains(df.binaries, exe) {
				t.Errorf("service %s runs %q, which the Dockerfile does not build (it builds %v)", name, exe, df.binaries)
			}
			path, ok := bins[exe]
			if !ok {
				t.Fatalf("service %s runs %q, which is not a binary of ./cmd/... (have %v)", name, exe, sortedKeys(bins))
			}
			help := runHelp(t, path, argv[1:], s.Environment)
			prog := exe
			if len(argv) > 1 && !strings.HasPrefix(argv[1], "-") {
				prog += " " + argv[1] // the subcommand
			}
			for k := range s.Environment {
				if strings.HasPrefix(k, "KAUDIT_") && !strings.Contains(help, "$"+k) {
					t.Errorf("service %s sets %s, which %s does not read (not in its --help)", name, k, prog)
				}
			}
		})
		ran++
	}
	if ran == 0 {
		t.Fatal("no service is built from the repo's Dockerfile")
	}
}

// runHelp runs path with args and --help and the service's environment, and
// returns the help text; the command must exit 0.
func runHelp(t *testing.T, path string, args []string, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append(slices.Clone(args), "--help")...)
	cmd.Dir = t.TempDir()
	cmd.Env = withoutComposeVars(os.Environ())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
	if !strings.Contains(string(out), "Usage:") {
		t.Fatalf("%s %s --help printed no usage:\n%s", filepath.Base(path), strings.Join(args, " "), out)
	}
	return string(out)
}

// buildBinaries builds ./cmd/... once into a temporary directory and
// returns name -> path.
func buildBinaries(t *testing.T, root string) map[string]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, e := range entries {
		bins[strings.TrimSuffix(e.Name(), ".exe")] = filepath.Join(dir, e.Name())
	}
	if len(bins) == 0 {
		t.Fatal("go build ./cmd/... produced no binaries")
	}
	return bins
}

// dockerfile is what the tests read from the Dockerfile.
type dockerfile struct {
	froms    []string // image of each FROM
	binaries []string // names of the ./cmd/<name> packages `go build` builds
	users    []string // arguments of USER
}

var cmdPkg = regexp.MustCompile(`^\./cmd/([A-Za-z0-9._-]+)/?$`)

func readDockerfile(t *testing.T, root string) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	for _, line := range instructions(string(raw)) {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			img := fields[1]
			if strings.HasPrefix(img, "--platform=") && len(fields) > 2 {
				img = fields[2]
			}
			df.froms = append(df.froms, img)
		case "USER":
			df.users = append(df.users, fields[1])
		case "RUN":
			for i, f := range fields {
				if f != "build" || i == 0 || filepath.Base(fields[i-1]) != "go" {
					continue
				}
				for _, arg := range fields[i+1:] {
					if arg == "&&" || arg == ";" {
						break
					}
					if m := cmdPkg.FindStringSubmatch(arg); m != nil {
						df.binaries = append(df.binaries, m[1])
					}
				}
			}
		}
	}
	return df
}

// instructions joins continuation lines and drops comments and blank lines.
func instructions(src string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func TestDockerfile(t *testing.T) {
	itest.Integration(t)
	root := moduleRoot(t)
	df := readDockerfile(t, root)

	// The build stage's Go matches go.mod's go directive (major.minor).
	want, err := goDirective(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var goTags []string
	for _, img := range df.froms {
		if repo, tag := splitImage(img); repo == "golang" || repo == "docker.io/library/golang" || repo == "library/golang" {
			goTags = append(goTags, tag)
		}
	}
	if len(goTags) == 0 {
		t.Fatalf("no FROM golang:<version> stage in the Dockerfile (FROMs: %v)", df.froms)
	}
	for _, tag := range goTags {
		if got := majorMinor(tag); got != want {
			t.Errorf("FROM golang:%s is Go %q, go.mod says go %s", tag, got, want)
		}
	}

	// Every image is pinned.
	for _, img := range df.froms {
		if _, tag := splitImage(img); (tag == "" || tag == "latest") && !strings.Contains(img, "@sha256:") {
			t.Errorf("FROM %s is not pinned to a tag", img)
		}
	}

	// It builds the three binaries, each from an existing main package.
	if len(df.binaries) == 0 {
		t.Fatal("the Dockerfile has no `go build ... ./cmd/<name>`")
	}
	for _, want := range []string{"kaudit", "kaudit-correlator", "kaudit-sink"} {
		if !slices.Contains(df.binaries, want) {
			t.Errorf("the Dockerfile does not build ./cmd/%s (builds %v)", want, df.binaries)
		}
	}
	for _, name := range df.binaries {
		if err := isMainPackage(filepath.Join(root, "cmd", name)); err != nil {
			t.Errorf("the Dockerfile builds ./cmd/%s: %v", name, err)
		}
	}

	// The runtime stage runs as a non-root user.
	if len(df.users) == 0 {
		t.Error("the Dockerfile sets no USER; the image would run as root")
	} else if u := df.users[len(df.users)-1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		t.Errorf("the image runs as %q", u)
	}
}

var goLine = regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`)

func goDirective(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m := goLine.FindSubmatch(raw)
	if m == nil {
		return "", fmt.Errorf("%s: no go directive", path)
	}
	mm := majorMinor(string(m[1]))
	if mm == "" {
		return "", fmt.Errorf("%s: go directive %q is not a version", path, m[1])
	}
	return mm, nil
}

var versionPrefix = regexp.MustCompile(`^(\d+)\.(\d+)`)

// majorMinor returns "1.26" of "1.26.8", "1.26-trixie", "1.26rc1"; "" if
// the string does not start with a version.
func majorMinor(v string) string {
	m := versionPrefix.FindStringSubmatch(v)
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2]
}

var packageMain = regexp.MustCompile(`(?m)^package main\s*$`)

// isMainPackage reports an error unless dir holds a non-test Go file of
// package main.
func isMainPackage(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if packageMain.Match(raw) {
			return nil
		}
	}
	return errors.New("no such main package")
}

// splitImage splits "repo:tag" (a registry port is part of repo). A digest
// is left in the tag.
func splitImage(img string) (repo, tag string) {
	name, digest, hasDigest := strings.Cut(img, "@")
	slash := strings.LastIndex(name, "/")
	if i := strings.LastIndex(name, ":"); i > slash {
		repo, tag = name[:i], name[i+1:]
	} else {
		repo = name
	}
	if hasDigest {
		tag += "@" + digest
	}
	return repo, tag
}

func serviceNames(cf composeFile) []string {
	return sortedKeys(cf.Services)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
