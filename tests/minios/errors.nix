# One configuration per error case; run.sh evaluates each and checks the message.
{ case }:
let
  evalConfig = import <nixpkgs/nixos/lib/eval-config.nix>;
  eval = modules: (evalConfig { inherit modules; }).config;
  cases = {
    unknownOption = (eval [ ./errors-unknown.nix ]).networking.hostName;
    unknownUnchecked = (eval [ ./errors-unknown.nix { environment.checkConfigurationOptions = false; } ]).networking.hostName;
    typeError = (eval [ ./errors-type.nix ]).services.openssh.ports;
    conflict = (eval [ { networking.hostName = "a"; } { networking.hostName = "b"; } ]).networking.hostName;
    badModule = (eval [ { config.networking.hostName = "a"; services.openssh.enable = true; } ]).networking.hostName;
    unknownInSubmodule = builtins.attrNames (eval [ { users.users.bob.nosuch = 1; } ]).users.users.bob;
    failedAssertion = (eval [ { assertions = [ { assertion = false; message = "the sky is falling"; } ]; } ]).system.build.toplevel.drvPath;
  };
in cases.${case}
