# amtriage — see README.md.
GO        ?= go
BIN       ?= bin/amtriage
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -s -w -X main.version=$(VERSION)
CONFIG    ?=
FUZZTIME  ?= 30s
BENCHTIME ?= 1x

.PHONY: all build run test bench lint fuzz clean

all: lint test build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/amtriage

## run: build and start the daemon on the embedded default config (127.0.0.1:9095, store ./data).
run: build
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

## test: every test, unit and integration (real Alertmanager when installed; CI=true makes it required).
test:
	$(GO) test -count=1 -race -timeout 20m ./...

## bench: the benchmarks BENCHMARKS.md reports.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## fuzz: run each fuzz target briefly (FUZZTIME per target).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMessage$$' -fuzztime $(FUZZTIME) ./webhook/
	$(GO) test -run '^$$' -fuzz '^FuzzWebhookPath$$' -fuzztime $(FUZZTIME) ./triage/
	$(GO) test -run '^$$' -fuzz '^FuzzWebhookFields$$' -fuzztime $(FUZZTIME) ./triage/
	$(GO) test -run '^$$' -fuzz '^FuzzSlackActionPath$$' -fuzztime $(FUZZTIME) ./triage/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSignal$$' -fuzztime $(FUZZTIME) ./severity/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./actions/pdin/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) ./actions/pdin/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./actions/slackin/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeInteraction$$' -fuzztime $(FUZZTIME) ./actions/slackin/

clean:
	rm -rf bin
