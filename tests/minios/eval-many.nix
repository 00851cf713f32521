# N small machines through eval-config.nix, as the deployer evaluates a network;
# returns the toplevel .drv paths (instantiating them forces every config value).
{ n ? 30 }:
let
  pkgs = import <nixpkgs> { };
  lib = pkgs.lib;
  evalConfig = import <nixpkgs/nixos/lib/eval-config.nix>;
  names = map (i: "machine${toString i}") (lib.range 1 n);
  machine = name: evalConfig {
    modules = [
      ({ config, pkgs, ... }: {
        networking.hostName = lib.mkOverride 900 name;
        services.openssh.enable = true;
        services.toyweb = { enable = true; message = "hello ${name}"; };
        users.extraUsers.root.openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA deployer" ];
        networking.extraHosts = "198.18.0.1 gateway\n";
        system.stateVersion = lib.mkDefault "24.05";
        system.activationScripts.hello = lib.stringAfter [ "users" ] "echo hello";
        systemd.services.worker = { wantedBy = [ "multi-user.target" ]; script = "sleep 1"; };
      })
    ];
    extraArgs = { inherit name; };
  };
in lib.genAttrs names (name: (machine name).config.system.build.toplevel)
