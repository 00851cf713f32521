# A small network: two web servers and a proxy in front of them.
#
# Deploy it with:
#   nixops create examples/network.nix examples/hosts.nix -d example
#   nixops deploy -d example
#
# `hosts.nix` says where the machines are (deployment.targetHost); keeping it
# in its own file lets the same network go to other machines.
{
  network.description = "Two web servers behind a proxy";
  network.enableRollback = true;

  # Applied to every machine.
  defaults = { config, ... }: {
    services.openssh.enable = true;
    environment.etc."motd".text = ''
      This is ${config.networking.hostName}, deployed by nixops.
    '';
    users.users.deploy = {
      isNormalUser = true;
      description = "Application user";
    };
  };

  web1 = { ... }: {
    services.toyweb = {
      enable = true;
      message = "Hello from web1";
    };
  };

  web2 = { ... }: {
    services.toyweb = {
      enable = true;
      message = "Hello from web2";
    };
  };

  # Other machines' configurations are visible through `nodes`.
  proxy = { nodes, ... }: {
    services.toyweb = {
      enable = true;
      message = "Proxy for ${nodes.web1.config.networking.hostName} and ${nodes.web2.config.networking.hostName}";
    };
  };
}
