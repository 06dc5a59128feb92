#!/usr/bin/env bash
# The test suite: installs what is missing (scripts/setup.sh), then runs every test, the
# integration tests included (they start their own local stack on free ports and stop it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
