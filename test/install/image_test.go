package install

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meshcanary/meshcanary/test/harness"
)

// There is no container engine here, so the image is checked through what
// decides its behaviour: the Dockerfile's instructions, the binary it
// builds, and the chart that runs it.

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	from  string
	name  string
	instr []instruction
}

func parseDockerfile(t testing.TB) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	harness.Must(t, err)
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			var image, name string
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					name = fields[i+1]
					i++
				default:
					image = fields[i]
				}
			}
			stages = append(stages, stage{from: image, name: name})
			return
		}
		if len(stages) == 0 {
			return // ARGs before the first FROM
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimSpace(line); cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue // a comment inside a continued instruction
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	harness.Must(t, sc.Err())
	flush()
	if len(stages) < 2 {
		t.Fatalf("want a build stage and a final stage in the Dockerfile, found %d stages", len(stages))
	}
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (s stage) last(t testing.TB, cmd string) string {
	t.Helper()
	all := s.all(cmd)
	if len(all) == 0 {
		t.Fatalf("the final stage of the Dockerfile has no %s", cmd)
	}
	return all[len(all)-1]
}

func jsonArray(t testing.TB, what, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("%s %s is not in exec form (a JSON array): %v", what, s, err)
	}
	return out
}

func TestImageRunsTheWayTheChartRunsIt(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]

	var goBuild string
	for _, r := range build.all("RUN") {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}
	t.Run("the build stage uses the Go version of go.mod", func(t *testing.T) {
		mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
		harness.Must(t, err)
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
		if m == nil {
			t.Fatal("no go line in go.mod")
		}
		if want := "golang:" + string(m[1]); !strings.HasPrefix(build.from, want) {
			t.Errorf("build stage FROM %s, want %s to match go.mod", build.from, want)
		}
	})
	t.Run("the binary is built static from ./cmd/meshcanary", func(t *testing.T) {
		for _, want := range []string{"CGO_ENABLED=0", "./cmd/meshcanary", "-o /out/meshcanary"} {
			if !strings.Contains(goBuild, want) {
				t.Errorf("the go build RUN lacks %q: %s", want, goBuild)
			}
		}
	})
	t.Run("the final image is distroless static as the non-root user", func(t *testing.T) {
		if !strings.Contains(final.from, "distroless/static") || !strings.HasSuffix(final.from, ":nonroot") {
			t.Errorf("final stage FROM %s, want distroless/static ...:nonroot", final.from)
		}
		if cp := final.last(t, "COPY"); cp != "--from="+build.name+" /out/meshcanary /meshcanary" {
			t.Errorf("final stage COPY %q, want the build stage's /out/meshcanary at /meshcanary", cp)
		}
	})

	user := final.last(t, "USER")
	uid, gid, _ := strings.Cut(user, ":")
	entrypoint := jsonArray(t, "ENTRYPOINT", final.last(t, "ENTRYPOINT"))
	cmd := jsonArray(t, "CMD", final.last(t, "CMD"))
	t.Run("the image user is numeric and not root", func(t *testing.T) {
		n, err := strconv.Atoi(uid)
		if err != nil || n == 0 {
			t.Errorf("USER %s: the kubelet can only enforce runAsNonRoot for a numeric non-zero user", user)
		}
	})

	dep := find(t, render(t, "meshcanary", "meshcanary-system"), "Deployment", "")
	c := containerNamed(t, dep, "controller")
	t.Run("the chart runs the image's entrypoint and subcommand", func(t *testing.T) {
		if got := stringSlice(c["command"]); !slices.Equal(got, entrypoint) {
			t.Errorf("chart command %v, image ENTRYPOINT %v", got, entrypoint)
		}
		// The chart's args replace CMD, so they must start with it.
		if args := stringSlice(c["args"]); len(args) < len(cmd) || !slices.Equal(args[:len(cmd)], cmd) {
			t.Errorf("chart args %v do not start with the image CMD %v", args, cmd)
		}
	})
	t.Run("the chart runs as the image's user", func(t *testing.T) {
		pod := nested(t, dep.Object, "spec", "template", "spec", "securityContext")
		ctr, _ := c["securityContext"].(map[string]any)
		get := func(k string) any {
			if v, ok := ctr[k]; ok {
				return v
			}
			return pod[k]
		}
		if got := strconv.FormatInt(toInt(get("runAsUser")), 10); got != uid {
			t.Errorf("chart runAsUser %s, image USER %s", got, uid)
		}
		if gid != "" {
			if got := strconv.FormatInt(toInt(get("runAsGroup")), 10); got != gid {
				t.Errorf("chart runAsGroup %s, image group %s", got, gid)
			}
		}
		if get("runAsNonRoot") != true {
			t.Error("chart does not set runAsNonRoot")
		}
	})
	t.Run("the image exposes the chart's ports", func(t *testing.T) {
		exposed := strings.Fields(strings.Join(final.all("EXPOSE"), " "))
		for _, p := range c["ports"].([]any) {
			port := strconv.FormatInt(toInt(p.(map[string]any)["containerPort"]), 10)
			if !slices.Contains(exposed, port) {
				t.Errorf("container port %s is not EXPOSEd (%v)", port, exposed)
			}
		}
	})
}

func TestControllerBinaryIsStaticallyLinked(t *testing.T) {
	t.Parallel()
	bin := controllerBinary(t)
	info, err := buildinfo.ReadFile(bin)
	harness.Must(t, err)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	// Go records no -ldflags with -trimpath (they may hold paths).
	t.Logf("built as the Dockerfile does: CGO_ENABLED=%s -trimpath=%s", settings["CGO_ENABLED"], settings["-trimpath"])
	if settings["CGO_ENABLED"] != "0" {
		t.Errorf("the binary was built with CGO_ENABLED=%q, want 0", settings["CGO_ENABLED"])
	}
	f, err := elf.Open(bin)
	harness.Must(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: the binary needs a dynamic loader, which distroless/static lacks", p.Type)
		}
	}
	for _, name := range []string{".interp", ".dynamic"} {
		if f.Section(name) != nil {
			t.Errorf("section %s present: the binary is dynamically linked", name)
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: the Dockerfile's -ldflags=\"-s -w\" did not reach the build")
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary imports shared libraries %v", libs)
	}
}

// TestImageBuildContextHoldsEveryPackageOfTheBinary guards the allowlist in
// .dockerignore and the COPY lines: a package added outside them would build
// here and fail only in the image build.
func TestImageBuildContextHoldsEveryPackageOfTheBinary(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	r := run(context.Background(), root, nil, "go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/meshcanary")
	if r.err != nil {
		t.Fatal(r)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	harness.Must(t, err)
	var allowed []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			allowed = append(allowed, strings.TrimSuffix(p, "/"))
		}
	}
	var copied []string
	for _, in := range parseDockerfile(t)[0].instr {
		if in.cmd == "COPY" {
			f := strings.Fields(in.args)
			for _, src := range f[:len(f)-1] {
				copied = append(copied, strings.TrimSuffix(src, "/"))
			}
		}
	}
	for _, need := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(allowed, need) || !slices.Contains(copied, need) {
			t.Errorf("%s is not in the build context (.dockerignore allows %v, COPY takes %v)", need, allowed, copied)
		}
	}
	for _, dir := range strings.Fields(r.stdout) {
		rel, err := filepath.Rel(root, dir)
		harness.Must(t, err)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !slices.Contains(allowed, top) || !slices.Contains(copied, top) {
			t.Errorf("package %s is built into the binary but %s/ is not in the image build (.dockerignore allows %v, COPY takes %v)", rel, top, allowed, copied)
		}
	}
}
