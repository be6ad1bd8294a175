#!/usr/bin/env bash
# Idempotent set-up for repro: Debian packages, a git-ignored venv holding libtorch (PyPI torch==2.11.0,
# CPU use needs only the two nvidia runtime wheels), the King James Bible text for the LM task, and a check
# that the pieces are where .cargo/config.toml expects them. A second run does nothing and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PKGS="libopenblas-dev pkg-config bible-kjv"

if ! dpkg -s $PKGS >/dev/null 2>&1; then
  echo "setup: installing Debian packages: $PKGS"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust >= 1.88 (rustup) first" >&2
  exit 1
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
have=$(.venv/bin/python - <<'PY' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("torch"))
except Exception:
    print("")
PY
)
if [ "$have" != "$TORCH_VERSION" ] || [ ! -f .venv/.wheels-ok ]; then
  echo "setup: installing torch==$TORCH_VERSION (libtorch for tch) into .venv"
  # --no-deps: the PyPI wheel is the CUDA 13.0 build; libtorch_cpu itself needs only cudart and cupti.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps "torch==$TORCH_VERSION" \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  touch .venv/.wheels-ok
fi
if [ "${WITH_CUDA:-0}" = 1 ] && [ ! -f .venv/.cuda-wheels-ok ]; then
  .venv/bin/pip install -q --disable-pip-version-check --no-deps \
    nvidia-cublas==13.1.0.3 nvidia-cufft==12.0.0.61 nvidia-cufile==1.15.1.6 \
    nvidia-curand==10.4.0.35 nvidia-cusolver==12.0.4.66 nvidia-cusparse==12.6.3.3 \
    nvidia-nvjitlink==13.0.88 nvidia-cuda-nvrtc==13.0.88 nvidia-cudnn-cu13==9.19.0.56 \
    nvidia-cusparselt-cu13==0.8.0 nvidia-nccl-cu13==2.28.9 nvidia-nvshmem-cu13==3.4.5
  touch .venv/.cuda-wheels-ok
fi
# A stable path, free of the Python version, for .cargo/config.toml's LIBTORCH.
site=$(cd .venv && echo lib/python3*/site-packages/torch)
[ "$(readlink .venv/libtorch 2>/dev/null)" = "$site" ] || ln -sfn "$site" .venv/libtorch
got=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))')
case "$got" in
  "$TORCH_VERSION"*) ;;
  *) echo "setup: expected torch $TORCH_VERSION in .venv, found $got" >&2; exit 1 ;;
esac
test -f .venv/libtorch/lib/libtorch_cpu.so || { echo "setup: .venv/libtorch/lib/libtorch_cpu.so missing" >&2; exit 1; }
# The character-level LM corpus: the King James Bible from Debian's bible-kjv, one verse per line, chapter
# headings and verse numbers stripped (31,102 verses, ~4.1 MB). The split is in src/experiment/tasks.rs.
if [ ! -s data/kjv.txt ]; then
  command -v bible >/dev/null || { echo "setup: bible-kjv is not installed" >&2; exit 1; }
  mkdir -p data
  COLUMNS=100000 bible -l100000 "Genesis 1:1-Revelation 22:21" | sed -n 's/^ \{1,\}[0-9]\{1,\} //p' > data/kjv.txt.tmp
  mv data/kjv.txt.tmp data/kjv.txt
fi
echo "setup: ok (torch $got, LIBTORCH=.venv/libtorch)"
