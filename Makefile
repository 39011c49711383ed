# mlnode — see README.md. Every target installs what it needs itself.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin/mlnode
TOOLS := $(CURDIR)/bin/tools
STATICCHECK_VERSION := v0.8.2
DATA_DIR ?= ./data
ADDR ?= 127.0.0.1:8080
FUZZTIME ?= 30s
# Packages with goroutines, locks or shared state run under the race detector.
RACE_PKGS := ./...

.PHONY: build run test test-race test-unit lint check fuzz bench bench-http bench-pit examples clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mlnode

run: build
	./$(BIN) serve --data-dir $(DATA_DIR) --addr $(ADDR)

# The whole suite: vet, unit and HTTP tests, end-to-end tests of the real
# binary, all under the race detector. No timing assertions.
test: examples
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m $(RACE_PKGS)
	# Again with every store write run twice, the first run rolled back, as
	# the group commit does when another write in its batch fails: a write
	# that is not safe to re-run fails here (store.Options.RerunWritesForTesting).
	MLNODE_TEST_RERUN_WRITES=1 $(GO) test -count=1 -timeout 5m ./store/... ./appliance/... ./scheduler/...

test-race: test

# Quick loop while editing: no race detector.
test-unit:
	$(GO) test -count=1 ./...

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	@# Dependency direction (docs/RATIONALE.md): appliance imports nothing of ours outside appliance;
	@# store, wasm and scheduler never import each other.
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./appliance/... | grep -E 'mlnode/(store|wasm|scheduler|ui|cmd)' || true); \
	  if [ -n "$$bad" ]; then echo "appliance imports an implementation: $$bad"; exit 1; fi
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./store/... | grep -E 'mlnode/(wasm|scheduler|appliance/httpapi)' || true); \
	  if [ -n "$$bad" ]; then echo "store imports a sibling: $$bad"; exit 1; fi

# Fails if formatting or go mod tidy would change the tree.
check: lint
	$(GO) mod tidy
	@git diff --exit-code go.mod go.sum || (echo "go mod tidy changed go.mod/go.sum: commit the result"; exit 1)

# Every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Go benchmarks with allocations, then the HTTP load benchmarks (see BENCHMARKS.md).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 -timeout 60m ./...
	$(MAKE) bench-http
	$(MAKE) bench-pit

# The offline store end to end against DuckDB's ASOF JOIN (needs node and
# npm; generates 10M events first, several minutes).
bench-pit: build
	$(GO) run ./bench/pit -bin ./$(BIN)

bench-http: build
	$(GO) run ./bench/load -bin ./$(BIN)

# The example models and transforms (Go and C) as .wasm under examples/build;
# installs clang and lld when missing.
examples:
	bash examples/build.sh

clean:
	rm -rf bin examples/build
