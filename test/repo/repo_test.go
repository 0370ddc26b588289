package repo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxTrackedSize is the largest file the repository may track. Nothing
// hand-written comes near it; anything above it is an artifact (a binary,
// a dump, a recording) that belongs in a release or a cache.
const maxTrackedSize = 1 << 20

// executableFormat names the executable format data is in, or returns ""
// when data is not an executable. It recognises ELF, Mach-O (thin 32- and
// 64-bit and fat, in both byte orders) and PE. A PE file starts with "MZ",
// which a text file may too, so "MZ" counts only when the DOS header's
// pointer at 0x3c leads to the "PE\0\0" signature.
func executableFormat(data []byte) string {
	if bytes.HasPrefix(data, []byte("\x7fELF")) {
		return "ELF"
	}
	if len(data) >= 4 {
		switch binary.BigEndian.Uint32(data) {
		case 0xfeedface, 0xcefaedfe, 0xfeedfacf, 0xcffaedfe, 0xcafebabe, 0xbebafeca:
			return "Mach-O"
		}
	}
	const peOffsetAt = 0x3c
	if bytes.HasPrefix(data, []byte("MZ")) && len(data) >= peOffsetAt+4 {
		off := uint64(binary.LittleEndian.Uint32(data[peOffsetAt:]))
		if off+4 <= uint64(len(data)) && bytes.Equal(data[off:off+4], []byte("PE\x00\x00")) {
			return "PE"
		}
	}
	return ""
}

// trackedFileProblem says why a tracked file of this size and content does
// not belong in the repository, or returns "" when it does. content may be
// nil for a file over the limit: its size alone decides.
func trackedFileProblem(size int64, content []byte) string {
	if size > maxTrackedSize {
		return fmt.Sprintf("%d bytes, over the %d-byte limit", size, maxTrackedSize)
	}
	if f := executableFormat(content); f != "" {
		return f + " executable"
	}
	return ""
}

type indexEntry struct {
	mode, object, path string
}

// git runs git in dir and returns its standard output.
func git(dir string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// trackedProblems lists, one line per file, every file in root's git index
// that trackedFileProblem refuses. It reads blobs from the index, not the
// working tree, so it judges exactly what a commit would hold.
func trackedProblems(root string) ([]string, error) {
	out, err := git(root, nil, "ls-files", "-z", "--stage")
	if err != nil {
		return nil, err
	}
	var entries []indexEntry
	for rec := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if rec == "" {
			continue
		}
		// "<mode> <object> <stage>\t<path>"
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("unexpected git ls-files record %q", rec)
		}
		if f[0] == "160000" { // a submodule: its commit is not a blob here
			continue
		}
		entries = append(entries, indexEntry{mode: f[0], object: f[1], path: path})
	}
	if len(entries) == 0 {
		return nil, nil
	}

	var ids strings.Builder
	for _, e := range entries {
		ids.WriteString(e.object + "\n")
	}
	out, err = git(root, strings.NewReader(ids.String()), "cat-file", "--batch-check=%(objectsize)")
	if err != nil {
		return nil, err
	}
	sizes := strings.Fields(string(out))
	if len(sizes) != len(entries) {
		return nil, fmt.Errorf("git cat-file answered %d sizes for %d objects", len(sizes), len(entries))
	}

	// Read the content of the files under the limit in one stream; the
	// others are refused on their size without reading them.
	var problems []string
	var small []indexEntry
	var smallIDs strings.Builder
	for i, e := range entries {
		size, err := strconv.ParseInt(sizes[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("size of %s: %w", e.path, err)
		}
		if p := trackedFileProblem(size, nil); p != "" {
			problems = append(problems, e.path+": "+p)
			continue
		}
		small = append(small, e)
		smallIDs.WriteString(e.object + "\n")
	}
	out, err = git(root, strings.NewReader(smallIDs.String()), "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(bytes.NewReader(out))
	for _, e := range small {
		content, err := nextBlob(r)
		if err != nil {
			return nil, fmt.Errorf("reading %s from the index: %w", e.path, err)
		}
		if p := trackedFileProblem(int64(len(content)), content); p != "" {
			problems = append(problems, e.path+": "+p)
		}
	}
	return problems, nil
}

// nextBlob reads one "<object> <type> <size>\n<content>\n" record of
// `git cat-file --batch`.
func nextBlob(r *bufio.Reader) ([]byte, error) {
	header, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	f := strings.Fields(header)
	if len(f) != 3 {
		return nil, fmt.Errorf("unexpected header %q", header)
	}
	size, err := strconv.Atoi(f[2])
	if err != nil {
		return nil, fmt.Errorf("header %q: %w", header, err)
	}
	content := make([]byte, size+1) // and the record's closing newline
	if _, err := io.ReadFull(r, content); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	return content[:size], nil
}

// needTool skips the test when name is not installed: the checks are
// about the repository, not about the machine running them.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not on the PATH: %v", name, err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	needTool(t, "git")
	out, err := git(".", nil, "rev-parse", "--show-toplevel")
	if err != nil {
		t.Fatalf("finding the repository root: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// peImage builds a minimal PE file: a DOS header whose pointer at 0x3c
// leads to the "PE\0\0" signature at offset at.
func peImage(at uint32) []byte {
	b := make([]byte, max(int(at)+24, 0x40))
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], at)
	copy(b[at:], "PE\x00\x00")
	return b
}

func TestTrackedFileProblem(t *testing.T) {
	elf := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 57)...)
	peOffsetPastEnd := peImage(0x80)[:0x80]
	peWrongSignature := peImage(0x80)
	copy(peWrongSignature[0x80:], "NE\x00\x00")
	cases := []struct {
		name    string
		size    int64
		content []byte
		want    string // "" when the file is allowed, else a fragment of the reason
	}{
		{"an ordinary Go source file is allowed", 26, []byte("package repo\n\nfunc f() {}\n"), ""},
		{"an empty file is allowed", 0, nil, ""},
		{"a file of exactly 1 MiB is allowed", maxTrackedSize, []byte("text"), ""},
		{"a file one byte over 1 MiB is refused", maxTrackedSize + 1, nil, "over the 1048576-byte limit"},
		{"a 74 MB file is refused without reading it", 73676578, nil, "over the"},
		{"an ELF executable is refused", int64(len(elf)), elf, "ELF executable"},
		{"a 32-bit big-endian Mach-O is refused", 8, []byte{0xfe, 0xed, 0xfa, 0xce, 0, 0, 0, 7}, "Mach-O executable"},
		{"a 32-bit little-endian Mach-O is refused", 8, []byte{0xce, 0xfa, 0xed, 0xfe, 7, 0, 0, 0}, "Mach-O executable"},
		{"a 64-bit big-endian Mach-O is refused", 8, []byte{0xfe, 0xed, 0xfa, 0xcf, 1, 0, 0, 7}, "Mach-O executable"},
		{"a 64-bit little-endian Mach-O is refused", 8, []byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, "Mach-O executable"},
		{"a big-endian fat Mach-O is refused", 8, []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2}, "Mach-O executable"},
		{"a little-endian fat Mach-O is refused", 8, []byte{0xbe, 0xba, 0xfe, 0xca, 2, 0, 0, 0}, "Mach-O executable"},
		{"a PE executable is refused", 0x98, peImage(0x80), "PE executable"},
		{"a text file starting with MZ is allowed", 38, []byte("MZ is the state code, not a DOS stub.\n"), ""},
		{"a short file starting with MZ is allowed", 2, []byte("MZ"), ""},
		{"an MZ file whose PE pointer leads past its end is allowed", 0x80, peOffsetPastEnd, ""},
		{"an MZ file whose PE pointer leads to something else is allowed", 0x98, peWrongSignature, ""},
		{"ELF's magic later in a file is not an ELF", 9, []byte("see \x7fELF"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := trackedFileProblem(c.size, c.content)
			switch {
			case c.want == "" && got != "":
				t.Errorf("refused: %s", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("reason %q, want one containing %q", got, c.want)
			}
		})
	}
}

