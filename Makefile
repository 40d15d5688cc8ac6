# kaudit — see README.md. The two set-up commands are `make demo` and `make test`.
GO       ?= go
DURATION ?=
BENCHTIME ?= 1s

.PHONY: all build demo test deps vet bench bench-plugin plugin fuzz clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

## demo: the whole pipeline on the embedded broker and a local ClickHouse.
##       DURATION=30s make demo stops by itself and prints a summary.
demo: deps
	$(GO) run ./cmd/kaudit demo $(if $(DURATION),--duration=$(DURATION))

## test: unit and integration tests (kfake broker, real ClickHouse server).
test: deps vet
	$(GO) test -count=1 -timeout 30m ./...

deps:
	@./scripts/deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

## bench: the speed goals, as Go benchmarks.
bench: deps bench-plugin
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

## plugin: the librdkafka plugin (kcat, confluent-kafka, ... load it with
##         plugin.library.paths=bin/kaudit-rdkafka.so).
plugin:
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w' -o bin/kaudit-rdkafka.so ./interceptors/rdkafka
	@rm -f bin/kaudit-rdkafka.h

## bench-plugin: kcat producing 200,000 messages with and without the plugin.
bench-plugin: deps plugin
	$(GO) run ./interceptors/rdkafka/benchkcat -plugin bin/kaudit-rdkafka.so -n 200000

## fuzz: run each fuzz target for a while.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalEvent -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalVerdict -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeEvent -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzParseBlogRecord -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalTrail -fuzztime=30s ./processors/correlator/

clean:
	rm -rf bin .kaudit
