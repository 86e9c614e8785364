//! Where candidate programs run: under bubblewrap (`bwrap`) when it is installed and
//! works here, else under the rlimit guard alone (see [`SandboxMode`]).
//!
//! Under bubblewrap a program gets no network (`--unshare-net`: only a loopback device
//! of its own, so a listener on the host's 127.0.0.1 is unreachable), its own PID
//! namespace (`--unshare-pid --die-with-parent`: every descendant, `setsid()` double
//! forks included, dies with the run), its own IPC and UTS namespaces, a new session,
//! a read-only view of the whole file system with a minimal private `/dev` and `/proc`,
//! a fresh temporary directory as its only writable place, a cleared environment, and
//! the rlimits of [`crate::exec::ExecLimits`]. When the harness runs as root the
//! program runs as `nobody` (uid and gid 65534, no supplementary groups, no
//! capabilities), so that `RLIMIT_NPROC` binds (the kernel never applies it to root)
//! and root-only files stay unreadable; the interpreter's installation is then shown
//! to it read-only when it lives under a directory `nobody` cannot enter (a pyenv
//! under `/root`), over an empty directory that hides the rest.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use crate::{Error, Result};

/// The descriptor bubblewrap writes its JSON status to (`--json-status-fd`).
pub(crate) const STATUS_FD: i32 = 3;

/// The uid and gid a program runs as when the harness is root.
pub const NOBODY: u32 = 65534;

/// How candidate programs are isolated (`sdft eval --sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Bubblewrap when it works here, else the guard with a warning that says what
    /// is not isolated.
    #[default]
    Auto,
    /// Bubblewrap or an error: never run a program without it.
    Bwrap,
    /// The guard only: rlimits, a wall-clock limit and a process-group kill.
    None,
}

impl std::str::FromStr for SandboxMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "bwrap" => Ok(SandboxMode::Bwrap),
            "none" => Ok(SandboxMode::None),
            _ => Err(Error::InvalidArgument {
                name: "sandbox",
                value: s.into(),
                expected: "auto, bwrap or none",
            }),
        }
    }
}

/// What the guard alone does not isolate: the text of the fallback warning.
pub const GUARD_GAPS: &str = "programs can read and write every file this user can, open \
network connections (loopback included), and escape the process-group kill with setsid(); \
as root, RLIMIT_NPROC does not apply, so fork bombs are bounded only by the wall-clock limit";

/// A working bubblewrap setup for one interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bwrap {
    bwrap: PathBuf,
    /// `setpriv`, when the harness is root and drops to `nobody` inside.
    setpriv: Option<PathBuf>,
    /// The interpreter's real executable (`sys.executable`, past any shim).
    python: PathBuf,
    /// Directories `nobody` cannot enter, replaced by empty ones inside.
    hide: Vec<PathBuf>,
    /// The interpreter's installation, shown read-only over `hide`.
    show: Vec<PathBuf>,
}

/// Where programs of one run go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    Bwrap(Arc<Bwrap>),
    Guard,
}

