#!/usr/bin/env bash
# nixops and baseline.sh in turn on the *same* N test hosts, RUNS times each: a
# paired comparison without the variation between fresh host sets.
#
#   bench/deploy/same-hosts.sh N [no-change|change] [RUNS=4]
#
# After one cold deploy by each tool, every round runs `nixops deploy`, then the
# script. With `change`, every deploy first changes one machine's message (a new
# text each time, so each tool builds, copies and activates a new toplevel).
# Prints "tool seconds load" lines and the medians.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=$1
mode=${2:-no-change}
runs=${3:-4}
nixpkgs=$root/tests/fixtures/mini-nixpkgs
export NIX_CONFIG=$'substituters =\nbuild-users-group ='
cargo build --quiet --release -p nixops -p nixops-testkit --manifest-path "$root/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  jq -r .target_directory)
nixops=$target/release/nixops
testkit=$target/release/nixops-testkit
# shellcheck source=lib.sh
. "$root/bench/deploy/lib.sh"

dir=$(mktemp -d /tmp/nixops-same.XXXXXX)
trap 'hosts_down "$dir"; rm -rf "$dir"' EXIT
hosts_up "$dir" "$n"
nonce=same-$(now)
gen_network "$dir" "$nonce" 0
# shellcheck disable=SC1091
. "$dir/env"
export SSH_AUTH_SOCK NIXOPS_STATE=$dir/state.nixops
dep=("$nixops" deploy -d bench --option substituters '' --option build-users-group '')
"$nixops" create -d bench "$dir/network.nix" "$dir/hosts.nix" -I "nixpkgs=$nixpkgs" >/dev/null
"${dep[@]}" >/dev/null 2>&1
"$root/bench/deploy/baseline.sh" "$dir" "$nixpkgs"

: >"$dir/times"
for ((i = 1; i <= runs; i++)); do
  [ "$mode" = change ] && gen_network "$dir" "$nonce" "$i"
  t0=$(now)
  "${dep[@]}" >/dev/null 2>&1
  t1=$(now)
  echo "nixops $(echo "$t1 - $t0" | bc) $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$dir/times"
  [ "$mode" = change ] && gen_network "$dir" "$nonce" "$((i + 1000))"
  t0=$(now)
  "$root/bench/deploy/baseline.sh" "$dir" "$nixpkgs"
  t1=$(now)
  echo "script $(echo "$t1 - $t0" | bc) $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$dir/times"
done
for tool in nixops script; do
  echo "$n $mode $tool median/min/max: $(awk -v t=$tool '$1 == t { print $2 }' "$dir/times" | stats)"
done
