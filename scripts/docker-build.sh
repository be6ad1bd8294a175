#!/usr/bin/env bash
# Build the repro image, and optionally run the tests in it. Idempotent; run from anywhere.
#   1. if `docker info` fails: install Debian's engine and start dockerd (scripts/docker-base.sh);
#   2. make the local base image ($BASE_IMAGE: debootstrap bookworm + docker import + host CAs) if missing;
#   3. docker build -t $IMAGE .
#   4. with --test: docker run --rm $IMAGE  (scripts/test.sh: setup no-op, then cargo test --locked)
# Usage: scripts/docker-build.sh [--test] [-- extra docker build args]
# Env:   IMAGE (default repro), BASE_IMAGE (default repro-base:bookworm), and DOCKER_STATE_DIR /
#        STORAGE_DRIVER as in scripts/docker-base.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-repro}
export BASE_IMAGE=${BASE_IMAGE:-repro-base:bookworm}
run_tests=0
build_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --test) run_tests=1 ;;
    --) shift; build_args=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "docker-build: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "${DOCKER_STATE_DIR:-}" ]; then export DOCKER_HOST="unix://$DOCKER_STATE_DIR/docker.sock"; fi

say() { echo "docker-build: $*"; }
elapsed() { echo "$(( $(date +%s) - $1 )) s"; }

# 1 + 2. Engine and base image. docker-base.sh is cheap when both exist (it also refreshes the thin CA
# layer if the host's certificates changed), so it always runs.
t=$(date +%s)
if docker info >/dev/null 2>&1; then
  say "engine is up; checking base image $BASE_IMAGE"
else
  say "no Docker engine answering; installing/starting one (scripts/docker-base.sh)"
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE missing; creating it (debootstrap + docker import, about 1-2 min)"
fi
bash scripts/docker-base.sh
say "engine and base image ready ($(elapsed "$t"))"

# 3. The image. Plain `docker build` (legacy builder); the Dockerfile needs no BuildKit.
t=$(date +%s)
say "docker build -t $IMAGE --build-arg BASE_IMAGE=$BASE_IMAGE . (cold: several minutes on 2 cores)"
docker build -t "$IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" ${build_args[@]+"${build_args[@]}"} .
say "built $IMAGE in $(elapsed "$t"); size $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"

# 4. Tests inside the container.
if [ "$run_tests" = 1 ]; then
  t=$(date +%s)
  say "docker run --rm $IMAGE (scripts/test.sh)"
  if docker run --rm "$IMAGE"; then
    say "tests passed in the container ($(elapsed "$t"))"
  else
    rc=$?
    say "tests FAILED in the container (exit $rc, $(elapsed "$t"))" >&2
    exit "$rc"
  fi
fi
