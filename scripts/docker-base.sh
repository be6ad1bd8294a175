#!/usr/bin/env bash
# Docker without a container registry, on Debian 12 with only the docker client:
#   1. install Debian's engine (docker.io) and debootstrap;
#   2. start dockerd by hand (no systemd here): overlay2, else vfs;
#   3. make a local bookworm base image (debootstrap + docker import) plus a thin
#      layer trusting the host's extra CAs (the egress proxy re-signs HTTPS).
# Idempotent; re-run before any docker command (a daemon does not survive a reboot) and in CI.
# Usage: scripts/docker-base.sh [stop]
# Env:  DOCKER_STATE_DIR  keep data-root, exec-root, socket, pidfile and log there
#                         (then: export DOCKER_HOST=unix://$DOCKER_STATE_DIR/docker.sock)
#       BASE_IMAGE        default repro-base:bookworm
#       ALSO_TAG          extra tags for it, e.g. "debian:bookworm-slim"
#       STORAGE_DRIVER    force one (default: overlay2, then vfs)
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-repro-base:bookworm}
SUITE=bookworm
state=${DOCKER_STATE_DIR:-}
if [ -n "$state" ]; then
  mkdir -p "$state"
  export DOCKER_HOST="unix://$state/docker.sock"
  pidfile=$state/dockerd.pid log=$state/dockerd.log work=$state/debootstrap
  daemon_args=(--data-root "$state/data" --exec-root "$state/exec" --pidfile "$pidfile" -H "$DOCKER_HOST")
else
  pidfile=/var/run/docker.pid log=/var/log/dockerd.log work=/var/lib/repro-debootstrap
  daemon_args=()
fi

if [ "${1:-}" = stop ]; then
  [ -s "$pidfile" ] || exit 0
  pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null || exit 0
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
  echo "dockerd $pid still running" >&2; exit 1
fi

# 1. packages
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi

# 2. daemon
start_dockerd() {  # $1: storage driver
  nohup dockerd "${daemon_args[@]}" --storage-driver "$1" >>"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 60); do
    if docker info >/dev/null 2>&1; then echo "dockerd pid $pid, storage $1"; return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  kill "$pid" 2>/dev/null; return 1
}
if ! docker info >/dev/null 2>&1; then
  if [ -n "${STORAGE_DRIVER:-}" ]; then start_dockerd "$STORAGE_DRIVER"
  else start_dockerd overlay2 || start_dockerd vfs; fi
fi

# 3. base image, from the Debian mirror (and security mirror) the host's apt uses
srcs() {
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | sed -n 's/^URIs:[[:space:]]*//p'
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p'
}
mirror=$(srcs | tr ' ' '\n' | grep -E '/debian/?$' | head -n1 || true); mirror=${mirror%/}
security=$(srcs | tr ' ' '\n' | grep -E '/debian-security/?$' | head -n1 || true); security=${security%/}
[ -n "$mirror" ] || { echo "no Debian mirror in apt sources" >&2; exit 1; }
security=${security:-$mirror-security}

rootfs_image=${BASE_IMAGE%%:*}-rootfs:${BASE_IMAGE##*:}
if ! docker image inspect "$rootfs_image" >/dev/null 2>&1; then
  rm -rf "$work"; mkdir -p "$work"; r=$work/tree
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$r" "$mirror" >"$work.log"
  rm -f "$r/etc/apt/sources.list" "$r"/var/cache/apt/archives/*.deb
  rm -rf "$r"/var/lib/apt/lists/*
  for s in "$mirror|$SUITE $SUITE-updates" "$security|$SUITE-security"; do
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
      "${s%%|*}" "${s#*|}"
  done >"$r/etc/apt/sources.list.d/debian.sources"
  : >"$r/etc/resolv.conf"; echo localhost >"$r/etc/hostname"
  tar -C "$r" -c . | docker import --change 'CMD ["bash"]' - "$rootfs_image" >/dev/null
  rm -rf "$work"
fi

# thin CA layer: cached by docker, rebuilt in seconds when the host's CAs change
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
mkdir "$ctx/certs"
cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
printf 'FROM %s\nCOPY certs/ /usr/local/share/ca-certificates/\nRUN update-ca-certificates\n' \
  "$rootfs_image" >"$ctx/Dockerfile"
if ! out=$(docker build -q -t "$BASE_IMAGE" "$ctx" 2>&1); then echo "$out" >&2; exit 1; fi
for t in ${ALSO_TAG:-}; do docker tag "$BASE_IMAGE" "$t"; done
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "${BASE_IMAGE%%:*}"
