# imdsguard — `make demo` and `make test` are all a new user needs.

GO          ?= go
BIN         := $(CURDIR)/bin
TOOLS       := $(BIN)/tools
STATICCHECK := $(TOOLS)/staticcheck
# staticcheck is installed through the Go toolchain at a fixed version.
STATICCHECK_VERSION := v0.8.2
PKGS        := ./...

.PHONY: all build test unit lint demo bench moto clean

all: build

## build: the imdsguard CLI in bin/
build:
	$(GO) build -trimpath -o $(BIN)/imdsguard ./cmd/imdsguard

## test: lint, then every test (integration tests start moto_server themselves)
test: lint moto
	$(GO) test -race -count=1 $(PKGS)

## unit: the tests that need no emulator, fast
unit:
	$(GO) test -count=1 ./internal/policy/ ./internal/report/

## lint: gofmt, go vet and staticcheck must be clean
lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	@command -v cfn-lint >/dev/null 2>&1 || python3 -m pip install --quiet cfn-lint || \
	  { echo "cfn-lint is missing and could not be installed: pip install cfn-lint"; exit 1; }
	cfn-lint --non-zero-exit-code warning template.yaml

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## build-DetectFunction, build-RemediateFunction: called by `sam build` (Metadata BuildMethod
## makefile in template.yaml) with ARTIFACTS_DIR set; each writes the function's bootstrap.
LAMBDA_BUILD := GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w"

.PHONY: build-DetectFunction build-RemediateFunction

build-DetectFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: sam build sets it))
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/detect

build-RemediateFunction:
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set: sam build sets it))
	$(LAMBDA_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/remediate

## moto: make sure the AWS emulator the integration tests start is installed
moto:
	@command -v moto_server >/dev/null 2>&1 || python3 -m pip install --quiet "moto[server]>=5.2,<5.3" || \
	  { echo "moto_server is missing and could not be installed: pip install 'moto[server]>=5.2,<5.3'"; exit 1; }

## demo: plan a sample fleet of 46 instances in local emulators (no AWS account needed)
demo: build moto
	$(BIN)/imdsguard demo

## bench: plan fleets of 2,000 and 10,000 instances; prints API calls, time and peak RSS
bench: build moto
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./internal/bench/

clean:
	rm -rf $(BIN)
