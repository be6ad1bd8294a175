#!/usr/bin/env bash
# The README's main command: set-up (idempotent), build, verify the equations on the CPU, then run the
# quickstart study (a tiny Titans ablation on MQAR) and write reports/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
./target/release/repro verify --device cpu --dtype f64 --quiet
./target/release/repro run experiments/quickstart.yaml "$@"
