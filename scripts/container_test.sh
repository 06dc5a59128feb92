#!/usr/bin/env bash
# The worker image built and run as ECS runs it (CI's last stage; also by hand):
#   1. a container engine (installed if missing, started if not running: scripts/docker_base.sh)
#   2. a base image: the official one, or a local stand-in where no registry is reachable
#   3. the image, with the locked dependencies (the Dockerfile installs requirements/*.lock)
#   4. tests/container against the local stack's servers: two worker containers under the task
#      definition's limits, stopped and killed mid-traffic, nothing lost, no S3 line twice; the
#      health check; exit 78 on a bad setting, 69 on an unreachable Redis; the scoring API service
#      (its task definition's command and health check, keys from Secrets Manager) and the ingest
#      task (the command the EventBridge rule gives it for a file under incoming/).
#
#   scripts/container_test.sh [pytest args]
#
# Exit 0 when all passed; non-zero with a line saying which step failed. Whatever happens, the
# containers it started are removed and an engine it started is stopped (FRAUD_KEEP_ENGINE=1
# leaves it running); images stay, so a second run reuses the base and the build cache.
# The measurements (image size, build time, start-up to first lease, memory) are printed and
# written to $FRAUD_DOCKER_STATE/container-test-report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export FRAUD_DOCKER_STATE=${FRAUD_DOCKER_STATE:-/tmp/fraudstream-docker}
STATE=$FRAUD_DOCKER_STATE
LABEL=fraudstream.container-test
IMAGE=${FRAUD_CONTAINER_IMAGE:-fraudstream:ci-$(git rev-parse --short=12 HEAD 2> /dev/null || echo dev)}
mkdir -p "$STATE"
t0=$SECONDS
step="setting up"

say() { echo "[container-test] $*" >&2; }

remove_our_containers() {
  local ids
  ids=$(docker ps -aq --filter "label=$LABEL" 2> /dev/null || true)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086  # one id per word
    docker rm -f $ids > /dev/null 2>&1 || true
  fi
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$status" != 0 ]; then
    say "FAILED while $step (exit $status); engine log: $STATE/dockerd.log"
  fi
  if timeout 10 docker info > /dev/null 2>&1; then
    remove_our_containers
  fi
  if [ -n "${started_engine:-}" ] && [ "${FRAUD_KEEP_ENGINE:-0}" != 1 ]; then
    local pid
    pid=$(cat "$STATE/dockerd.daemon.pid" 2> /dev/null || cat "$STATE/dockerd.pid")
    say "stopping the engine this run started (pid $pid)"
    kill "$pid" 2> /dev/null || true
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2> /dev/null || break
      sleep 1
    done
    kill -9 "$pid" 2> /dev/null || true
    rm -f "$STATE/dockerd.pid" "$STATE/dockerd.daemon.pid"
  fi
  say "took $((SECONDS - t0)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step="starting the container engine"
if ! { command -v docker > /dev/null && timeout 10 docker info > /dev/null 2>&1; }; then
  started_engine=1
fi
scripts/docker_base.sh engine

step="removing containers an earlier run left"
remove_our_containers

step="finding or making the base image"
base=$(scripts/docker_base.sh base | tail -n 1)
say "base image: $base"

step="building $IMAGE"
t_build=$SECONDS
if ! docker build --network host --build-arg "PYTHON_IMAGE=$base" -t "$IMAGE" . \
  > "$STATE/build.log" 2>&1; then
  tail -n 40 "$STATE/build.log" >&2
  false
fi
build_s=$((SECONDS - t_build))
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
say "built $IMAGE in $build_s s: $((size / 1000000)) MB (log: $STATE/build.log)"

step="running tests/container against $IMAGE"
report=$STATE/container-test-report.json
rm -f "$report"
t_test=$SECONDS
FRAUD_CONTAINER_IMAGE=$IMAGE FRAUD_CONTAINER_REPORT=$report \
  .venv/bin/python -m pytest -p no:cacheprovider -q -s tests/container "$@"
say "tests/container took $((SECONDS - t_test)) s; build $build_s s; image $((size / 1000000)) MB"
say "measured: $(tr -d '\n' < "$report" | tr -s ' ')"
step="cleaning up"
