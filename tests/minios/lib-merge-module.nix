{ lib, ... }: {
  options.fromFile = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
  config.fromFile = [ "imported once" ];
  config.list = [ "file" ];
}
