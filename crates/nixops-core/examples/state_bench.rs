//! Time the state library on a real file: open, load every deployment, export.
//!
//! `state_bench FILE [load|list|info|export]` — `load` loads all deployments and writes
//! their count; `export` writes `export --all` JSON; `list` writes one line per
//! deployment (uuid, name, description, resource count) like `nixops list` needs;
//! `info` writes one line per machine with the attributes `info --no-eval` shows.

use std::io::Write;
use std::path::PathBuf;

use nixops_core::state::StateFile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: state_bench FILE [load|export|list]")?,
    );
    let mode = args
        .next()
        .and_then(|m| m.into_string().ok())
        .unwrap_or_else(|| "load".into());
    let t0 = std::time::Instant::now();
    let sf = StateFile::open(&path)?;
    let opened = t0.elapsed();
    // Buffered: the CLI should write listings the same way (one syscall per line
    // costs more than the load on large files).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match mode.as_str() {
        "load" => {
            let t1 = std::time::Instant::now();
            let all = sf.deployments()?;
            if std::env::var_os("STATE_BENCH_TIMES").is_some() {
                writeln!(
                    std::io::stderr(),
                    "open {opened:?}, load {:?}",
                    t1.elapsed()
                )?;
            }
            let resources: usize = all.iter().map(|d| d.resources.len()).sum();
            writeln!(out, "{} deployments, {} resources", all.len(), resources)?;
        }
        "info" => {
            // What `info --no-eval --all` shows per machine.
            let attrs = [
                "state",
                "vmId",
                "publicIpv4",
                "privateIpv4",
                "targetHost",
                "obsolete",
            ];
            for d in sf.deployments_with_resource_attrs(&attrs)? {
                for r in &d.resources {
                    let ip = r.public_ipv4().or(r.private_ipv4()).or(r.target_host());
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        r.name,
                        r.state(),
                        r.type_,
                        r.vm_id().unwrap_or(""),
                        ip.unwrap_or("")
                    )?;
                }
            }
        }
        "export" => {
            let uuids = sf.uuids()?;
            writeln!(out, "{}", sf.export(&uuids)?)?;
        }
        "list" => {
            for d in sf.deployments_shallow()? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    d.uuid,
                    d.name().unwrap_or("(none)"),
                    d.description(),
                    d.resources.len()
                )?;
            }
        }
        other => return Err(format!("unknown mode {other}").into()),
    }
    out.flush()?;
    Ok(())
}
