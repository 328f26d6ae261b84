# imdsguard — `make demo` and `make test` are all a new user needs; `make help` lists the rest.

GO          ?= go
PYTHON      ?= python3
BIN         := $(CURDIR)/bin
TOOLS       := $(BIN)/tools
STATICCHECK := $(TOOLS)/staticcheck
# staticcheck is installed through the Go toolchain at a fixed version.
STATICCHECK_VERSION := v0.8.2
# moto, the AWS emulator the integration tests and the demo run, at the version the tests
# know. When moto_server is not on the PATH, `make moto` installs it into a virtual
# environment of the project's own (.venv), which works where the system Python refuses
# pip installs (Debian 12's "externally managed" Python) and needs no root.
MOTO_VERSION := 5.2.1
VENV        := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
PKGS        := ./...
# Binaries as they are shipped: static (no cgo), no symbol table, no DWARF, no local
# paths. The tests build theirs the same way (fakeaws.BuildBinary), so that a build after
# the tests, or the tests after a build, compiles nothing again.
GOBUILD     := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w"

.PHONY: all help build test unit lint demo bench bench-org moto dynalite clean

all: build

## help: list the targets
help:
	@awk -F': ' '/^## / { sub(/^## /, ""); printf "  make %-8s %s\n", $$1, substr($$0, length($$1) + 3) }' $(MAKEFILE_LIST)

## build: bin/imdsguard (the CLI) and bin/imdsguard-demo (the demo), stripped
build:
	@echo "building bin/imdsguard and bin/imdsguard-demo (the first build compiles the AWS SDK: a few minutes)"
	@$(GOBUILD) -o $(BIN)/imdsguard ./cmd/imdsguard
	@$(GOBUILD) -o $(BIN)/imdsguard-demo ./cmd/imdsguard-demo

## test: lint, then every test with the race detector (the integration tests start moto and dynalite themselves)
test: lint moto dynalite
	$(GO) test -race -count=1 $(PKGS)

## unit: the tests that need no emulator, fast
unit:
	$(GO) test -count=1 ./internal/policy/ ./internal/report/ ./internal/message/ ./internal/trigger/

## lint: gofmt, go vet, staticcheck and cfn-lint (template.yaml, member.yaml) must be clean
# (vet, like the binaries, without cgo: it then reuses what they compiled)
lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	CGO_ENABLED=0 $(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	@command -v cfn-lint >/dev/null 2>&1 || $(MAKE) --no-print-directory venv-tool TOOL=cfn-lint
	cfn-lint --non-zero-exit-code warning template.yaml member.yaml

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## moto: make sure moto_server (5.2) is installed (into .venv when it is not on the PATH)
moto:
	@command -v moto_server >/dev/null 2>&1 || $(MAKE) --no-print-directory venv-tool TOOL='moto[server]==$(MOTO_VERSION)'

## dynalite: install dynalite (a DynamoDB emulator with atomic conditional writes) into tools/dynalite, from its lockfile
# Only the ledger's concurrency tests use it. npm runs no install script: dynalite keeps
# its tables in memory, which needs none.
dynalite:
	@test -x tools/dynalite/node_modules/.bin/dynalite || command -v dynalite >/dev/null 2>&1 || \
	  { command -v npm >/dev/null 2>&1 || { echo "dynalite needs Node.js and npm (Debian: apt install nodejs npm)"; exit 1; }; \
	    echo "installing dynalite into tools/dynalite ..."; \
	    npm ci --prefix tools/dynalite --no-audit --no-fund --ignore-scripts --loglevel=error; }

# venv-tool installs the Python package TOOL into the project's virtual environment.
.PHONY: venv-tool
venv-tool:
	@echo "installing $(TOOL) into $(VENV) ..."
	@test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV) || \
	  { echo "could not make a virtual environment: install python3-venv (Debian: apt install python3-venv)"; exit 1; }
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(TOOL)' || \
	  { echo "could not install $(TOOL): pip install '$(TOOL)' by hand and put it on the PATH"; exit 1; }

## demo: plan and remediate a sample fleet of 46 instances in local emulators (no AWS account needed)
demo: build moto
	@$(BIN)/imdsguard-demo

## bench: plan fleets of 2,000 and 10,000 instances; prints API calls, time and peak RSS
bench: build moto
	$(GO) test -run '^$$' -bench '^Benchmark(Plan|Lambda)$$' -benchtime 1x -timeout 60m ./internal/bench/

## bench-org: sweep an organization of 50 accounts x 2 regions x 100 instances from its hub,
## with LookupEvents and then with the Athena query; IMDSGUARD_BENCH_ORG=AxRxN sets the size
bench-org: build moto
	$(GO) test -run '^$$' -bench '^BenchmarkOrganization$$' -benchtime 1x -timeout 180m ./internal/bench/

# build-DetectFunction, build-RemediateFunction, build-VerifyFunction: called by `sam build` (Metadata BuildMethod
# makefile in template.yaml) with ARTIFACTS_DIR set; each writes the function's bootstrap.
LAMBDA_BUILD := GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w"

.PHONY: build-DetectFunction build-RemediateFunction build-VerifyFunction

build-DetectFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: sam build sets it))
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/detect

build-RemediateFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: sam build sets it))
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/remediate

build-VerifyFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: sam build sets it))
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/verify

## clean: remove bin/ and .venv/
clean:
	rm -rf $(BIN) $(VENV) tools/dynalite/node_modules
