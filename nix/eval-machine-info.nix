# Evaluates a NixOps network: the machines' NixOS configurations, the
# deployment attributes that nixops reads (`info`), the build of the selected
# machines (`machines`) and the arguments the network files take
# (`nixopsArguments`). Only the standard nixpkgs `lib` API is used, so this
# works with any nixpkgs that provides `nixos/lib/eval-config.nix`.
{ system ? builtins.currentSystem
, networkExprs
  # What nixops knows of each machine from its state, as network files whose
  # attributes are machine names; machines the network does not define are
  # ignored, so a stale guess can never add a machine.
, physicalExprs ? [ ]
, checkConfigurationOptions ? true
, uuid
, deploymentName
, args ? {}
}:

let
  # A network file is an attribute set or a function of the deployment
  # arguments (`nixops set-args`).
  call = x: if builtins.isFunction x then x args else x;

  readNetwork = file: (call (import file)) // { _file = toString file; };

  # All network files, following `require`, each read once.
  userNetworks =
    let
      toKey = file: { key = toString file; inherit file; };
      closure = builtins.genericClosure {
        startSet = map toKey networkExprs;
        operator = item: map toKey ((readNetwork item.file).require or []);
      };
    in map (item: readNetwork item.file) closure;

  # Every top-level attribute name -> the list of its values, in file order.
  network = builtins.zipAttrsWith (name: values: values) userNetworks;

  physicalNetworks = map
    (file: builtins.intersectAttrs (removeAttrs network reserved) (import file)
      // { _file = toString file; })
    physicalExprs;

  networks = userNetworks ++ physicalNetworks;

  pkgs = (builtins.head (network.network or [ {} ])).nixpkgs or (import <nixpkgs> { inherit system; });
  inherit (pkgs) lib;

  evalConfig = import (pkgs.path + "/nixos/lib/eval-config.nix");

  reserved = [ "network" "defaults" "resources" "require" "nixpkgs" "_file" ];

  # Without `lib`, so that asking only for the names loads no nixpkgs.
  machineNames = builtins.attrNames (removeAttrs network reserved);

  # `defaults` of every file, each keeping the file it came from so that the
  # module system names it in error messages.
  defaults = lib.concatMap
    (n: lib.optional (n ? defaults) { imports = [ n.defaults ]; _file = n._file; })
    networks;

  deploymentInfoModule = {
    deployment = {
      name = deploymentName;
      arguments = args;
      inherit uuid;
    };
  };

  nodes = lib.listToAttrs (map (machineName: {
    name = machineName;
    value = evalConfig {
      inherit system;
      check = checkConfigurationOptions;
      modules =
        lib.concatMap
          (n: lib.optional (n ? ${machineName})
            { imports = [ n.${machineName} ]; _file = n._file; })
          networks
        ++ defaults
        ++ [ deploymentInfoModule
             { key = "nixops-stuff";
               _file = toString ./eval-machine-info.nix;
               imports = [ ./options.nix ./resource.nix ];
               networking.hostName = lib.mkOverride 900 machineName;
               deployment.targetHost = lib.mkOverride 900 machineName;
               _module.check = lib.mkOverride 900 checkConfigurationOptions;
               _module.args = {
                 inherit nodes resources uuid deploymentName;
                 name = machineName;
               };
             }
           ];
    };
  }) machineNames);

  # Non-machine resources are passed through: each definition (an attribute
  # set or a function of the usual module arguments) is merged recursively.
  resourcesByType = builtins.zipAttrsWith (type: values: values) (network.resources or []);

  resources = lib.mapAttrs
    (type: sets: lib.mapAttrs
      (name: defs: lib.foldl lib.recursiveUpdate { }
        (map (def: if builtins.isFunction def
                   then def { inherit lib pkgs uuid name resources nodes deploymentName; }
                   else def)
             defs))
      (builtins.zipAttrsWith (name: values: values) sets))
    resourcesByType;

  # A key must have exactly one source. Checked here rather than through the
  # NixOS `assertions` option so that `info` reports it too.
  keyErrors = config: lib.concatLists (lib.mapAttrsToList (key: k:
    let sources = lib.count (x: x != null) [ k.text k.keyFile k.keyCommand ]; in
    lib.optional (sources != 1)
      "Deployment key '${key}' must have either a 'text', 'keyCommand' or a 'keyFile' specified."
    ++ (let dups = lib.attrNames (lib.filterAttrs (n: o: n != key && o.path == k.path) config.deployment.keys); in
        lib.optional (dups != [ ])
          "Deployment key '${key}' has non-unique paths, duplicated in: ${lib.concatStringsSep ", " dups}."))
    config.deployment.keys);

  checkKeys = machineName: config: value:
    let errors = keyErrors config; in
    if errors == [ ] then value
    else throw "machine ‘${machineName}’: ${lib.concatStringsSep "; " errors}";

  backendAttrs = config: env:
    if config.deployment.targetEnv == env then config.deployment.${env} else { };

  nixosRelease = config:
    config.system.nixos.release or config.system.nixosRelease or null;

  # Names nixops refuses; reported before anything is evaluated with them.
  invalidNames = lib.filter
    (n: builtins.match "[a-zA-Z0-9_-][a-zA-Z0-9_.-]*" n == null)
    (machineNames ++ lib.concatMap (lib.concatMap lib.attrNames) (lib.attrValues resourcesByType));

in rec {
  inherit networks nodes resources machineNames;

  info = if invalidNames != [ ] then { inherit invalidNames; } else {
    machines = lib.mapAttrs (machineName: node:
      let config = node.config; in
      checkKeys machineName config (lib.scrubOptionValue {
        inherit (config.deployment)
          targetEnv targetHost targetPort targetUser sshOptions
          privilegeEscalationCommand alwaysActivate hasFastConnection owners provisionSSHKey
          healthChecks;
        keys = lib.mapAttrs (n: k: {
          inherit (k) name text keyFile keyCommand destDir user group permissions path;
        }) config.deployment.keys;
        nixosRelease = nixosRelease config;
        publicIPv4 = config.networking.publicIPv4;
        virtualbox = backendAttrs config "virtualbox";
        libvirtd = backendAttrs config "libvirtd";
        ec2 = backendAttrs config "ec2";
      })) nodes;

    # Later files win, as in NixOps; `nixpkgs` is a package set, not data.
    network = removeAttrs (lib.foldr (a: b: a // b) { } (network.network or [ ])) [ "nixpkgs" ];

    resources = lib.mapAttrs (type: lib.mapAttrs (name: lib.scrubOptionValue)) resources;
  };

  # One derivation linking the toplevel of every selected machine, so that a
  # single nix-build builds them all (in parallel, without lock contention).
  machines = { names }:
    let
      unknown = lib.filter (n: !(nodes ? ${n})) names;
      selected = map (n: { name = n; config = nodes.${n}.config; }) names;
    in
      if unknown != [ ] then throw "unknown machine ‘${builtins.head unknown}’"
      else pkgs.runCommand "nixops-machines" { preferLocalBuild = true; allowSubstitutes = false; } (''
        mkdir -p $out
      '' + lib.concatMapStrings (m: checkKeys m.name m.config ''
        ln -s ${m.config.system.build.toplevel} $out/${lib.escapeShellArg m.name}
      '') selected);

  # What a deploy needs, from one evaluation: `info`, and the derivation of
  # `machines` for the machines that a deploy with `include` and `exclude` builds
  # (those of the `none` backend). Evaluated with `--read-write-mode`, forcing
  # `drvPath` writes the derivations to the store, so that `nix-store --realise`
  # builds them without a second evaluation.
  plan = { include ? [ ], exclude ? [ ] }:
    let
      selected = lib.filter
        (n: (include == [ ] || lib.elem n include) && !(lib.elem n exclude)
            && nodes.${n}.config.deployment.targetEnv == "none")
        machineNames;
      drv = machines { names = selected; };
    in {
      inherit info;
      build =
        if info ? invalidNames || selected == [ ] then null
        # Not `outPath`: JSON would print an attribute set with one as that string.
        else { names = selected; inherit (drv) drvPath; output = drv.outPath; };
    };

  # The function arguments of every network file in the `require` closure,
  # each mapped to the files declaring it. Files are called with dummy
  # arguments only to follow `require`.
  nixopsArguments =
    let
      dummyArgs = f: lib.mapAttrs (n: v: false) (builtins.functionArgs f);
      requires = file:
        let e = import file; in
        [ (toString file) ] ++ lib.concatMap requires
          ((if builtins.isFunction e then e (dummyArgs e) else e).require or [ ]);
      files = lib.unique (lib.concatMap requires networkExprs);
      argsOf = file:
        let e = import file; in
        if builtins.isFunction e
        then map (a: { ${a} = file; }) (lib.attrNames (builtins.functionArgs e))
        else [ ];
    in builtins.zipAttrsWith (n: files: lib.unique files) (lib.concatMap argsOf files);
}
