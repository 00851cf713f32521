# The `deployment.*` options of a machine, plus the networking options that
# nixops fills in from its state.
{ config, lib, ... }:

let
  inherit (lib) mkOption types;
in
{
  imports = [ ./keys.nix ./backends.nix ];

  options = {
    deployment.targetEnv = mkOption {
      type = types.str;
      default = "none";
      example = "libvirtd";
      description = ''
        The environment in which the machine lives: "none" for an existing
        machine reachable over SSH, or a backend such as "libvirtd",
        "virtualbox" or "ec2".
      '';
    };

    deployment.targetHost = mkOption {
      type = types.str;
      default = config.networking.hostName;
      description = ''
        The host name or IP address used to reach the machine over SSH.
        nixops sets it to the machine's name unless the network sets it.
      '';
    };

    deployment.targetPort = mkOption {
      type = types.int;
      default = lib.head (config.services.openssh.ports or [ 22 ]);
      defaultText = "head config.services.openssh.ports";
      description = "The SSH port of the machine.";
    };

    deployment.targetUser = mkOption {
      type = types.str;
      default = "root";
      description = ''
        The user nixops logs in as. A user other than root needs
        passwordless privilege escalation and must be trusted by Nix.
      '';
    };

    deployment.sshOptions = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra options passed to ssh, verbatim.";
    };

    deployment.privilegeEscalationCommand = mkOption {
      type = types.listOf types.str;
      default = [ "sudo" "-H" "--" ];
      description = "Prefix of remote commands when targetUser is not root.";
    };

    deployment.provisionSSHKey = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether nixops generates an SSH key pair for the machine and installs
        its public key for root (targetEnv "none" only).
      '';
    };

    deployment.alwaysActivate = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether to activate the configuration even when the machine's system
        profile already points at it.
      '';
    };

    deployment.hasFastConnection = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether the machine has a fast connection to the deployer. When false,
        closures are copied with substitutes on the machine and SSH compresses.
      '';
    };

    deployment.healthChecks = mkOption {
      type = types.listOf (types.submodule {
        options = {
          name = mkOption {
            type = types.str;
            description = "What the check verifies, shown when it fails.";
          };
          command = mkOption {
            type = types.str;
            description = "A shell command run on the machine; exit status 0 means healthy.";
          };
          timeout = mkOption {
            type = types.int;
            default = 30;
            description = "Seconds the command may keep failing (it is retried every second) before the check fails.";
          };
        };
      });
      default = [ ];
      description = ''
        Checks run on the machine after each activation. When one fails, nixops
        switches the machine back to the configuration it had before the deploy
        and reports the machine as failed.
      '';
    };

    deployment.owners = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "E-mail addresses of the owners of the machine. Stored only.";
    };

    # NixOps 1.x options, accepted so that older networks evaluate.
    deployment.encryptedLinksTo = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "NixOps 1.x SSH tunnel mesh. Accepted but not set up by this nixops.";
    };

    deployment.storeKeysOnMachine = mkOption {
      type = types.bool;
      default = false;
      description = ''
        NixOps 1.x: keep keys in the Nix store of the machine. Accepted but
        ignored: keys are never put into the Nix store, and are re-sent after
        a reboot instead.
      '';
    };

    networking.privateIPv4 = mkOption {
      type = types.str;
      description = "The machine's private IPv4 address. Set by nixops.";
    };

    networking.publicIPv4 = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "The machine's public IPv4 address, if known.";
    };

    networking.vpnPublicKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Public key of the machine's VPN key pair, if any.";
    };
  };
}
