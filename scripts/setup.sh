#!/usr/bin/env bash
# Installs everything fraudstream needs on a fresh Debian machine (Python 3.11, Java 17, Node 20):
# redis-server (apt), kinesis-mock (npm kinesis-local), and the Python package with the KCL jars
# (amazon-kclpy downloads them from Maven when it builds) into .venv. Safe to run again.
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

if [ ! -f node_modules/kinesis-local/main.js ]; then
  say "installing kinesis-mock (npm kinesis-local)"
  npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
fi
say "kinesis-local: $(node -p 'require("./node_modules/kinesis-local/package.json").version')"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
say "installing the Python package and the KCL jars into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
jars=$(.venv/bin/python -c 'import amazon_kclpy, pathlib; print(len(list((pathlib.Path(amazon_kclpy.__file__).parent / "jars").glob("*.jar"))))')
[ "$jars" -gt 0 ] || { say "the KCL jars are missing after installing amazon-kclpy"; exit 1; }
say "KCL jars: $jars; done in $((SECONDS - started)) s"
