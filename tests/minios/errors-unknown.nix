{ networking.hostName = "known"; deployment.foo = 1; }
