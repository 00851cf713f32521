#!/bin/sh
# Tests of the mini NixOS fixture (tests/fixtures/mini-nixpkgs): module-system
# semantics, eval-config.nix, error messages, toplevel builds, evaluation time, and
# switch-to-configuration applied for real inside a throwaway namespace.
# Needs: nix-instantiate/nix-build, /usr/bin/python3, and for the activation part
# root, unshare, ip, useradd/groupadd, overlayfs and tmpfs. Exits non-zero on any failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
fixture=$(cd "$here/../fixtures/mini-nixpkgs" && pwd)
cd "$here"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "FAIL: prerequisite \`$1' is missing" >&2; exit 2; }; }
for t in nix-instantiate nix-build unshare ip useradd groupadd; do need "$t"; done
[ -x /usr/bin/python3 ] || { echo "FAIL: prerequisite /usr/bin/python3 is missing (Debian package python3)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "FAIL: the activation tests must run as root" >&2; exit 2; }

nixopts="--option substituters '' --option build-users-group '' -I nixpkgs=$fixture"
inst() { eval nix-instantiate $nixopts '"$@"'; }
build() { eval nix-build $nixopts --no-out-link '"$@"'; }

# Compares the JSON on stdin with the expected JSON in $2.
json_eq() {
  /usr/bin/python3 -c '
import json, sys
got = json.load(sys.stdin); want = json.loads(sys.argv[2]); bad = 0
for k, v in want.items():
    if got.get(k) != v:
        print("FAIL: %s: %s: expected %r, got %r" % (sys.argv[1], k, v, got.get(k)), file=sys.stderr); bad = 1
    else:
        print("ok: %s: %s" % (sys.argv[1], k))
sys.exit(bad)' "$1" "$2" || failures=$((failures + 1))
}

# Expects evaluation of errors.nix case $1 to fail with every pattern in $2...
expect_error() {
  case_=$1; shift
  out=$(inst --eval --strict errors.nix --argstr case "$case_" 2>&1) && { fail "$case_: evaluation succeeded: $out"; return; }
  for p in "$@"; do
    if printf '%s\n' "$out" | grep -qF -- "$p"; then ok "$case_ mentions $p"; else fail "$case_: [$p] not in: $out"; fi
  done
}

echo "== package set"
pk=$(build pkgs.nix -A joined -A cmd -A info 2>/dev/null) || fail "nix-build pkgs.nix"
set -- $pk
[ "$("$1/bin/hello-sh")" = "hello from sh" ] && ok "symlinkJoin + writeShellScriptBin" || fail "symlinkJoin: $1"
[ "$(cat "$1/share/t")" = "text file" ] && ok "writeTextFile destination" || fail "writeTextFile: $1"
[ "$(cat "$2/written") $("$2/script") $(cat "$2/value")" = "written script v" ] && ok "runCommand, writeText, writeScript" || fail "runCommand: $2"
printf '%s' "$(cat "$3")" | json_eq pkgs '{"pathHasEvalConfig": true, "system": true, "libOk": true}'

echo "== module system"
inst --eval --strict --json lib-merge.nix | json_eq lib-merge '{
  "prio": 2, "prioDefault": 3, "prioForce": 5,
  "list": ["a", "shared", "file", "b"], "ordered": ["first", "middle", "last"],
  "text": "one\ntwo", "maybe": null, "eitherv": 3, "attrs": {"a": 10},
  "lazyAttrsNames": ["z"],
  "subs": {"x": {"label": "ex", "port": 8080, "shout": "EX"}, "y": {"label": "why", "port": 80, "shout": "WHY"}},
  "subList": [{"n": 7}, {"n": 1}],
  "fromArgs": "SM", "enabled": false, "applied": 20, "ro": "fixed",
  "listIsDefined": true, "undefinedIsDefined": false, "listFiles": 2,
  "listDefinitions": [["a"], ["shared"], ["file"], ["b"]], "prioValue": 2,
  "fromFile": ["imported once"]
}'

echo "== eval-config.nix with a two-machine network"
inst --eval --strict --json eval-basic.nix | json_eq eval-basic '{
  "webHost": "web", "dbHost": "dbhost", "webPorts": [2222], "dbPorts": [22],
  "webTcp": [2222, 1000, 80, 8080], "release": "24.05", "webState": "21.11", "dbState": "20.09",
  "rootKeys": ["ssh-ed25519 AAAA root@web"], "aliceGroup": "users", "aliceHome": "/home/alice",
  "aliceKeys": ["ssh-ed25519 BBBB alice"], "etcNames": ["mini/hello"],
  "activationOrder": ["a", "b", "groups", "users", "etc"],
  "knownHosts": "web ssh-ed25519 CCCC\n", "portsDefined": true, "portsFiles": 1, "keysGroup": 96,
  "toplevelName": "nixos-system-web-24.05"
}'

echo "== error messages"
expect_error unknownOption "The option \`deployment' does not exist." "errors-unknown.nix"
out=$(inst --eval --strict errors.nix --argstr case unknownUnchecked 2>&1)
[ "$out" = '"known"' ] && ok "checkConfigurationOptions = false accepts unknown options" || fail "unknownUnchecked: $out"
expect_error typeError "A definition for option \`services.openssh.ports.\"[definition 1-entry 1]\"' is not of type \`16 bit unsigned integer" "errors-type.nix" '"twenty-two"'
expect_error conflict "The option \`networking.hostName' has conflicting definition values" '"a"' '"b"'
expect_error badModule "has an unsupported attribute \`services'"
expect_error unknownInSubmodule "The option \`users.users.bob.nosuch' does not exist."
expect_error failedAssertion "Failed assertions:" "the sky is falling"

echo "== toplevel builds"
paths=$(build machines.nix -A a -A aTwin -A changed -A reboot -A failing -A noweb -A slow 2>/dev/null) || fail "nix-build machines.nix"
set -- $paths
[ $# -eq 7 ] || { fail "expected 7 toplevels, got: $paths"; exit 1; }
A=$1 TWIN=$2 CHANGED=$3 REBOOT=$4 FAILING=$5 NOWEB=$6 SLOW=$7
[ "$A" = "$TWIN" ] && ok "same configuration, same toplevel" || fail "equal configs differ: $A $TWIN"
[ "$A" != "$CHANGED" ] && ok "changed configuration, new toplevel" || fail "changed config has the same toplevel"
case "$A" in *-nixos-system-mini-24.05) ok "toplevel name" ;; *) fail "toplevel name: $A" ;; esac
for f in bin/switch-to-configuration activate etc/mini/hello nixos-version config.json sw/bin/systemctl; do
  [ -e "$A/$f" ] && ok "toplevel has $f" || fail "toplevel lacks $f"
done
[ "$(cat "$A/nixos-version")" = "24.05" ] && ok "nixos-version" || fail "nixos-version: $(cat "$A/nixos-version")"

echo "== evaluation time"
start=$(date +%s%N)
drvs=$(inst eval-many.nix --arg n 30 2>/dev/null | wc -l)
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
[ "$drvs" -eq 30 ] && ok "30 machines instantiated" || fail "30 machines: got $drvs derivations"
echo "   30 machines: ${ms} ms"
[ "$ms" -lt 5000 ] && ok "30 machines under 5 s" || fail "30 machines took ${ms} ms"

echo "== activation in a private namespace"
if unshare -m -n --propagation private "$here/activation-inside.sh" "$A" "$CHANGED" "$REBOOT" "$FAILING" "$NOWEB" "$SLOW"; then
  ok "activation"
else
  fail "activation (see above)"
fi

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all mini NixOS tests passed"
