# The package-set functions the deployer and examples use.
let
  pkgs = import <nixpkgs> { system = builtins.currentSystem; };
in {
  joined = pkgs.symlinkJoin {
    name = "joined";
    paths = [
      (pkgs.writeShellScriptBin "hello-sh" "echo hello from sh")
      (pkgs.writeTextFile { name = "t"; text = "text file"; destination = "/share/t"; })
    ];
  };
  cmd = pkgs.runCommand "cmd" { preferLocalBuild = true; value = "v"; } ''
    mkdir -p $out
    cp ${pkgs.writeText "wt" "written"} $out/written
    cp ${pkgs.writeScript "ws" "#!/bin/sh\necho script"} $out/script
    echo "$value" > $out/value
  '';
  info = pkgs.writeText "info" (builtins.toJSON {
    pathHasEvalConfig = builtins.pathExists (pkgs.path + "/nixos/lib/eval-config.nix");
    system = pkgs.system == builtins.currentSystem;
    libOk = pkgs.lib.concatMapStringsSep "," pkgs.lib.toUpper [ "a" "b" ] == "A,B"
      && pkgs.lib.escapeShellArg "it's" == "'it'\\''s'"
      && pkgs.lib.versionAtLeast "24.05" "15.09"
      && pkgs.lib.splitString "." "1.2.3" == [ "1" "2" "3" ]
      && pkgs.lib.recursiveUpdate { a.b = 1; a.c = 2; } { a.b = 3; } == { a = { b = 3; c = 2; }; }
      && pkgs.lib.makeBinPath [ "/x" ] == "/x/bin"
      && pkgs.lib.removeSuffix ".nix" "a.nix" == "a"
      && pkgs.lib.unique [ 1 2 1 ] == [ 1 2 ]
      && pkgs.lib.flatten [ 1 [ 2 [ 3 ] ] ] == [ 1 2 3 ]
      && pkgs.lib.mapAttrs' (n: v: pkgs.lib.nameValuePair "x${n}" v) { a = 1; } == { xa = 1; }
      && pkgs.lib.zipAttrs [ { a = 1; } { a = 2; b = 3; } ] == { a = [ 1 2 ]; b = [ 3 ]; };
  });
}
