# kaudit's image: the binaries (kaudit, kaudit-correlator, kaudit-sink, kaudit-proxy)
# on a distroless, non-root base. docker-compose.yml builds it as kaudit:dev;
# each service picks its binary with `command:`.
#
#   docker build -t kaudit:dev .
#   docker run --rm kaudit:dev kaudit --help

# Build stage: the Go toolchain of go.mod's go directive (major.minor).
FROM golang:1.26-trixie AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/kaudit ./cmd/kaudit-correlator ./cmd/kaudit-sink ./cmd/kaudit-proxy
# The correlator's storage dir, owned by distroless' nonroot user (65532), so a
# fresh named volume mounted there inherits a writable directory.
RUN mkdir -p /out/state/correlator

# Runtime stage: static binaries need only CA certificates and tzdata, which
# distroless/static ships.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kaudit /out/kaudit-correlator /out/kaudit-sink /out/kaudit-proxy /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/state /var/lib/kaudit
USER 65532:65532
WORKDIR /var/lib/kaudit
# The correlator's default --storage-dir.
VOLUME ["/var/lib/kaudit/correlator"]
# Prometheus metrics (--metrics-addr :9100) of the correlator and the sink.
EXPOSE 9100
CMD ["kaudit", "--help"]
