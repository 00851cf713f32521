#!/bin/sh
# Benchmark the state library on 100 deployments x 100 machines (~12 attributes
# each): open + load all (`list`/`info --no-eval --all` need this) and
# `export --all`. Needs sqlite3 and hyperfine.
#
#   bench/state/run.sh [D=100] [M=100]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
d=${1:-100}
m=${2:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for tool in sqlite3 hyperfine; do
  command -v $tool >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done

"$root/bench/state/make-big-state.sh" "$work/big.nixops" "$d" "$m"
cargo build --quiet --release -p nixops-core --example state_bench --manifest-path "$root/Cargo.toml"
bench=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/examples/state_bench
# Open once so the file is in WAL mode and timings do not include the switch.
"$bench" "$work/big.nixops" load
ls -l "$work/big.nixops"
hyperfine --warmup 3 --min-runs 20 -N \
  "$bench $work/big.nixops load" \
  "$bench $work/big.nixops list" \
  "$bench $work/big.nixops info" \
  "$bench $work/big.nixops export"
