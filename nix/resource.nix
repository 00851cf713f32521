# Options nixops itself sets on every machine and resource.
{ lib, ... }:

{
  options = {
    deployment.name = lib.mkOption {
      type = lib.types.str;
      description = "The name of the deployment. Set by nixops.";
    };
    deployment.uuid = lib.mkOption {
      type = lib.types.str;
      description = "The UUID of the deployment. Set by nixops.";
    };
    deployment.arguments = lib.mkOption {
      type = lib.types.attrs;
      default = { };
      description = "The deployment arguments (`nixops set-args`). Set by nixops.";
    };
  };
}
