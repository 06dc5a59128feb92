#!/usr/bin/env bash
# A container engine and a Python base image for building the worker image, on a machine that
# may have neither, and may not reach a container registry.
#
#   scripts/docker_base.sh engine   # install the engine if missing, start it if not running
#   scripts/docker_base.sh base     # print the base image to build FROM (makes one if needed)
#   scripts/docker_base.sh          # both; the last line of stdout is the base image
#
# The base: the official python:3.11-slim-bookworm when it is present or can be pulled;
# otherwise a local stand-in made from Debian's packages (debootstrap --variant=minbase bookworm,
# Debian's Python 3.11, a `python` link, the build host's CA certificates so HTTPS through a
# TLS-intercepting proxy works for apt, pip and Java alike). Idempotent: an existing stand-in is
# reused (`FRAUD_BASE_REBUILD=1` makes it again).
#
# An engine this script starts runs in the background with its log in
# $FRAUD_DOCKER_STATE/dockerd.log and its pid in $FRAUD_DOCKER_STATE/dockerd.pid; the caller
# stops it (scripts/container_test.sh does, in its exit trap). An engine already running is used
# as it is.
set -euo pipefail

OFFICIAL_IMAGE=${FRAUD_OFFICIAL_PYTHON_IMAGE:-python:3.11-slim-bookworm}
# The recipe's revision is in the tags: a changed recipe makes new images instead of reusing
# those of an older one.
RECIPE=r2
LOCAL_BASE=${FRAUD_LOCAL_BASE_IMAGE:-fraudstream-local/python:3.11-bookworm-$RECIPE}
ROOTFS_IMAGE=fraudstream-local/debian-minbase:bookworm-$RECIPE
STATE=${FRAUD_DOCKER_STATE:-/tmp/fraudstream-docker}
PULL_TIMEOUT_S=${FRAUD_PULL_TIMEOUT_S:-30}