impl Isolation {
    /// `bwrap` or `guard`.
    pub fn name(&self) -> &'static str {
        match self {
            Isolation::Bwrap(_) => "bwrap",
            Isolation::Guard => "guard",
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

type Probed = std::result::Result<Arc<Bwrap>, String>;

fn probes() -> &'static Mutex<HashMap<String, Probed>> {
    static P: OnceLock<Mutex<HashMap<String, Probed>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// The isolation programs run under for `mode` and interpreter `python`. The
/// bubblewrap setup is probed once per interpreter (a short program run inside it);
/// in `Auto` mode a failed probe warns once and gives the guard, in `Bwrap` mode it
/// is an error that says why.
pub fn isolation(mode: SandboxMode, python: &str) -> Result<Isolation> {
    if mode == SandboxMode::None {
        return Ok(Isolation::Guard);
    }
    let mut map = probes().lock().unwrap_or_else(|e| e.into_inner());
    let fresh = !map.contains_key(python);
    let probed = map
        .entry(python.to_string())
        .or_insert_with(|| probe(python))
        .clone();
    drop(map);
    match (probed, mode) {
        (Ok(b), _) => {
            if fresh {
                tracing::info!(python, "candidate programs run under bubblewrap");
            }
            Ok(Isolation::Bwrap(b))
        }
        (Err(why), SandboxMode::Bwrap) => Err(Error::Exec {
            message: format!("--sandbox bwrap: {why}"),
        }),
        (Err(why), _) => {
            if fresh {
                tracing::warn!(
                    "no sandbox: {why}; running candidate programs under the rlimit guard \
                     only: {GUARD_GAPS} (install the Debian package `bubblewrap`, or pass \
                     --sandbox none to silence this)"
                );
            }
            Ok(Isolation::Guard)
        }
    }
}

fn probe(python: &str) -> Probed {
    let bwrap = find_in_path("bwrap").ok_or("bubblewrap (`bwrap`) is not installed")?;
    let setpriv = if is_root() {
        Some(find_in_path("setpriv").ok_or(
            "running as root needs `setpriv` (util-linux) to drop to nobody inside bubblewrap",
        )?)
    } else {
        None
    };
    let out = Command::new(python)
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix)",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start `{python}`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    if !out.status.success() || lines.len() != 3 || lines[0].is_empty() {
        return Err(format!("`{python}` did not report sys.executable"));
    }
    let exe = PathBuf::from(lines[0]);
    let mut hide = vec![];
    let mut show = vec![];
    if setpriv.is_some() {
        let exe_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        for p in [PathBuf::from(lines[1]), PathBuf::from(lines[2]), exe_dir] {
            if let Some(h) = closed_ancestor(&p) {
                if !hide.contains(&h) {
                    hide.push(h);
                }
                if !show.contains(&p) {
                    show.push(p);
                }
            }
        }
    }
    let b = Bwrap {
        bwrap,
        setpriv,
        python: exe,
        hide,
        show,
    };
    let dir = tempfile::Builder::new()
        .prefix("sdft-probe-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?;
    prepare_dir(&b, dir.path()).map_err(|e| e.to_string())?;
    let out = b
        .command(
            dir.path(),
            &[OsString::from("-c"), "print('ok')".into()],
            false,
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start {}: {e}", b.bwrap.display()))?;
    if !out.status.success() || out.stdout != b"ok\n" {
        return Err(format!(
            "bubblewrap is installed but a test program failed in it ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Arc::new(b))
}

/// The outermost ancestor of `p` (or `p`) that others may not enter.
fn closed_ancestor(p: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut acc = PathBuf::new();
    for c in p.components() {
        acc.push(c);
        let mode = std::fs::metadata(&acc).ok()?.permissions().mode();
        if acc.is_dir() && mode & 0o001 == 0 {
            return Some(acc);
        }
    }
    None
}

/// Makes the run's directory writable for the user the program runs as.
pub(crate) fn prepare_dir(b: &Bwrap, dir: &Path) -> Result<()> {
    if b.setpriv.is_some() {
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

impl Bwrap {
    /// `bwrap ... -- [setpriv ...] PYTHON args`, with `dir` writable and current;
    /// with `status`, bubblewrap reports to descriptor [`STATUS_FD`].
    pub(crate) fn command(&self, dir: &Path, args: &[OsString], status: bool) -> Command {
        let mut c = Command::new(&self.bwrap);
        if status {
            c.arg("--json-status-fd").arg(STATUS_FD.to_string());
        }
        c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
        for h in &self.hide {
            c.args(["--perms", "0755", "--tmpfs"]).arg(h);
        }
        for s in &self.show {
            c.arg("--ro-bind").arg(s).arg(s);
        }
        c.arg("--bind").arg(dir).arg(dir).arg("--chdir").arg(dir);
        c.args([
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "PYTHONDONTWRITEBYTECODE",
            "1",
            "--setenv",
            "PYTHONHASHSEED",
            "0",
        ]);
        c.arg("--setenv").arg("HOME").arg(dir);
        c.arg("--setenv").arg("TMPDIR").arg(dir);
        if let Some(setpriv) = &self.setpriv {
            c.args(["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]);
            c.arg(setpriv).args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "--".into(),
            ]);
        } else {
            c.args(["--unshare-user", "--"]);
        }
        c.arg(&self.python).args(args);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_none_is_the_guard() {
        assert_eq!("auto".parse::<SandboxMode>().unwrap(), SandboxMode::Auto);
        assert_eq!("bwrap".parse::<SandboxMode>().unwrap(), SandboxMode::Bwrap);
        assert_eq!("none".parse::<SandboxMode>().unwrap(), SandboxMode::None);
        let e = "docker".parse::<SandboxMode>().unwrap_err().to_string();
        assert!(e.contains("expected auto, bwrap or none"), "{e}");
        assert_eq!(
            isolation(SandboxMode::None, "python3").unwrap(),
            Isolation::Guard
        );
    }

    #[test]
    fn a_missing_interpreter_fails_the_bwrap_mode() {
        let e = isolation(SandboxMode::Bwrap, "/nonexistent/python3").unwrap_err();
        assert!(matches!(e, Error::Exec { .. }), "{e}");
        // Auto falls back instead of failing; running then reports the missing
        // interpreter as a harness error.
        assert_eq!(
            isolation(SandboxMode::Auto, "/nonexistent/python3").unwrap(),
            Isolation::Guard
        );
    }
}