// TestTrackedProblemsReadsTheIndex builds a throwaway repository, so the
// whole path (ls-files, sizes, blobs) is seen to catch what it must, and to
// judge the index rather than the working tree.
func TestTrackedProblemsReadsTheIndex(t *testing.T) {
	needTool(t, "git")
	dir := t.TempDir()
	files := map[string][]byte{
		"README.md":       []byte("# hello\n"),
		"tool":            append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 100)...),
		"dir/big.dat":     bytes.Repeat([]byte("x"), maxTrackedSize+1),
		"dir/exactly.dat": bytes.Repeat([]byte("y"), maxTrackedSize),
		"setup.exe":       peImage(0x40),
		"notes/mz.txt":    []byte("MZ: see the map\n"),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "--", "."}} {
		if _, err := git(dir, nil, args...); err != nil {
			t.Fatal(err)
		}
	}
	// The index keeps the ELF file even once the working copy is text.
	if err := os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := trackedProblems(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dir/big.dat: 1048577 bytes, over the 1048576-byte limit",
		"setup.exe: PE executable",
		"tool: ELF executable",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNoBinaryOrLargeFileIsTracked is the check itself, on this
// repository's index.
func TestNoBinaryOrLargeFileIsTracked(t *testing.T) {
	root := repoRoot(t)
	problems, err := trackedProblems(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("tracked: %s; remove it with `git rm --cached` and list it in .gitignore if it is a build output", p)
	}
}

// TestBuildOutputsAreIgnored keeps .gitignore in step with what the build
// writes into the work tree.
func TestBuildOutputsAreIgnored(t *testing.T) {
	root := repoRoot(t)
	cases := []struct {
		name, path string
	}{
		{"make build's output is ignored", "bin/meshcanary"},
		{"go build ./cmd/meshcanary at the root is ignored", "meshcanary"},
		{"the kubectl plugin built at the root is ignored", "kubectl-meshcanary"},
		{"go build ./test/meshsim/cmd/meshsim at the root is ignored", "meshsim"},
		{"go build ./hack/localcluster at the root is ignored", "localcluster"},
		{"go test -c output is ignored", "pkg/stages/stages.test"},
		{"make test's reports are ignored", ".cache/unit.json"},
		{"coverage profiles are ignored", "cover.out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// --no-index: the answer must not depend on whether the path
			// happens to be tracked right now.
			_, err := git(root, nil, "check-ignore", "-q", "--no-index", "--", c.path)
			var exit *exec.ExitError
			switch {
			case errors.As(err, &exit) && exit.ExitCode() == 1:
				t.Errorf("%s is not ignored: add it to .gitignore", c.path)
			case err != nil:
				t.Fatal(err)
			}
		})
	}
}

// TestGoModIsTidy fails when go.mod or go.sum is not what `go mod tidy`
// would write (for instance a direct dependency marked indirect).
func TestGoModIsTidy(t *testing.T) {
	needTool(t, "go")
	root := repoRoot(t)
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("go mod tidy -diff (%v) is not empty; run `go mod tidy`:\n%s", err, out)
	}
}
