#!/usr/bin/env bash
# The unavoidable work of a deploy, as a minimal script with nixops' parallelism:
#
#   1. one nix-build of every machine's toplevel through the same Nix glue
#      (nix/eval-machine-info.nix, `-A machines`, the same network files and a
#      physical expression of the same shape nixops generates), while an ssh
#      ControlMaster is opened to every host;
#   2. per host, all hosts at once: nix-copy-closure --to (at most COPY=5 at a
#      time, nixops' default --max-concurrent-copy; skipped when the host got
#      this toplevel from the previous run: copying it again is avoidable work,
#      the script remembers what it deployed in DIR/deployed/), then over the master
#      `nix-env -p /nix/var/nix/profiles/system --set <toplevel>` and
#      `<toplevel>/bin/switch-to-configuration switch` (activations unlimited,
#      nixops' default --max-concurrent-activate -1). A host starts activating
#      as soon as its own copy is done, as in nixops.
#
#   baseline.sh DIR NIXPKGS
#
# DIR holds network.nix, hosts.nix, hosts.txt ("name ip" lines) and env
# (SSH_AUTH_SOCK, KNOWN_HOSTS), as written by lib.sh. Nix options come from
# NIX_CONFIG (substituters and build-users-group empty).
set -euo pipefail
dir=$1
nixpkgs=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
copy_limit=${COPY:-5}
# shellcheck disable=SC1091
. "$dir/env"
export SSH_AUTH_SOCK

names=()
ips=()
while read -r name ip; do
  names+=("$name")
  ips+=("$ip")
done <"$dir/hosts.txt"

# The physical expression: the same per-machine fragments nixops writes for a
# `none` machine (authorized client key, state version, stock networking bits).
key=$(ssh-add -L | head -n 1)
{
  echo '{'
  for name in "${names[@]}"; do
    cat <<NIX
  $name = { config, lib, pkgs, ... }: {
    config = {
      boot.kernelModules = [];
      networking = { extraHosts = "\n"; firewall.trustedInterfaces = []; };
      system.stateVersion = ( lib.mkDefault "24.05" );
    };
    imports = [ { config.users.extraUsers.root.openssh.authorizedKeys.keys = [ "$key" ]; } ];
  };
NIX
  done
  echo '}'
} >"$dir/physical.nix"

ctl=$(mktemp -d /tmp/bl.XXXXXX)
sshopts=(-o StrictHostKeyChecking=accept-new -o "UserKnownHostsFile=$KNOWN_HOSTS"
  -o BatchMode=yes -o ConnectTimeout=10)
cleanup() {
  for i in "${!names[@]}"; do
    ssh -S "$ctl/$i" -O exit "root@${ips[$i]}" 2>/dev/null || true
  done
  rm -rf "$ctl"
}
trap cleanup EXIT

# BL_TIMES=FILE: append "phase seconds-since-start" lines (for phase analysis).
t_start=$(date +%s.%N)
mark() { [ -z "${BL_TIMES:-}" ] || echo "$1 $(echo "$(date +%s.%N) - $t_start" | bc)" >>"$BL_TIMES"; }

# 1. Masters (in the background) and the build.
for i in "${!names[@]}"; do
  ssh -M -N -f -S "$ctl/$i" -o ControlPersist=600 -o ServerAliveInterval=60 \
    "${sshopts[@]}" -x "root@${ips[$i]}" &
done
list=$(printf ' "%s"' "${names[@]}")
nix-build -I "nixpkgs=$nixpkgs" -I "nixops=$root/nix" \
  --arg networkExprs "[ $dir/network.nix $dir/hosts.nix $dir/physical.nix ]" \
  --arg args '{}' --argstr uuid 00000000-0000-0000-0000-000000000000 \
  --argstr deploymentName bench --arg checkConfigurationOptions true \
  "$root/nix/eval-machine-info.nix" --arg names "[$list ]" -A machines \
  -o "$dir/configs" >/dev/null 2>"$dir/build.log"
mark built
wait
mark connected

# 2. Copy (a token per copy slot) and activate, every host on its own.
mkdir -p "$dir/deployed"
fifo=$ctl/slots
mkfifo "$fifo"
exec 3<>"$fifo"
for ((k = 0; k < copy_limit; k++)); do printf x >&3; done
one() {
  local i=$1 tl
  tl=$(readlink -f "$dir/configs/${names[$i]}")
  local ssh=(ssh -S "$ctl/$i" "${sshopts[@]}" -x "root@${ips[$i]}" --)
  if [ "$(cat "$dir/deployed/${names[$i]}" 2>/dev/null)" != "$tl" ]; then
    read -r -n 1 -u 3 _
    NIX_SSHOPTS="${sshopts[*]} -oControlPath=$ctl/$i" \
      nix-copy-closure --to "root@${ips[$i]}" "$tl" 2>&1
    printf x >&3
  fi
  "${ssh[@]}" nix-env -p /nix/var/nix/profiles/system --set "$tl"
  mark "activating-${names[$i]}"
  "${ssh[@]}" "$tl/bin/switch-to-configuration" switch
  mark "activated-${names[$i]}"
  echo "$tl" >"$dir/deployed/${names[$i]}"
}
pids=()
for i in "${!names[@]}"; do
  one "$i" >"$ctl/$i.log" 2>&1 &
  pids+=($!)
done
status=0
for k in "${!pids[@]}"; do
  if ! wait "${pids[$k]}"; then
    echo "baseline: ${names[$k]} failed:" >&2
    cat "$ctl/$k.log" >&2
    status=1
  fi
done
cat "$ctl"/*.log >"$dir/baseline.log"
mark done
exit $status
