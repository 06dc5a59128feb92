#!/usr/bin/env bash
# Installs everything, brings the local stack up (kinesis-mock, moto server, redis-server and the
# real KCL MultiLangDaemon), produces a minute of traffic with fraud in it, shows what was flagged
# and the alerts, and tears the stack down. Extra arguments go to `fraudstream demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/fraudstream demo "$@"
