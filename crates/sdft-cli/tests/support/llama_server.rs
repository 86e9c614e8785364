//! The serving tests' helpers: running the `sdft` binary, and a real llama.cpp
//! `llama-server` on 127.0.0.1 (a free
//! port), started and stopped by the test. The binary is `$SDFT_LLAMA_SERVER`,
//! or `$SDFT_HOME/bin/llama-server` as `cargo xtask llama-server` links it;
//! without it the test says once that it did not run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn llama_server() -> Option<PathBuf> {
    let p = std::env::var_os("SDFT_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| sdft_assets::sdft_home().join("bin/llama-server"));
    if p.is_file() {
        Some(p)
    } else {
        sdft_assets::skip(
            "llama-server",
            &format!(
                "no llama-server at {} (cargo xtask llama-server, or set SDFT_LLAMA_SERVER); the serving tests did not run",
                p.display()
            ),
        );
        None
    }
}

/// A running llama-server, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// `http://127.0.0.1:PORT` (no `/v1`).
    pub root: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` serving `model` as `smollm2`, with `extra` arguments, and
/// waits for its health check.
pub fn start(bin: &Path, model: &Path, extra: &[&str]) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--alias", "smollm2", "-t", "2", "-c", "4096", "-np", "2"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let root = format!("http://127.0.0.1:{port}");
    let server = Server {
        child,
        url: format!("{root}/v1"),
        root,
    };
    let health = format!("{}/health", server.root);
    let t = Instant::now();
    loop {
        if let Ok(r) = ureq::get(&health).timeout(Duration::from_secs(5)).call() {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "llama-server did not come up on {health} in 180 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    server
}

/// Runs the `sdft` binary under test.
pub fn sdft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdft"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `sdft` and returns its standard output; fails the test when it fails.
pub fn ok(args: &[&str]) -> String {
    let o = sdft(args);
    assert!(
        o.status.success(),
        "sdft {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `sdft` and returns its standard error; fails the test when it succeeds.
pub fn fails(args: &[&str]) -> String {
    let o = sdft(args);
    assert!(!o.status.success(), "sdft {args:?} should have failed");
    String::from_utf8_lossy(&o.stderr).into_owned()
}
