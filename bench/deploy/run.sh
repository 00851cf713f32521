#!/usr/bin/env bash
# Deploy benchmark: `nixops deploy` against the minimal script baseline.sh on N
# fresh test hosts (nixops-testkit), for each N in NS. Every run, for each tool,
# on its own fresh hosts, state and store paths:
#
#   cold       first deploy; a per-run nonce in every machine's /etc makes every
#              toplevel new, so everything is built, copied and activated;
#   no-change  the same deploy again;
#   change     one machine's toyweb message changed (one toplevel rebuilt,
#              copied and activated; every machine activated, as NixOps'
#              default deployment.alwaysActivate = true says, and the script does);
#   no-change-noact (nixops only) with deployment.alwaysActivate = false, the
#              same deploy again (after one untimed deploy that switched
#              alwaysActivate off): nothing copied, nothing activated.
#
# Runs alternate between nixops and the script so that load from other jobs
# hits both alike. Also timed, as references for the no-change deploy: one
# evaluation of `info` (`nix-instantiate --eval -A info` on the same glue and
# network) and one instantiation of every toplevel (`nix-instantiate -A machines`).
#
#   bench/deploy/run.sh [NS="1 10 30"] [RUNS=3] [OUT_DIR]   (KEEP=1: keep the work dir)
#
# Needs root (test hosts are network namespaces) and the release build of
# nixops and nixops-testkit (built here).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ns=${1:-1 10 30}
runs=${2:-3}
work=$(mktemp -d /tmp/nixops-bench.XXXXXX)
out=${3:-$work/out}
mkdir -p "$out"
nixpkgs=$root/tests/fixtures/mini-nixpkgs
export NIX_CONFIG=$'substituters =\nbuild-users-group ='
nixflags=(--option substituters '' --option build-users-group '')

cargo build --quiet --release -p nixops -p nixops-testkit --manifest-path "$root/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  jq -r .target_directory)
nixops=$target/release/nixops
testkit=$target/release/nixops-testkit
# shellcheck source=lib.sh
. "$root/bench/deploy/lib.sh"

trap 'for d in "$work"/*/; do hosts_down "$d"; done; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# lines: N tool case seconds store-paths-copied activations loadavg
results=$out/deploy-times.txt
: >"$results"

timed() { # timed VAR CMD...: run CMD, its wall time in VAR
  local t0 t1
  t0=$(now)
  "${@:2}"
  t1=$(now)
  printf -v "$1" '%.3f' "$(echo "$t1 - $t0" | bc)"
}
load() { cut -d' ' -f1 /proc/loadavg; }
record() { echo "$*" | tee -a "$results"; }

nixops_run() { # nixops_run N R
  local n=$1 r=$2 dir=$work/nx-$1-$2 t copies
  mkdir -p "$dir"
  hosts_up "$dir" "$n"
  local nonce=nx-$n-$r-$(now)
  gen_network "$dir" "$nonce" 0
  export NIXOPS_STATE=$dir/state.nixops
  # shellcheck disable=SC1091
  . "$dir/env"
  export SSH_AUTH_SOCK
  "$nixops" create -d bench "$dir/network.nix" "$dir/hosts.nix" -I "nixpkgs=$nixpkgs" >/dev/null
  local dep=("$nixops" deploy -d bench "${nixflags[@]}")
  local acts
  for c in cold no-change change no-change-noact; do
    [ $c = change ] && gen_network "$dir" "$nonce" 1
    if [ $c = no-change-noact ]; then
      # Switching alwaysActivate off is itself a change of the network: deploy
      # it once, untimed, so that the timed deploy changes nothing.
      gen_network "$dir" "$nonce" 1 false
      "${dep[@]}" >"$dir/$c.setup.log" 2>&1 || { cat "$dir/$c.setup.log" >&2; return 1; }
    fi
    local l
    l=$(load)
    timed t "${dep[@]}" --events "$dir/$c.events" >"$dir/$c.log" 2>&1 ||
      { cat "$dir/$c.log" >&2; return 1; }
    copies=$(jq -c 'select(.phase == "copy" and (.message // "" | startswith("copying path")))' \
      "$dir/$c.events" | wc -l)
    acts=$(jq -c 'select(.phase == "activate" and .status == "started")' "$dir/$c.events" | wc -l)
    record "$n nixops $c $t $copies $acts $l"
  done
  # One evaluation, as the deploy runs it (same glue, files and flags).
  for k in 1 2 3; do
    l=$(load)
    timed t nix-instantiate "${nixflags[@]}" -I "nixpkgs=$nixpkgs" -I "nixops=$root/nix" \
      --arg networkExprs "[ $dir/network.nix $dir/hosts.nix ]" --arg args '{}' \
      --argstr uuid 00000000-0000-0000-0000-000000000000 --argstr deploymentName bench \
      --arg checkConfigurationOptions true "$root/nix/eval-machine-info.nix" \
      --eval-only --strict --json -A info >/dev/null
    record "$n eval info $t - - $l"
    # And the evaluation a deploy cannot skip: every toplevel's derivation.
    l=$(load)
    timed t nix-instantiate "${nixflags[@]}" -I "nixpkgs=$nixpkgs" -I "nixops=$root/nix" \
      --arg networkExprs "[ $dir/network.nix $dir/hosts.nix ]" --arg args '{}' \
      --argstr uuid 00000000-0000-0000-0000-000000000000 --argstr deploymentName bench \
      --arg checkConfigurationOptions true "$root/nix/eval-machine-info.nix" \
      --arg names "[$(awk '{ printf " \"%s\"", $1 }' "$dir/hosts.txt") ]" -A machines >/dev/null
    record "$n eval machines $t - - $l"
  done
  hosts_down "$dir"
}

