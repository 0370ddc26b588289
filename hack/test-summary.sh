#!/usr/bin/env bash
# Prints the closing count of `make test` over gotestsum's JSON files.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./hack/testsummary "$@"
