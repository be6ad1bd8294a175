#!/usr/bin/env bash
# The README's main command: set-up (idempotent), build, then the quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
./target/release/repro verify --device cpu --dtype f64
./target/release/repro verify --device cpu --dtype f32
