{ services.openssh.ports = [ "twenty-two" ]; }
