# Evaluates a small two-machine network through eval-config.nix, the way the
# deployer does, and returns values the test script compares.
let
  pkgs = import <nixpkgs> { };
  lib = pkgs.lib;
  evalConfig = import <nixpkgs/nixos/lib/eval-config.nix>;
  common = { config, lib, pkgs, name, ... }: {
    services.openssh.enable = true;
    networking.firewall.allowedTCPPorts = [ 1000 ];
    users.extraUsers.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA root@${name}" ];
    system.stateVersion = lib.mkDefault "20.09";
  };
  machine = name: extra: evalConfig {
    modules = [ common extra { networking.hostName = lib.mkOverride 900 name; } ];
    extraArgs = { inherit name; nodes = { }; };
  };
  web = machine "web" ({ config, lib, ... }: {
    services.toyweb = { enable = true; port = 8080; };
    services.openssh.ports = lib.mkForce [ 2222 ];
    networking.firewall.allowedTCPPorts = lib.mkMerge [ [ 80 ] (lib.mkIf config.services.toyweb.enable [ 8080 ]) ];
    users.users.alice = { isNormalUser = true; extraGroups = [ "wheel" ]; };
    users.extraUsers.alice.openssh.authorizedKeys.keys = [ "ssh-ed25519 BBBB alice" ];
    environment.etc."mini/hello".text = "hello";
    environment.etc."mini/hello2" = lib.mkIf false { text = "never"; };
    system.activationScripts.b = { text = "echo b"; deps = [ "a" ]; };
    system.activationScripts.a = "echo a";
    system.stateVersion = "21.11";
  });
  db = machine "db" { networking.hostName = "dbhost"; services.openssh.knownHosts.web = { hostNames = [ "web" ]; publicKey = "ssh-ed25519 CCCC"; }; };
in {
  webHost = web.config.networking.hostName;
  dbHost = db.config.networking.hostName;
  webPorts = web.config.services.openssh.ports;
  dbPorts = db.config.services.openssh.ports;
  webTcp = web.config.networking.firewall.allowedTCPPorts;
  release = web.config.system.nixos.release;
  webState = web.config.system.stateVersion;
  dbState = db.config.system.stateVersion;
  rootKeys = web.config.users.users.root.openssh.authorizedKeys.keys;
  aliceGroup = web.config.users.users.alice.group;
  aliceHome = web.config.users.users.alice.home;
  aliceKeys = web.config.users.users.alice.openssh.authorizedKeys.keys;
  etcNames = builtins.filter (n: lib.hasPrefix "mini/" n) (builtins.attrNames web.config.environment.etc);
  activationOrder = map (s: s.name) web.config.system.activationOrder;
  knownHosts = db.config.environment.etc."ssh/ssh_known_hosts".text;
  portsDefined = web.options.services.openssh.ports.isDefined;
  portsFiles = builtins.length web.options.services.openssh.ports.files;
  keysGroup = web.config.users.groups.keys.gid;
  toplevelName = web.config.system.build.toplevel.name;
}
