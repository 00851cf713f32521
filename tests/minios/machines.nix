# Toplevels used by the build and activation tests. `a` and `aTwin` have the same
# configuration under different machine names; the others differ from `a` as named.
let
  lib = import <nixpkgs/lib>;
  evalConfig = import <nixpkgs/nixos/lib/eval-config.nix>;
  base = port: { config, lib, ... }: {
    networking.hostName = "mini";
    services.openssh.enable = true;
    services.toyweb = { enable = true; inherit port; message = "first message"; };
    users.extraUsers.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAAroot deployer" ];
    users.users.alice = { isNormalUser = true; extraGroups = [ "wheel" ]; openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAAalice alice" ]; };
    users.groups.ministaff = { gid = 4242; members = [ "alice" ]; };
    environment.etc."mini/hello".text = "hello from a\n";
    environment.etc."mini/secret" = { text = "s3cret\n"; mode = "0640"; user = "alice"; group = "ministaff"; };
    system.activationScripts.zz-late = lib.stringAfter [ "etc" ] "cat /etc/mini/secret > /run/snippet-saw-etc";
    system.activationScripts.first = "echo first >> /run/snippet-order";
    system.activationScripts.second = { text = "echo second >> /run/snippet-order"; deps = [ "first" ]; };
    systemd.services.worker = { description = "Background worker"; wantedBy = [ "multi-user.target" ]; script = "true"; };
  };
  toplevel = name: modules: (evalConfig { modules = modules; extraArgs = { inherit name; }; }).config.system.build.toplevel;
  port = 18080;
in {
  a = toplevel "a" [ (base port) ];
  aTwin = toplevel "aTwin" [ (base port) ];
  changed = toplevel "changed" [ (base port) {
    services.toyweb.message = lib.mkForce "second message";
    environment.etc."mini/hello".enable = false;
    environment.etc."mini/new".text = "new\n";
    systemd.services.extra = { description = "Extra unit"; };
  } ];
  reboot = toplevel "reboot" [ (base port) { test.requireReboot = true; } ];
  failing = toplevel "failing" [ (base port) { test.failingUnits = [ "worker" ]; } ];
  noweb = toplevel "noweb" [ (base port) { services.toyweb.enable = lib.mkForce false; } ];
  slow = toplevel "slow" [ (base port) { test.activationDelay = 1; } ];
}
