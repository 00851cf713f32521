# `deployment.keys`: secrets that nixops uploads to the machine (to
# /run/keys by default) without ever putting them into the Nix store.
#
# Nothing here may place a key's `text` (or a key file's contents) into a
# derivation: the activation snippet and the units refer to key paths,
# owners and permissions only.
{ config, lib, options, pkgs, ... }:

let
  inherit (lib) mkOption types;

  keyOptions = { name, config, ... }: {
    options = {
      name = mkOption {
        type = types.str;
        default = name;
        description = "The name of the key file in destDir.";
      };
      text = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "The contents of the key. One of text, keyFile and keyCommand must be set.";
      };
      keyFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        # toString keeps a path literal a plain path: the file is read by
        # nixops when it uploads the key, never copied into the Nix store.
        apply = v: if v == null then null else toString v;
        description = "A local file holding the key. One of text, keyFile and keyCommand must be set.";
      };
      keyCommand = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        description = "A local command whose output is the key. One of text, keyFile and keyCommand must be set.";
      };
      destDir = mkOption {
        type = types.path;
        default = "/run/keys";
        description = "The directory the key is written to (mode 0750, owned by root:keys).";
      };
      path = mkOption {
        type = types.path;
        default = "${config.destDir}/${config.name}";
        internal = true;
        description = "The full path of the key on the machine.";
      };
      user = mkOption {
        type = types.str;
        default = "root";
        description = "The owner of the key file.";
      };
      group = mkOption {
        type = types.str;
        default = "root";
        description = "The group of the key file.";
      };
      permissions = mkOption {
        type = types.str;
        default = "0600";
        description = "The mode of the key file, as chmod(1) accepts it.";
      };
    };
  };

  keySubmodule = types.submodule keyOptions;

  # A plain string is the deprecated spelling of `{ text = ...; }`.
  fromString = v:
    builtins.trace
      "warning: a plain string as a deployment key is deprecated; use `deployment.keys.<name>.text = \"<value>\"` instead"
      { text = v; };

  keyType = types.coercedTo types.str fromString keySubmodule;

  keys = config.deployment.keys;
  q = lib.escapeShellArg;

  activation = ''
    mkdir -p -m 0750 /run/keys
    chown root:keys /run/keys
  '' + lib.concatStrings (lib.mapAttrsToList (n: k: ''
    if [ -f ${q k.path} ]; then chown ${q "${k.user}:${k.group}"} ${q k.path}; fi
  '') keys);

  haveInotify = pkgs ? inotify-tools;

  # The unit of a key is active exactly while the key file exists, so that
  # services can want and order after `<name>-key.service`.
  keyUnit = n: k: {
    description = "Key ${k.name}";
    enable = true;
    serviceConfig = {
      TimeoutStartSec = "infinity";
      Restart = "always";
      RestartSec = "100ms";
    };
    path = lib.optional haveInotify pkgs.inotify-tools;
    preStart = ''
      while [ ! -e ${q k.path} ]; do
        ${if haveInotify
          then "inotifywait -qq -t 5 -e create,moved_to ${q k.destDir} 2>/dev/null || sleep 0.1"
          else "sleep 0.1"}
      done
    '';
    script = ''
      while [ -e ${q k.path} ]; do
        ${if haveInotify
          then "inotifywait -qq -t 5 -e delete_self ${q k.path} 2>/dev/null || sleep 0.1"
          else "sleep 0.1"}
      done
    '';
  };
in
{
  options.deployment.keys = mkOption {
    type = types.attrsOf keyType;
    default = { };
    example = { password.text = "foobar"; };
    description = ''
      Keys to upload to the machine. Each key `k` becomes the file
      `destDir/name` (default `/run/keys/k`), readable by root and the
      `keys` group, and a unit `k-key.service` that is active while the
      file exists. Key contents never enter the Nix store.
    '';
  };

  config = lib.mkMerge [
    (lib.optionalAttrs (options ? users && options.users ? groups) {
      users.groups.keys = { };
    })
    {
      system.activationScripts.nixops-keys = {
        text = activation;
        deps = lib.filter (d: options.system.activationScripts.value ? ${d}) [ "users" "groups" ];
      };

      systemd.services = {
        nixops-keys = {
          enable = lib.any (k: lib.hasPrefix "/run/" k.destDir) (lib.attrValues keys);
          description = "Waiting for NixOps Keys";
          wantedBy = [ "keys.target" ];
          before = [ "keys.target" ];
          unitConfig.DefaultDependencies = false;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
          script = ''
            while ! [ -e /run/keys/done ]; do
              sleep 0.1
            done
          '';
        };
      } // lib.mapAttrs' (n: k: lib.nameValuePair "${n}-key" (keyUnit n k)) keys;
    }
  ];
}
