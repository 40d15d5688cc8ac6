# kaudit — see README.md. The two set-up commands are `make demo` and `make test`.
GO       ?= go
DURATION ?=
BENCHTIME ?= 1s
# The librdkafka plugin is cgo against librdkafka-dev: built and tested only
# with this tag, so `go build ./...` needs nothing but Go.
TAGS     ?= rdkafka

.PHONY: all build demo test test-unit test-integration deps vet bench bench-sink bench-plugin bench-proxy plugin fuzz clean

all: build

build:
	$(GO) build -o bin/ ./cmd/kaudit ./cmd/kaudit-correlator ./cmd/kaudit-sink ./cmd/kaudit-proxy

## demo: the whole pipeline on the embedded broker and a local ClickHouse.
##       DURATION=30s make demo stops by itself and prints a summary.
demo: deps
	$(GO) run ./cmd/kaudit demo $(if $(DURATION),--duration=$(DURATION))

## test: every test: unit and integration (kfake broker, real ClickHouse
##       server, kcat, librdkafka, confluent-kafka, Chromium).
test: deps vet
	$(GO) test -tags '$(TAGS)' -count=1 -timeout 60m ./...

## test-unit: the pure-logic tests; needs nothing but Go.
test-unit:
	$(GO) vet ./...
	$(GO) test -short -count=1 ./...

## test-integration: the same as test (integration tests need the unit tier).
test-integration: test

deps:
	@./scripts/deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet -tags '$(TAGS)' ./...

## bench: the speed goals, as Go benchmarks (among them the sink against
##        clickhouse-client, BenchmarkSinkVsClickHouseClient; alone: make bench-sink).
bench: deps bench-plugin bench-proxy
	$(GO) test -tags '$(TAGS)' -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

## plugin: the librdkafka plugin (kcat, confluent-kafka, ... load it with
##         plugin.library.paths=bin/kaudit-rdkafka.so).
plugin:
	CGO_ENABLED=1 $(GO) build -tags rdkafka -buildmode=c-shared -trimpath -ldflags='-s -w' -o bin/kaudit-rdkafka.so ./cmd/kaudit-rdkafka
	@rm -f bin/kaudit-rdkafka.h

## bench-sink: kaudit-sink writing 300,000 verdicts vs clickhouse-client, same run.
bench-sink: deps
	$(GO) test -run='^$$' -bench=SinkVsClickHouseClient -benchtime=1x ./cmd/kaudit-sink/

## bench-plugin: kcat producing 200,000 messages with and without the plugin.
bench-plugin: deps plugin
	$(GO) run ./cmd/kaudit-rdkafka/benchkcat -plugin bin/kaudit-rdkafka.so -n 200000

## bench-proxy: kcat producing 1,000,000 messages directly and through
##              kaudit-proxy: throughput ratio and added produce latency,
##              flat out, then fed at 200,000 messages/s (below saturation).
bench-proxy: deps
	$(GO) run ./cmd/kaudit-proxy/benchkcat -n 1000000 -rounds 5
	$(GO) run ./cmd/kaudit-proxy/benchkcat -n 1000000 -rounds 5 -rate 200000

## fuzz: run each fuzz target for a while.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalEvent -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalVerdict -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeEvent -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzParseInterceptorRecord -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalTrail -fuzztime=30s ./processors/correlator/
	$(GO) test -run='^$$' -fuzz=FuzzParseRequest -fuzztime=30s ./proxy/
	$(GO) test -run='^$$' -fuzz=FuzzRewriteResponse -fuzztime=30s ./proxy/

clean:
	rm -rf bin .kaudit
