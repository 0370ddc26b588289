# meshcanary: the two commands a newcomer needs are `make demo` and `make test`.
# Every tool they need is built or installed by hack/tools.sh into a cache
# outside the work tree (first run: ~15 minutes on 2 cores; then seconds).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
TOOLS     := hack/tools.sh
BIN_DIR    = $(shell $(TOOLS) bindir)
GOTESTSUM  = $(BIN_DIR)/gotestsum
# Packages that need the local control plane; everything else is a unit test.
INTEGRATION_PKGS = $(shell $(GO) list ./internal/testenv/... ./test/... | grep -v -e /test/bench -e /test/decisions -e /test/scale)
# test/decisions is a pure simulation: its tests are unit tests.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e /internal/testenv -e /test/) $(shell $(GO) list ./test/decisions)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## build and cache the local control plane and test tools, golangci-lint included (idempotent)
	@$(TOOLS) all
	@$(TOOLS) gotestsum
	@$(TOOLS) lint

.PHONY: build
build: ## build bin/meshcanary
	$(GO) build -o bin/meshcanary ./cmd/meshcanary

.PHONY: test
test: tools ## run every check: go.mod tidy, lint, unit (with -race), integration and end-to-end against a real local control plane
	@mkdir -p .cache
	@# The cheap checks come first so that CI (.ci/run is `make test`) fails
	@# in seconds on an untidy go.mod or a broken architecture rule, and so
	@# that those rules are enforced at all.
	@echo "== go mod tidy -diff (must print nothing; \`go mod tidy\` fixes it)"
	$(GO) mod tidy -diff
	@echo "== lint (go vet, golangci-lint with the pkg/stages rules)"
	@$(MAKE) --no-print-directory lint
	@echo "== unit tests (-race)"
	$(GOTESTSUM) --format pkgname-and-test-fails --jsonfile .cache/unit.json -- -race -count=1 $(UNIT_PKGS)
	@echo "== integration and end-to-end tests (local control plane, Prometheus)"
	$(GOTESTSUM) --format pkgname-and-test-fails --jsonfile .cache/integration.json -- -count=1 -timeout 45m -p 1 $(INTEGRATION_PKGS)
	@hack/test-summary.sh .cache/unit.json .cache/integration.json

.PHONY: test-unit
test-unit: tools ## unit tests only
	$(GOTESTSUM) --format pkgname-and-test-fails -- -race -count=1 $(UNIT_PKGS)

.PHONY: generate
generate: ## regenerate the deep-copy code and CRDs from pkg/apis (controller-gen), then manifests/install from the chart
	@hack/verify-manifests.sh --update

.PHONY: verify
verify: ## check that the generated files (deep-copy code, CRDs, manifests/install) are up to date; make generate fixes them
	@hack/verify-manifests.sh

.PHONY: demo
demo: tools build ## bring up a local control plane, Prometheus, the simulated mesh and the controller, and walk releases through their stages
	@hack/demo.sh

.PHONY: demo-down
demo-down: ## stop what KEEP=1 make demo left running
	@hack/demo.sh down

.PHONY: lint
lint: ## go vet and golangci-lint (architecture rules for pkg/stages)
	$(GO) vet ./...
	@$(TOOLS) lint
	$(BIN_DIR)/golangci-lint run ./...

.PHONY: fmt
fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

.PHONY: bench
bench: tools ## benchmarks against the local control plane; figures go to docs/performance.md
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 90m ./pkg/... ./test/bench/ ./test/decisions/

.PHONY: bench-scale
bench-scale: tools ## N apps releasing at once against the real binary (SCALE_N=500,1000); figures go to docs/performance.md
	$(GO) test -run '^$$' -bench Scale -benchtime 1x -count 1 -timeout 120m ./test/scale/

.PHONY: bench-decisions
bench-decisions: ## simulated releases: meshcanary's decisions next to Flagger- and Argo-like rules; figures go to docs/decision-quality.md
	$(GO) test -run '^$$' -bench DecisionQuality -benchtime 1x -count 1 -timeout 30m ./test/decisions/

.PHONY: local-cluster-up local-cluster-down
local-cluster-up: ## start the local control plane in the background
	@hack/local-cluster.sh up
local-cluster-down: ## stop it
	@hack/local-cluster.sh down
