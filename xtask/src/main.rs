//! `cargo xtask`: project automation for sdft-rs.
//!
//! Commands:
//! - `test`: what CI runs (`.ci/run`): the whole workspace's tests, doc tests
//!   included, against the locked dependency versions. Set `SDFT_SHARED=../shared`
//!   to include the tests that read the paper's data files.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test [ARGS...]   run the workspace tests (extra ARGS go to `cargo test`)";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    match std::env::var_os("SDFT_SHARED") {
        Some(s) => eprintln!("xtask: SDFT_SHARED={} (tests read the paper's data)", PathBuf::from(s).display()),
        None => eprintln!("xtask: SDFT_SHARED is unset: tests that read the paper's data will say they did not run"),
    }
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["test", "--workspace", "--locked"])
        .args(extra);
    run(cmd)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command `{other}`\n\n{USAGE}"),
    }
}
