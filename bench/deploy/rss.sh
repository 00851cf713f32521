#!/usr/bin/env bash
# The peak RSS of the nixops process itself (VmHWM, sampled every 20 ms; not its
# children, which /usr/bin/time would include) during a cold and a no-change
# deploy of N machines to fresh test hosts.
#
#   bench/deploy/rss.sh N
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-30}
export NIX_CONFIG=$'substituters =\nbuild-users-group ='
cargo build --quiet --release -p nixops -p nixops-testkit --manifest-path "$root/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  jq -r .target_directory)
nixops=$target/release/nixops
testkit=$target/release/nixops-testkit
# shellcheck source=lib.sh
. "$root/bench/deploy/lib.sh"
dir=$(mktemp -d /tmp/nixops-rss.XXXXXX)
trap 'hosts_down "$dir"; rm -rf "$dir"' EXIT
hosts_up "$dir" "$n"
gen_network "$dir" "rss-$(now)" 0
# shellcheck disable=SC1091
. "$dir/env"
export SSH_AUTH_SOCK NIXOPS_STATE=$dir/state.nixops
"$nixops" create -d bench "$dir/network.nix" "$dir/hosts.nix" -I "nixpkgs=$root/tests/fixtures/mini-nixpkgs" >/dev/null
for c in cold no-change; do
  "$nixops" deploy -d bench --option substituters '' --option build-users-group '' >/dev/null 2>&1 &
  pid=$!
  hwm=0
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && hwm=$v
    sleep 0.02
  done
  wait "$pid"
  echo "$n machines, $c deploy: nixops peak RSS ${hwm} kB"
done
