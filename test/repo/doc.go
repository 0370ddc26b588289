// Package repo checks the repository itself rather than the code: what is
// tracked, and whether go.mod says what the code imports.
//
// Contract:
//
//   - No tracked file is larger than 1 MiB, and none is an executable (ELF,
//     Mach-O in either byte order, or PE with a valid "PE\0\0" header). A
//     committed binary once made every clone 74 MB heavier for nothing:
//     binaries are build outputs, and .gitignore lists each of them.
//   - What is checked is the index (`git ls-files --stage` and the blobs it
//     names), so the check sees exactly what a commit would contain,
//     whatever the working tree holds.
//   - .gitignore covers every build output the Makefile, the hack scripts
//     and a bare `go build` at the root write.
//   - `go mod tidy -diff` prints nothing: direct dependencies are not marked
//     indirect and nothing unused is required. `make test` also runs it
//     before any test, so an untidy go.mod fails fast there.
//
// The tests need git and go on the PATH and skip, saying so, without them;
// they need no cluster.
package repo