script_run() { # script_run N R
  local n=$1 r=$2 dir=$work/bl-$1-$2 t copies acts l
  mkdir -p "$dir"
  hosts_up "$dir" "$n"
  local nonce=bl-$n-$r-$(now)
  gen_network "$dir" "$nonce" 0
  for c in cold no-change change; do
    [ $c = change ] && gen_network "$dir" "$nonce" 1
    l=$(load)
    timed t "$root/bench/deploy/baseline.sh" "$dir" "$nixpkgs"
    copies=$(grep -c '^copying path' "$dir/baseline.log" || true)
    acts=$(grep -c '^activating the configuration' "$dir/baseline.log" || true)
    record "$n script $c $t $copies $acts $l"
  done
  hosts_down "$dir"
}

echo "machine: $(nproc) cores, $(nix --version), load average $(cut -d' ' -f1-3 /proc/loadavg)" |
  tee "$out/machine.txt"
for n in $ns; do
  for ((r = 1; r <= runs; r++)); do
    nixops_run "$n" "$r"
    script_run "$n" "$r"
  done
done

# Summary: median, min, max per N, tool and case.
{
  printf '%4s %-7s %-16s %8s %8s %8s %7s %7s\n' N tool case median min max copies acts
  for n in $ns; do
    for tc in "nixops cold" "script cold" "nixops no-change" "script no-change" \
      "nixops no-change-noact" "eval info" "eval machines" "nixops change" "script change"; do
      set -- $tc
      s=$(awk -v n="$n" -v t="$1" -v c="$2" '$1 == n && $2 == t && $3 == c { print $4 }' "$results" | stats)
      col() {
        awk -v n="$n" -v t="$1" -v c="$2" -v k="$3" '$1 == n && $2 == t && $3 == c { print $k }' \
          "$results" | sort -u | tr '\n' ',' | sed 's/,$//'
      }
      # shellcheck disable=SC2086
      printf '%4s %-7s %-16s %8s %8s %8s %7s %7s\n' "$n" "$1" "$2" $s \
        "$(col "$1" "$2" 5)" "$(col "$1" "$2" 6)"
    done
  done
} | tee "$out/deploy-summary.txt"

# Ratios of medians: nixops / script per case, and the no-change deploy without
# activation against one evaluation of `info`.
{
  printf '%4s %-28s %8s\n' N ratio value
  for n in $ns; do
    med() {
      awk -v n="$n" -v t="$1" -v c="$2" '$1 == n && $2 == t && $3 == c { print $4 }' "$results" |
        stats | cut -d' ' -f1
    }
    for c in cold no-change change; do
      printf '%4s %-28s %8.2f\n' "$n" "nixops/script $c" "$(echo "$(med nixops $c) / $(med script $c)" | bc -l)"
    done
    printf '%4s %-28s %8.2f\n' "$n" "no-change-noact/eval-info" \
      "$(echo "$(med nixops no-change-noact) / $(med eval info)" | bc -l)"
    printf '%4s %-28s %8.2f\n' "$n" "no-change-noact/eval-machines" \
      "$(echo "$(med nixops no-change-noact) / $(med eval machines)" | bc -l)"
  done
} | tee "$out/deploy-ratios.txt"
