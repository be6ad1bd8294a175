#!/usr/bin/env bash
# Regenerates the committed report of every shipped study (or of the named ones) from a clean run:
#   bash scripts/reports.sh                 # every experiments/*.yaml
#   bash scripts/reports.sh quickstart niah # only these
# Each study runs at its tiny scale (the base configuration) on the CPU with the release build, into a
# temporary folder (existing runs under reports/ are neither reused nor touched); its report.md, PNGs,
# study.json and summary.json then replace those in reports/<name>/. Prints the `git add -f` to commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ $# -eq 0 ]; then set -- experiments/*.yaml; fi
status=0
names=()
for arg in "$@"; do
  f=$arg
  [ -f "$f" ] || f=experiments/$arg.yaml
  [ -f "$f" ] || { echo "no study $arg (expected a file or experiments/<name>.yaml)" >&2; exit 2; }
  name=$(sed -n 's/^name: *//p' "$f" | head -n 1)
  echo "== $f -> reports/$name"
  start=$(date +%s)
  # exit 3 = a run failed: its report still says so, and is still committed
  ./target/release/repro run "$f" --out "$tmp" -q || { rc=$?; [ "$rc" = 3 ] || exit "$rc"; status=3; }
  mkdir -p "reports/$name"
  rm -f "reports/$name"/*.png
  cp "$tmp/$name"/report.md "$tmp/$name"/study.json "$tmp/$name"/summary.json "reports/$name/"
  cp "$tmp/$name"/*.png "reports/$name/" 2>/dev/null || true
  echo "   $(( $(date +%s) - start )) s"
  names+=("$name")
done
echo "commit with:"
for n in "${names[@]}"; do
  echo "  git add -f reports/$n/report.md reports/$n/*.png reports/$n/study.json reports/$n/summary.json"
done
exit $status
