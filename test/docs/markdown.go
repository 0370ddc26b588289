// Package docs runs the documentation: the shell blocks of docs/ and
// runbooks/ marked ```sh runnable are executed, in order, against a real
// local control plane with the controller, the simulated mesh and the built
// kubectl plugin, and the illustrative YAML is checked for what can be
// checked without a cluster (policies parse, every Event reason and alert
// has its runbook, the documented PromQL is the PromQL the controller
// sends).
//
// Conventions for doc writers:
//
//   - ```sh runnable marks a block the test runs with bash -euo pipefail,
//     each in its own shell, in the order of the file, with kubectl and
//     kubectl-meshcanary on PATH and KUBECONFIG set. Blocks of one file
//     share a working directory and the cluster state they leave behind;
//     every file starts from a fresh example app in namespace payments
//     (hack/demo/app.yaml), set up as the file's entry in the test's
//     table says.
//   - Blocks must be bounded in time: kubectl wait --timeout, the plugin's
//     --wait --timeout, timeout(1). Never sleep to wait for something.
//   - An HTML comment line <!-- doctest: ACTION --> before a runnable block
//     makes the test do ACTION before running it; ACTIONs are
//     "stop-controller" and "start-controller" (for runbooks about a
//     controller that is gone).
package docs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// block is one fenced code block of a Markdown file.
type block struct {
	// line is the 1-based line of the opening fence.
	line int
	// lang is the first word of the info string ("sh", "yaml"), flags the
	// rest ("runnable").
	lang  string
	flags []string
	body  string
	// directives are the doctest actions written before the block.
	directives []string
}

func (b block) runnable() bool {
	if b.lang != "sh" && b.lang != "bash" {
		return false
	}
	for _, f := range b.flags {
		if f == "runnable" {
			return true
		}
	}
	return false
}

const directivePrefix = "<!-- doctest:"

// parseMarkdown lists the fenced code blocks of a Markdown document. Fences
// are ``` or ~~~ (three or more) at the start of a line, as CommonMark; an
// unterminated block is an error, since it would silently swallow the rest
// of the document.
func parseMarkdown(data []byte) ([]block, error) {
	var blocks []block
	var pending []string
	var cur *block
	var fence string
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				cur.body = body.String()
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		if strings.HasPrefix(trimmed, directivePrefix) {
			d := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(trimmed, directivePrefix), "-->"))
			pending = append(pending, d)
			continue
		}
		if f := openingFence(trimmed); f != "" {
			info := strings.Fields(strings.TrimSpace(trimmed[len(f):]))
			cur = &block{line: n, directives: pending}
			if len(info) > 0 {
				cur.lang, cur.flags = info[0], info[1:]
			}
			pending = nil
			fence = f
			body.Reset()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: code block never closed", cur.line)
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("doctest directive %q is not followed by a code block", pending[0])
	}
	return blocks, nil
}

// openingFence returns the fence a line opens with (``` or ~~~, possibly
// longer), or "".
func openingFence(line string) string {
	for _, c := range []string{"`", "~"} {
		if !strings.HasPrefix(line, c+c+c) {
			continue
		}
		i := 0
		for i < len(line) && line[i:i+1] == c {
			i++
		}
		return line[:i]
	}
	return ""
}

func readBlocks(path string) ([]block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blocks, err := parseMarkdown(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return blocks, nil
}