say() { echo "[docker-base] $*" >&2; }
die() { echo "[docker-base] FAILED: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  say "installing $* (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
    > "$STATE/apt.log" 2>&1 \
    || { as_root apt-get update > "$STATE/apt-update.log" 2>&1 \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
        > "$STATE/apt.log" 2>&1; } \
    || die "apt-get install $* failed; see $STATE/apt.log"
}

engine_up() { timeout 10 docker info > /dev/null 2>&1; }

ensure_engine() {
  mkdir -p "$STATE"
  if command -v docker > /dev/null && engine_up; then
    say "engine already running"
    return
  fi
  if ! command -v dockerd > /dev/null || ! command -v docker > /dev/null; then
    apt_install docker.io
  fi
  # A pid file left by an earlier session whose engine died: start afresh.
  if [ -f "$STATE/dockerd.pid" ] && ! kill -0 "$(cat "$STATE/dockerd.pid")" 2> /dev/null; then
    rm -f "$STATE/dockerd.pid"
  fi
  if [ -f "$STATE/dockerd.pid" ]; then
    say "an engine started earlier (pid $(cat "$STATE/dockerd.pid")) is still coming up"
  else
    # No init system here, no bridge network (and no iptables to set one up): containers and
    # builds use the host's network.
    say "starting the engine (log: $STATE/dockerd.log)"
    as_root setsid dockerd --iptables=false --ip6tables=false --bridge=none \
      --pidfile "$STATE/dockerd.daemon.pid" > "$STATE/dockerd.log" 2>&1 < /dev/null &
    echo $! > "$STATE/dockerd.pid"
  fi
  for _ in $(seq 1 60); do
    if engine_up; then
      say "engine up: $(docker version --format '{{.Server.Version}}' 2> /dev/null)"
      return
    fi
    kill -0 "$(cat "$STATE/dockerd.pid")" 2> /dev/null \
      || die "dockerd exited during start-up; see $STATE/dockerd.log: $(tail -n 5 "$STATE/dockerd.log")"
    sleep 1
  done
  die "the engine did not answer within 60 s; see $STATE/dockerd.log"
}

debian_mirror() {
  local uri
  uri=$(grep -h -m1 -E '^URIs: .*debian/?$' /etc/apt/sources.list.d/*.sources 2> /dev/null \
    | awk '{print $2}' || true)
  if [ -z "$uri" ]; then
    uri=$(grep -h -m1 -E '^deb .*debian/? bookworm' /etc/apt/sources.list 2> /dev/null \
      | awk '{print $2}' || true)
  fi
  echo "${FRAUD_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# What Debian's own slim images do to a minbase tree: no package caches, lists, manuals,
# translations or documentation (the copyright files stay), and apt/dpkg told to keep it so.
slim_rootfs() {
  local root=$1
  as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  as_root find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  as_root tee "$root/etc/dpkg/dpkg.cfg.d/docker-slim" > /dev/null << 'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  as_root tee "$root/etc/apt/apt.conf.d/docker-clean" > /dev/null << 'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
}

build_local_base() {
  command -v debootstrap > /dev/null || apt_install debootstrap
  local work mirror started=$SECONDS
  work=$(mktemp -d "$STATE/base.XXXXXX")
  mirror=$(debian_mirror)
  if ! docker image inspect "$ROOTFS_IMAGE" > /dev/null 2>&1 || [ "${FRAUD_BASE_REBUILD:-0}" = 1 ]; then
    say "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    as_root debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" \
      > "$STATE/debootstrap.log" 2>&1 || die "debootstrap failed; see $STATE/debootstrap.log"
    slim_rootfs "$work/rootfs"
    as_root tar -C "$work/rootfs" -c . | docker import - "$ROOTFS_IMAGE" > /dev/null
    as_root rm -rf "$work/rootfs"
  fi
  # The build host's CA certificates: its extra ones one file each (so Java's trust store, made
  # from them when the JDK is installed, gets every one), else its whole bundle.
  mkdir -p "$work/ctx/certs"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/ctx/certs/"
  elif [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$work/ctx/certs/build-host-bundle.crt"
  fi
  cat > "$work/ctx/Dockerfile" << EOF
FROM $ROOTFS_IMAGE
LABEL org.opencontainers.image.description="Local stand-in for $OFFICIAL_IMAGE (Debian bookworm, Debian's Python 3.11); not for production"
ENV LANG=C.UTF-8
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/bin/python3 /usr/local/bin/python \\
 && ln -s /usr/bin/python3 /usr/local/bin/python3
COPY certs/ /usr/local/share/ca-certificates/
# pip keeps its own CA bundle unless told: the build's pip installs go through the same proxy.
RUN update-ca-certificates > /dev/null \\
 && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf
CMD ["python3"]
EOF
  say "building $LOCAL_BASE"
  docker build --network host -q -t "$LOCAL_BASE" "$work/ctx" > "$STATE/base-build.log" 2>&1 \
    || die "building $LOCAL_BASE failed; see $STATE/base-build.log"
  rm -rf "$work"
  say "made $LOCAL_BASE in $((SECONDS - started)) s"
}

ensure_base() {
  mkdir -p "$STATE"
  if docker image inspect "$OFFICIAL_IMAGE" > /dev/null 2>&1; then
    echo "$OFFICIAL_IMAGE"
    return
  fi
  if [ "${FRAUD_BASE_REBUILD:-0}" != 1 ] && docker image inspect "$LOCAL_BASE" > /dev/null 2>&1; then
    say "reusing $LOCAL_BASE ($OFFICIAL_IMAGE is not here)"
    echo "$LOCAL_BASE"
    return
  fi
  if [ "${FRAUD_TRY_PULL:-1}" = 1 ] && timeout "$PULL_TIMEOUT_S" docker pull -q "$OFFICIAL_IMAGE" > /dev/null 2>&1; then
    echo "$OFFICIAL_IMAGE"
    return
  fi
  say "$OFFICIAL_IMAGE cannot be pulled: making a local stand-in"
  build_local_base
  echo "$LOCAL_BASE"
}

case "${1:-all}" in
  engine) ensure_engine ;;
  base) ensure_base ;;
  all) ensure_engine && ensure_base ;;
  *) die "usage: $0 [engine|base|all]" ;;
esac
