#!/usr/bin/env bash
# Installs everything fraudstream needs on a fresh Debian machine (Python 3.11, Java 17, Node 20):
# redis-server and chromium (apt), kinesis-mock (npm kinesis-local, as package-lock.json pins it), and into
# .venv the Python packages exactly as requirements/dev.lock pins them (hash-checked), the KCL jars
# (amazon-kclpy downloads them from Maven when it builds) and this package, editable.
# Safe to run again, and quick then: each install is skipped while the lock it was made from is
# unchanged (a stamp of the lock's hash in .venv and node_modules; delete it to force one).
# The locks change only through scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup] %s\n' "$*" >&2; }
started=$SECONDS

need() { command -v "$1" >/dev/null 2>&1 || { say "missing $1: $2"; exit 1; }; }
need python3 "install Python 3.11"
need java "install a Java 17 runtime (apt-get install -y openjdk-17-jre-headless)"
need node "install Node.js 20"
need npm "install npm"

if ! command -v redis-server >/dev/null 2>&1; then
  say "installing redis-server (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
say "redis-server: $(redis-server --version | cut -d' ' -f3)"

# Debian's Chromium, headless: the report rendered as a person sees it (tests/unit/report/test_report_browser.py).
if ! command -v chromium >/dev/null 2>&1; then
  say "installing chromium (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Without recommends (printing, udev, notifications: not needed headless) but with fonts, or the
  # page draws without text.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core >/dev/null
fi
say "chromium: $(chromium --version 2>/dev/null | cut -d' ' -f2)"

lock_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

npm_stamp=node_modules/.fraudstream-lock.sha256
npm_want=$(lock_hash package.json package-lock.json)
if [ ! -f node_modules/kinesis-local/main.js ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]; then
  say "installing kinesis-mock (npm kinesis-local, package-lock.json)"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$npm_want" >"$npm_stamp"
fi
say "kinesis-local: $(node -p 'require("./node_modules/kinesis-local/package.json").version')"

if [ ! -x .venv/bin/python ]; then
  python=python3
  command -v python3.11 >/dev/null 2>&1 && python=python3.11
  say "creating .venv ($($python --version))"
  "$python" -m venv .venv
fi
version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$version" = 3.11 ] || say "warning: .venv runs Python $version; the locks are made for 3.11"

# build.lock first (pip, setuptools, wheel, pytest-runner): the sdists among the pins (amazon-kclpy,
# whose build downloads the KCL jars) and this package then build with those, hash-checked, rather
# than with whatever an isolated build environment would fetch.
py_stamp=.venv/.fraudstream-lock.sha256
py_want=$(lock_hash requirements/build.lock requirements/dev.lock pyproject.toml)
if [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_want" ]; then
  say "installing requirements/dev.lock, the KCL jars and the package into .venv"
  rm -f "$py_stamp"
  pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
  pip install -q --require-hashes -r requirements/build.lock
  pip install -q --require-hashes --no-build-isolation -r requirements/dev.lock
  pip install -q --no-deps --no-build-isolation -e .
  pip check >/dev/null || { pip check >&2; say "the installed packages conflict"; exit 1; }
  stamp_after_jars=1
fi
jars=$(.venv/bin/python -c 'import amazon_kclpy, pathlib; print(len(list((pathlib.Path(amazon_kclpy.__file__).parent / "jars").glob("*.jar"))))')
[ "$jars" -gt 0 ] || { say "the KCL jars are missing after installing amazon-kclpy"; exit 1; }
[ -z "${stamp_after_jars:-}" ] || echo "$py_want" >"$py_stamp"
say "KCL jars: $jars; done in $((SECONDS - started)) s"
