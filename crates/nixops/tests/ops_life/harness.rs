//! `OpsEnv`: a `nixops_testkit::env::NetEnv` whose deployment is always `d`,
//! with this suite's shorthands. Its `run(cmd, args)`, `create(network)` and
//! `deploy()` take the place of `NetEnv`'s more general ones.

use std::ops::Deref;

use nixops_testkit::env::{NetEnv, Run, NO_CACHE};

use crate::NIXOPS;

/// The deployment every test creates.
const NAME: &str = "d";

pub struct OpsEnv(NetEnv);

impl Deref for OpsEnv {
    type Target = NetEnv;

    fn deref(&self) -> &NetEnv {
        &self.0
    }
}

impl OpsEnv {
    /// Hosts with these names, or `None` when the machine cannot run them.
    pub fn new(names: &[&str]) -> Option<OpsEnv> {
        NetEnv::new(NIXOPS, names).map(OpsEnv)
    }

    /// `nixops create` of `network.nix` (with `network`) and `hosts.nix` as
    /// deployment `d`, with the mini NixOS as `<nixpkgs>`.
    pub fn create(&self, network: &str) {
        let net = self.write("network.nix", network);
        self.0
            .create_as(NAME, &[&net, &self.path("hosts.nix")])
            .ok();
    }

    /// `nixops <cmd> -d d <args> --option substituters '' --option build-users-group ''`.
    pub fn run(&self, cmd: &str, args: &[&str]) -> Run {
        self.0.run(&args_of(cmd, args))
    }

    /// Like [`OpsEnv::run`], with `stdin` as the input.
    pub fn run_with_stdin(&self, cmd: &str, args: &[&str], stdin: &str) -> Run {
        self.0.run_with_stdin(&args_of(cmd, args), stdin)
    }

    /// A deploy that must succeed.
    pub fn deploy(&self) -> Run {
        self.run("deploy", &[]).ok()
    }

    /// The Status cell of `machine` in `nixops info --no-eval`, if it is listed.
    pub fn status(&self, machine: &str) -> Option<String> {
        let info = self.run("info", &["--no-eval"]).ok();
        info.stdout.lines().find_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.get(1) == Some(&machine)).then(|| cells[2].to_owned())
        })
    }

    /// `owner group mode` of a file on a host.
    pub fn stat(&self, host: &str, path: &str) -> String {
        self.on(host, &["stat", "-c", "%U %G %a", path])
    }

    /// The state of one machine as `nixops export` shows it.
    pub fn exported(&self, machine: &str) -> serde_json::Value {
        let all = self.export();
        let depl = all
            .as_object()
            .and_then(|o| o.values().next())
            .expect("one deployment");
        depl["resources"][machine].clone()
    }
}

fn args_of<'a>(cmd: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![cmd, "-d", NAME];
    all.extend_from_slice(args);
    all.extend(NO_CACHE);
    all
}
