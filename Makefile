# kaudit — see README.md. The two set-up commands are `make demo` and `make test`.
GO       ?= go
DURATION ?=
BENCHTIME ?= 1s

.PHONY: all build demo test deps vet bench plugin fuzz clean

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
bench: deps
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

## fuzz: run each fuzz target for a while.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalEvent -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalVerdict -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeEvent -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzParseBlogRecord -fuzztime=30s ./codecs/
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshalTrail -fuzztime=30s ./processors/correlator/

clean:
	rm -rf bin .kaudit
