#!/usr/bin/env bash
# The README's test command: set-up (idempotent), then every check and test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --locked 2>&1
