#!/usr/bin/env bash
# The peer used by `repro bench --peers`: titans-pytorch 0.5.5 (lucidrains) in its own venv, with the full
# PyPI torch it expects (the CUDA build with its nvidia wheels, several GB). Not part of the README's two
# commands and not run by CI; idempotent (a second run only checks the versions).
set -euo pipefail
cd "$(dirname "$0")"
TORCH_VERSION=2.11.0
PEER_VERSION=0.5.5
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(0 if (m.version('torch'), m.version('titans-pytorch')) == ('$TORCH_VERSION', '$PEER_VERSION') else 1)" 2>/dev/null; then
  echo "peers: installing torch==$TORCH_VERSION and titans-pytorch==$PEER_VERSION into benches/peers/.venv"
  .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION" "titans-pytorch==$PEER_VERSION"
fi
.venv/bin/python -c "import torch, titans_pytorch; print('peers: ok (torch', torch.__version__, ', titans-pytorch $PEER_VERSION)')"
