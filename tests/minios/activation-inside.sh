#!/bin/sh
# Runs inside a private mount + network namespace (see run.sh): gives the system
# its own /run, /home, boot-marker directory and an overlay /etc, then applies
# the toplevels for real. Arguments: A CHANGED REBOOT FAILING NOWEB SLOW.
set -u
A=$1 CHANGED=$2 REBOOT=$3 FAILING=$4 NOWEB=$5 SLOW=$6
PORT=18080
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected [$3], got [$2]"; fi; }
expect_grep() { if printf '%s\n' "$2" | grep -q -- "$3"; then ok "$1"; else fail "$1: [$3] not in: $2"; fi; }

scratch=$(mktemp -d /tmp/minios-ns.XXXXXX)
cleanup() {
  if [ -f /run/mini-nixos/toyweb.pid ]; then kill -TERM "-$(cat /run/mini-nixos/toyweb.pid)" 2>/dev/null; fi
  umount /etc 2>/dev/null; umount "$scratch" 2>/dev/null; rmdir "$scratch" 2>/dev/null
}
trap cleanup EXIT
set -e
ip link set lo up
mount -t tmpfs -o mode=755 minios-run /run
mount -t tmpfs minios-scratch "$scratch"
mkdir "$scratch/upper" "$scratch/work"
mount -t overlay minios-etc -o "lowerdir=/etc,upperdir=$scratch/upper,workdir=$scratch/work" /etc
mount -t tmpfs minios-home /home
mkdir -p /nix/var/nix/mini-nixos
mount -t tmpfs minios-boot /nix/var/nix/mini-nixos
set +e

http() { /usr/bin/python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode(), end="")' "http://127.0.0.1:$PORT/" 2>/dev/null; }

# --- switch to A -------------------------------------------------------------
out=$("$A/bin/switch-to-configuration" switch 2>&1 </dev/null); rc=$?
expect_eq "switch A exit code" "$rc" 0
expect_grep "switch A says it activates" "$out" "activating the configuration..."
expect_grep "switch A sets up /etc" "$out" "setting up /etc..."
expect_grep "switch A starts toyweb" "$out" "starting the following units: .*toyweb.service"
expect_eq "/run/current-system" "$(readlink /run/current-system)" "$A"
expect_eq "boot default after switch" "$(cat /nix/var/nix/mini-nixos/boot-system)" "$A"
expect_eq "etc file content" "$(cat /etc/mini/hello)" "hello from a"
expect_eq "etc file is a link into /etc/static" "$(readlink /etc/mini/hello)" "/etc/static/mini/hello"
expect_eq "copied etc file mode and owner" "$(stat -c '%a %U %G' /etc/mini/secret)" "640 alice ministaff"
expect_eq "user alice" "$(getent passwd alice | cut -d: -f1,6)" "alice:/home/alice"
expect_eq "alice's home" "$(stat -c %U /home/alice)" "alice"
expect_grep "alice in wheel" "$(id -nG alice)" "wheel"
expect_grep "alice in ministaff" "$(id -nG alice)" "ministaff"
expect_eq "ministaff gid" "$(getent group ministaff | cut -d: -f3)" "4242"
expect_grep "keys group" "$(getent group keys)" "^keys:"
expect_eq "root authorized_keys" "$(cat /etc/ssh/authorized_keys.d/root)" "ssh-ed25519 AAAAroot deployer"
expect_eq "alice authorized_keys" "$(cat /etc/ssh/authorized_keys.d/alice)" "ssh-ed25519 AAAAalice alice"
expect_eq "toyweb answers" "$(http)" "first message"
expect_eq "snippet order" "$(cat /run/snippet-order | tr '\n' ' ')" "first second "
expect_eq "snippet after etc saw /etc" "$(cat /run/snippet-saw-etc)" "s3cret"
units=$("$A/sw/bin/systemctl" --all --full --no-legend)
expect_grep "systemctl lists toyweb" "$units" "^toyweb.service loaded active running Toy web server$"
expect_grep "systemctl lists worker" "$units" "^worker.service loaded active running Background worker$"
expect_eq "is-system-running" "$("$A/sw/bin/systemctl" is-system-running)" "running"

# --- dry-activate CHANGED: nothing changes -------------------------------------
etc_before=$(find /etc/mini /etc/static -maxdepth 0 -printf '%p %l\n'; ls -l /etc/mini)
out=$("$CHANGED/bin/switch-to-configuration" dry-activate 2>&1); rc=$?
expect_eq "dry-activate exit code" "$rc" 0
expect_grep "dry-activate would restart toyweb" "$out" "would restart the following units: toyweb.service"
expect_grep "dry-activate would start extra" "$out" "would start the following units: extra.service"
expect_eq "dry-activate keeps current-system" "$(readlink /run/current-system)" "$A"
expect_eq "dry-activate keeps toyweb" "$(http)" "first message"
expect_eq "dry-activate keeps /etc" "$(find /etc/mini /etc/static -maxdepth 0 -printf '%p %l\n'; ls -l /etc/mini)" "$etc_before"
expect_eq "dry-activate keeps boot default" "$(cat /nix/var/nix/mini-nixos/boot-system)" "$A"

