#!/usr/bin/env bash
# Regenerates the dependency locks; the only way they should change. Every install reads them:
# scripts/setup.sh (so CI) installs requirements/build.lock then requirements/dev.lock, the
# Dockerfile build.lock then runtime.lock, all with `pip install --require-hashes`, so a release
# upstream changes nothing here until this script is run and its diff committed.
#
#   scripts/lock.sh                          # follow pyproject.toml's edits, keep every other pin
#   scripts/lock.sh --upgrade                # every package to the newest version pyproject allows
#   scripts/lock.sh --upgrade-package redis  # just that one (repeatable)
#
# then `scripts/setup.sh` to install them and the checks (CI) to try them.
#
# One resolution, three files, for CPython 3.11 on Linux x86_64 (the image's and the machines'):
#   requirements/dev.lock      pyproject's dependencies + the `dev` extra (with `model`) + build.in
#   requirements/runtime.lock  dependencies + `model` + `api` + build.in: what the image installs
#   requirements/build.lock    build.in alone: pip, setuptools, wheel, pytest-runner, installed
#                              first so the two sdists (amazon-kclpy, this package) build from them
# runtime.lock and build.lock are compiled with dev.lock as a constraint, so a package has the same
# version in all three (tests/deploy/test_lock.py checks that, and pyproject's ranges). The resolver
# is uv, pinned below and installed on first use under ~/.cache/fraudstream. package-lock.json
# (kinesis-mock, from npm) is regenerated too; setup.sh installs it with `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.8
say() { printf '[lock] %s\n' "$*" >&2; }

tools="${XDG_CACHE_HOME:-$HOME/.cache}/fraudstream/uv-$UV_VERSION"
uv="$tools/bin/uv"
if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "installing uv $UV_VERSION into $tools"
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi

compile() {
  "$uv" pip compile --quiet --no-config --generate-hashes \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "scripts/lock.sh" "$@"
}
say "requirements/dev.lock"
compile pyproject.toml requirements/build.in --extra dev -o requirements/dev.lock "$@"
say "requirements/runtime.lock"
compile pyproject.toml requirements/build.in --extra model --extra api \
  -c requirements/dev.lock -o requirements/runtime.lock
say "requirements/build.lock"
compile requirements/build.in -c requirements/dev.lock -o requirements/build.lock

# The registry's address stays out of the lock (npm then takes the configured registry), so the
# file says which versions and hashes, not where from.
say "package-lock.json"
npm install --package-lock-only --omit-lockfile-registry-resolved --ignore-scripts \
  --no-audit --no-fund --loglevel=error >/dev/null

say "done: review \`git diff requirements package-lock.json\`, then run scripts/setup.sh"
