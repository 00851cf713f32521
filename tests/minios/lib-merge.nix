# Module-system semantics, evaluated with the fixture's lib directly.
let
  lib = import <nixpkgs/lib>;
  inherit (lib) mkOption types;
  shared = { key = "shared"; config.list = [ "shared" ]; };
  r = lib.evalModules {
    specialArgs = { special = "S"; };
    modules = [
      ({ config, special, ... }: {
        imports = [ shared shared ./lib-merge-module.nix ./lib-merge-module.nix ];
        options = {
          prio = mkOption { type = types.int; default = 1; };
          prioDefault = mkOption { type = types.int; default = 1; };
          prioForce = mkOption { type = types.int; };
          list = mkOption { type = types.listOf types.str; default = [ ]; };
          ordered = mkOption { type = types.listOf types.str; default = [ ]; };
          text = mkOption { type = types.lines; default = ""; };
          maybe = mkOption { type = types.nullOr types.str; default = null; };
          eitherv = mkOption { type = types.either types.int types.str; };
          attrs = mkOption { type = types.attrsOf types.int; default = { }; };
          lazyAttrs = mkOption { type = types.lazyAttrsOf types.int; default = { }; };
          subs = mkOption {
            type = types.attrsOf (types.submodule ({ name, config, ... }: {
              options.label = mkOption { type = types.str; default = "label-${name}"; };
              options.port = mkOption { type = types.port; default = 80; };
              options.shout = mkOption { type = types.str; default = lib.toUpper config.label; };
            }));
            default = { };
          };
          subList = mkOption { type = types.listOf (types.submodule { options.n = mkOption { type = types.int; default = 7; }; }); default = [ ]; };
          fromArgs = mkOption { type = types.str; };
          boom = mkOption { type = types.str; };
          undefinedOpt = mkOption { type = types.str; };
          enabled = lib.mkEnableOption "a thing";
          applied = mkOption { type = types.int; default = 2; apply = x: x * 10; };
          ro = mkOption { type = types.str; default = "fixed"; readOnly = true; };
        };
        config = {
          _module.args.fromModuleArgs = "M";
          prio = 2;
          prioDefault = lib.mkDefault 3;
          prioForce = lib.mkForce 5;
          list = [ "a" ];
          ordered = lib.mkMerge [ [ "middle" ] (lib.mkAfter [ "last" ]) ];
          text = "one";
          eitherv = 3;
          attrs = lib.mkMerge [ { a = 1; } (lib.mkIf false { b = 2; }) { c = lib.mkIf false 3; } ];
          subs.x.port = 8080;
          subs.y = lib.mkIf true { label = "why"; };
          subList = [ { } { n = 1; } ];
          fromArgs = special + config.boomless;
          boom = throw "boom must stay unevaluated";
        };
      })
      ({ fromModuleArgs, ... }: {
        options.boomless = mkOption { type = types.str; default = fromModuleArgs; };
        config = {
          prio = lib.mkDefault 9;
          prioForce = 6;
          list = lib.mkIf true [ "b" ];
          ordered = lib.mkBefore [ "first" ];
          text = "two";
          attrs.a = lib.mkForce 10;
          lazyAttrs.z = lib.mkIf false 1;
          subs = lib.mkMerge [ { x.label = lib.mkDefault "ignored-default"; } { x = { label = "ex"; }; } ];
        };
      })
    ];
  };
  c = r.config;
in {
  inherit (c) prio prioDefault prioForce list ordered text maybe eitherv attrs subList fromArgs enabled applied ro;
  lazyAttrsNames = builtins.attrNames c.lazyAttrs;
  subs = c.subs;
  listIsDefined = r.options.list.isDefined;
  undefinedIsDefined = r.options.undefinedOpt.isDefined;
  listFiles = builtins.length r.options.list.files;
  listDefinitions = r.options.list.definitions;
  prioValue = r.options.prio.value;
  fromFile = c.fromFile;
}
