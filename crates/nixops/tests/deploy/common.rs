//! What only the deploy tests share: machine configurations of the mini NixOS.
//! The environment they run in is `nixops_testkit::env::NetEnv`.

/// A machine configuration serving `message` with toyweb.
pub fn web(message: &str) -> String {
    format!("{{ services.toyweb = {{ enable = true; message = \"{message}\"; }}; }}")
}
