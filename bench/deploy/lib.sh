# Shared by the deploy benchmark scripts (sourced, not run).

# gen_network DIR NONCE REV [ALWAYS_ACTIVATE]: write DIR/network.nix for the hosts listed in
# DIR/hosts.txt ("name ip" lines) and DIR/hosts.nix with their addresses. Every
# machine runs toyweb; NONCE goes into every machine's /etc (so a new nonce makes
# every toplevel new), REV into the first machine's message only (a one-line
# change). ALWAYS_ACTIVATE (default true, NixOps' default) sets
# deployment.alwaysActivate on every machine.
gen_network() {
  _dir=$1 _nonce=$2 _rev=$3 _always=${4:-true}
  {
    echo '{'
    echo '  network.description = "Benchmark network";'
    echo "  defaults = { ... }: {"
    echo "    environment.etc.\"nonce\".text = \"$_nonce\";"
    echo "    deployment.alwaysActivate = $_always;"
    echo "  };"
    _first=1
    while read -r _name _ip; do
      if [ $_first = 1 ]; then _msg="Hello from $_name, revision $_rev"; _first=0
      else _msg="Hello from $_name"; fi
      echo "  $_name = { ... }: { services.toyweb = { enable = true; message = \"$_msg\"; }; };"
    done <"$_dir/hosts.txt"
    echo '}'
  } >"$_dir/network.nix"
  {
    echo '{'
    while read -r _name _ip; do
      echo "  $_name = { deployment.targetHost = \"$_ip\"; };"
    done <"$_dir/hosts.txt"
    echo '}'
  } >"$_dir/hosts.nix"
}

# hosts_up DIR N: start N fresh test hosts in DIR; writes DIR/hosts.txt and
# DIR/env (SSH_AUTH_SOCK, KNOWN_HOSTS).
hosts_up() {
  "$testkit" up --dir "$1" --hosts "$2" >"$1/up.txt"
  grep -E '^[^ ]+	[0-9.]+$' "$1/up.txt" | tr '\t' ' ' >"$1/hosts.txt"
  echo "SSH_AUTH_SOCK=$(sed -n 's/^SSH_AUTH_SOCK=//p' "$1/up.txt")" >"$1/env"
  echo "KNOWN_HOSTS=$(sed -n 's/^known hosts: *//p' "$1/up.txt")" >>"$1/env"
}

hosts_down() {
  "$testkit" down --dir "$1" >/dev/null 2>&1 || true
}

# now: seconds since the epoch with nanoseconds.
now() { date +%s.%N; }

# median of the numbers on stdin, and min and max: "median min max".
stats() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.3f %.3f %.3f\n", m, v[1], v[NR] }'
}
