#!/bin/sh
# Time the read-only state commands of the release `nixops` binary on a state file
# of D deployments with M machines each (about 13 attributes per machine), written
# in NixOps' exact format by make-big-state.sh:
#
#   nixops list
#   nixops info --no-eval -d <one deployment>
#   nixops info --no-eval --all
#   nixops export --all
#
# and, as a yardstick of how fast the machine is during the run, the sqlite3 CLI
# reading the whole ResourceAttrs table (what any SQLite-based reader must do to
# show every machine).
#
# Each runs under `hyperfine --warmup 3 --runs 20 -N` (output to /dev/null); then
# once under `/usr/bin/time -v` for the maximum RSS. Besides wall-clock times the
# summary gives the mean CPU time (user + system, all threads): on a shared,
# loaded machine it moves less than the wall clock, so compare both, and the
# load average printed before and after. Needs sqlite3, hyperfine, jq and GNU time.
#
#   bench/state/run.sh [D=100] [M=100] [OUT_DIR]
#
# OUT_DIR (default: a temporary directory) receives hyperfine's JSON and a summary.
# The binary is the release build of scripts/build-release (static on Linux).
# NIXOPS_BIN=/path/to/nixops times that binary instead of building this tree's
# (to compare two builds on the same file and machine state).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
d=${1:-100}
m=${2:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${3:-$work}
mkdir -p "$out"
for tool in sqlite3 hyperfine jq /usr/bin/time; do
  command -v $tool >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done

if [ -n "${NIXOPS_BIN:-}" ]; then
  nixops=$NIXOPS_BIN
else
  nixops=$("$root/scripts/build-release" --quiet)
fi

state=$work/big.nixops
"$root/bench/state/make-big-state.sh" "$state" "$d" "$m"
one=$(sqlite3 "$state" "select value from DeploymentAttrs where name = 'name' order by deployment limit 1 offset $((d / 2))")
# Open once read-write so the file is in WAL mode like a file NixOps has used, and
# the timings do not include that switch.
"$nixops" list -s "$state" >/dev/null

echo "state file: $(du -h "$state" | cut -f1), $d deployments x $m machines, one = $one"
echo "machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"

hyperfine --warmup 3 --runs 20 -N --export-json "$out/state.json" \
  -n list "$nixops list -s $state" \
  -n info-one "$nixops info -s $state --no-eval -d $one" \
  -n info-all "$nixops info -s $state --no-eval --all" \
  -n export-all "$nixops export -s $state --all" \
  -n sqlite3-scan "sqlite3 $state 'select max(length(value)) from ResourceAttrs'"

rss() {
  /usr/bin/time -v "$@" 2>&1 >/dev/null | sed -n 's/.*Maximum resident set size (kbytes): //p'
}
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
{
  printf '%-12s %10s %10s %10s %10s %10s\n' command median_ms min_ms max_ms cpu_ms maxrss_kb
  for name in list info-one info-all export-all sqlite3-scan; do
    case $name in
      list) r=$(rss "$nixops" list -s "$state") ;;
      info-one) r=$(rss "$nixops" info -s "$state" --no-eval -d "$one") ;;
      info-all) r=$(rss "$nixops" info -s "$state" --no-eval --all) ;;
      export-all) r=$(rss "$nixops" export -s "$state" --all) ;;
      sqlite3-scan) r=$(rss sqlite3 "$state" 'select max(length(value)) from ResourceAttrs') ;;
    esac
    jq -r --arg n "$name" --arg r "$r" '.results[] | select(.command == $n) |
      "\(.command) \(.median * 1000) \(.min * 1000) \(.max * 1000) \((.user + .system) * 1000) \($r)"' "$out/state.json" |
      while read -r c med min max cpu kb; do
        printf '%-12s %10.1f %10.1f %10.1f %10.1f %10s\n' "$c" "$med" "$min" "$max" "$cpu" "$kb"
      done
  done
} | tee "$out/state-summary.txt"
