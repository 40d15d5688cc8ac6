#!/usr/bin/env bash
# Installs what kaudit's tests and demo need from Debian's packages, if missing:
# clickhouse-server (the real ClickHouse of the tests and the demo),
# clickhouse-client (the peer of the sink's benchmark in make bench),
# docker-compose (to validate docker-compose.yml), kcat, librdkafka-dev and
# python3-confluent-kafka (real-client tests), chromium (the headless
# browser that drives the web dashboard in e2e/web_test.go), npm (fetches
# the ClickHouse 26.x engine of the conformance tests, internal/chdb),
# prometheus (promtool, which checks deploy/prometheus),
# prometheus-alertmanager (the real Alertmanager of the alerts tests; with
# systemd, Debian also enables both as services, which the tests do not use)
# and zookeeper (the coordination service of the test ClickHouse clusters,
# internal/testing/chtest).
set -euo pipefail

need=()
command -v clickhouse-server >/dev/null 2>&1 || command -v clickhouse >/dev/null 2>&1 || need+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || need+=(clickhouse-client)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
[ -e /usr/include/librdkafka/rdkafka.h ] || need+=(librdkafka-dev)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need+=(python3-confluent-kafka)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ -e /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 || need+=(zookeeper)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "kaudit: installing Debian packages: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "kaudit: need root (or sudo) to install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "kaudit: installed ${need[*]}" >&2