# --- test CHANGED: applied, boot default untouched -------------------------------
out=$("$CHANGED/bin/switch-to-configuration" test 2>&1 </dev/null); rc=$?
expect_eq "test exit code" "$rc" 0
expect_grep "test restarts toyweb" "$out" "restarting the following units: toyweb.service"
expect_eq "test: current-system" "$(readlink /run/current-system)" "$CHANGED"
expect_eq "test: boot default unchanged" "$(cat /nix/var/nix/mini-nixos/boot-system)" "$A"
expect_eq "test: toyweb restarted with the new message" "$(http)" "second message"
expect_eq "test: new etc file" "$(cat /etc/mini/new)" "new"
if [ -e /etc/mini/hello ]; then fail "disabled etc file still present"; else ok "disabled etc file removed"; fi

# --- through a profile link, as the deployer calls it ------------------------------
mkdir -p /run/test-profiles && ln -sfn "$A" /run/test-profiles/system
out=$(/run/test-profiles/system/bin/switch-to-configuration test 2>&1 </dev/null); rc=$?
expect_eq "switch through a profile link" "$rc" 0
expect_eq "profile link resolves to the toplevel" "$(readlink /run/current-system)" "$A"
expect_eq "toyweb back to the first message" "$(http)" "first message"
out=$("$CHANGED/bin/switch-to-configuration" test 2>&1 </dev/null); rc=$?
expect_eq "back to CHANGED" "$rc" 0

# --- bad usage ------------------------------------------------------------------
"$A/bin/switch-to-configuration" frobnicate >/dev/null 2>&1; rc=$?
expect_eq "unknown action exit code" "$rc" 1

# --- boot A: only the boot default changes --------------------------------------
out=$("$A/bin/switch-to-configuration" boot 2>&1); rc=$?
expect_eq "boot exit code" "$rc" 0
expect_eq "boot: boot default" "$(cat /nix/var/nix/mini-nixos/boot-system)" "$A"
expect_eq "boot: current-system unchanged" "$(readlink /run/current-system)" "$CHANGED"

# --- exit 100 ------------------------------------------------------------------
out=$("$REBOOT/bin/switch-to-configuration" switch 2>&1 </dev/null); rc=$?
expect_eq "requireReboot exit code" "$rc" 100
expect_eq "requireReboot still activates" "$(readlink /run/current-system)" "$REBOOT"
"$REBOOT/sw/bin/systemctl" reboot 2>/dev/null; rc=$?
expect_eq "systemctl reboot exit code" "$rc" 0
if [ -f /run/mini-nixos/reboot-requested ]; then ok "reboot marker"; else fail "no reboot marker"; fi

# --- exit 4 --------------------------------------------------------------------
out=$("$FAILING/bin/switch-to-configuration" switch 2>&1 </dev/null); rc=$?
expect_eq "failing unit exit code" "$rc" 4
expect_grep "failing unit named" "$out" "the following units failed: worker.service"
units=$("$FAILING/sw/bin/systemctl" --all --full --no-legend)
expect_grep "systemctl shows the failed unit" "$units" "^worker.service loaded failed failed Background worker$"
"$FAILING/sw/bin/systemctl" is-system-running >/dev/null; rc=$?
expect_eq "is-system-running when degraded" "$rc" 1

# --- back to A heals the unit; a delay is honoured; boot-time activate ----------
start=$(date +%s)
out=$("$SLOW/bin/switch-to-configuration" switch 2>&1 </dev/null); rc=$?
end=$(date +%s)
expect_eq "slow switch exit code" "$rc" 0
if [ $((end - start)) -ge 1 ]; then ok "activationDelay honoured"; else fail "activationDelay not honoured"; fi
expect_grep "worker active again" "$("$SLOW/sw/bin/systemctl" --all --full --no-legend)" "^worker.service loaded active running"
# Simulated reboot: processes die, /run is emptied.
kill -TERM "-$(cat /run/mini-nixos/toyweb.pid)"
sleep 0.3
rm -rf /run/mini-nixos /run/current-system /run/booted-system
out=$("$A/activate" 2>&1 </dev/null); rc=$?
expect_eq "activate exit code" "$rc" 0
expect_eq "activate sets booted-system" "$(readlink /run/booted-system)" "$A"
expect_eq "activate sets current-system" "$(readlink /run/current-system)" "$A"
expect_eq "activate starts toyweb" "$(http)" "first message"

# --- NOWEB stops toyweb -----------------------------------------------------------
out=$("$NOWEB/bin/switch-to-configuration" switch 2>&1 </dev/null); rc=$?
expect_eq "noweb exit code" "$rc" 0
expect_grep "noweb stops toyweb" "$out" "stopping the following units: toyweb.service"
if http >/dev/null; then fail "toyweb still answers"; else ok "toyweb stopped"; fi
if [ -f /run/mini-nixos/toyweb.pid ]; then fail "toyweb pid file left"; else ok "no toyweb pid file"; fi

echo "activation checks: $failures failure(s)"
[ "$failures" -eq 0 ]
