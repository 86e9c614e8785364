//! Running untrusted (model-written) Python programs: each in a fresh temporary
//! directory, in its own `python3` process and process group, with a wall-clock
//! timeout and `setrlimit` limits on memory, CPU time, processes, file size and core
//! dumps. On timeout the whole process group is killed. This is defence in depth for
//! benchmark code, not a security boundary against a determined attacker: run
//! untrusted models in a container or VM as well.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Limits for one program run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecLimits {
    /// Wall-clock limit; the process group is killed after it.
    pub timeout: Duration,
    /// Address-space limit (`RLIMIT_AS`) in bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_NPROC`: processes the user may have (counted over all of the user's
    /// processes by the kernel, and not enforced for root).
    pub max_processes: u64,
    /// `RLIMIT_FSIZE`: the largest file the program may write, in bytes.
    pub max_file_bytes: u64,
    /// The interpreter to run (`python3`).
    pub python: String,
}

impl Default for ExecLimits {
    /// 10 s, 1 GiB of address space, 64 processes, 16 MiB files, `python3`.
    fn default() -> Self {
        ExecLimits {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_processes: 64,
            max_file_bytes: 16 << 20,
            python: "python3".into(),
        }
    }
}

/// How a program run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExecOutcome {
    /// Exit status 0.
    Passed,
    /// A non-zero exit status or a signal; `stderr_tail` holds the last lines.
    Failed {
        code: Option<i32>,
        signal: Option<i32>,
        stderr_tail: String,
    },
    /// Killed after the wall-clock limit.
    TimedOut,
}

impl ExecOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, ExecOutcome::Passed)
    }

    /// A short label: `passed`, `failed: ...`, `timed out`.
    pub fn label(&self) -> String {
        match self {
            ExecOutcome::Passed => "passed".into(),
            ExecOutcome::TimedOut => "timed out".into(),
            ExecOutcome::Failed {
                code,
                signal,
                stderr_tail,
            } => {
                let last = stderr_tail.lines().last().unwrap_or("").trim();
                match (code, signal) {
                    (_, Some(s)) => format!("failed: signal {s} {last}"),
                    (Some(c), _) => format!("failed: exit {c} {last}"),
                    _ => format!("failed: {last}"),
                }
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

fn set_limit(resource: Resource, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit is async-signal-safe and only reads `lim`.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn tail(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let start = s.len().saturating_sub(max);
    let start = (start..=s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

/// Runs `program` (Python source) under `limits` and reports how it ended. Errors
/// are only for the harness itself (no temporary directory, `python3` missing);
/// anything the program does is an [`ExecOutcome`].
pub fn run_python(program: &str, limits: &ExecLimits) -> Result<ExecOutcome> {
    let dir = tempfile::Builder::new()
        .prefix("sdft-exec-")
        .tempdir()
        .map_err(|e| Error::Exec {
            message: format!("creating a temporary directory: {e}"),
        })?;
    let file = dir.path().join("program.py");
    std::fs::write(&file, program).map_err(|e| Error::io(&file, e))?;
    let err_path = dir.path().join("stderr.txt");
    let err_file = std::fs::File::create(&err_path).map_err(|e| Error::io(&err_path, e))?;
    let outcome = spawn_and_wait(&file, dir.path(), err_file, limits)?;
    if let ExecOutcome::Failed {
        code,
        signal,
        stderr_tail,
    } = outcome
    {
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&err_path) {
            let _ = f.read_to_end(&mut buf);
        }
        let text = if buf.is_empty() {
            stderr_tail
        } else {
            tail(&buf, 2000)
        };
        return Ok(ExecOutcome::Failed {
            code,
            signal,
            stderr_tail: text,
        });
    }
    Ok(outcome)
}

fn spawn_and_wait(
    file: &Path,
    cwd: &Path,
    stderr: std::fs::File,
    limits: &ExecLimits,
) -> Result<ExecOutcome> {
    let mut cmd = Command::new(&limits.python);
    cmd.arg(file)
        .current_dir(cwd)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .process_group(0);
    let (mem, nproc, fsize) = (
        limits.memory_bytes,
        limits.max_processes,
        limits.max_file_bytes,
    );
    // CPU seconds: the wall limit rounded up, plus one, as a backstop.
    let cpu = limits.timeout.as_secs() + 2;
    // SAFETY: the closure only calls async-signal-safe setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            set_limit(libc::RLIMIT_AS, mem)?;
            set_limit(libc::RLIMIT_NPROC, nproc)?;
            set_limit(libc::RLIMIT_FSIZE, fsize)?;
            set_limit(libc::RLIMIT_CPU, cpu)?;
            set_limit(libc::RLIMIT_CORE, 0)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::Exec {
        message: format!("could not start `{}`: {e}", limits.python),
    })?;
    let pgid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut sleep = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // Kill anything the program left behind in its group.
                // SAFETY: signalling our own child's process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                use std::os::unix::process::ExitStatusExt;
                return Ok(if status.success() {
                    ExecOutcome::Passed
                } else {
                    ExecOutcome::Failed {
                        code: status.code(),
                        signal: status.signal(),
                        stderr_tail: String::new(),
                    }
                });
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Error::Exec {
                    message: format!("waiting for the program: {e}"),
                })
            }
        }
        if start.elapsed() >= limits.timeout {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            tracing::debug!(secs = limits.timeout.as_secs_f32(), "program timed out");
            return Ok(ExecOutcome::TimedOut);
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_available() -> bool {
        let ok = Command::new("python3")
            .arg("-c")
            .arg("pass")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("note: python3 is not available; the code-execution tests did not run");
        }
        ok
    }

    fn quick() -> ExecLimits {
        ExecLimits {
            timeout: Duration::from_secs(3),
            memory_bytes: 512 << 20,
            ..ExecLimits::default()
        }
    }

    #[test]
    fn passes_fails_and_survives_hostile_programs() {
        if !python_available() {
            return;
        }
        let l = quick();
        assert_eq!(
            run_python("assert 1 + 1 == 2\n", &l).unwrap(),
            ExecOutcome::Passed
        );
        let err = run_python("raise ValueError('boom')\n", &l).unwrap();
        assert!(
            matches!(&err, ExecOutcome::Failed { code: Some(1), stderr_tail, .. } if stderr_tail.contains("boom")),
            "{err:?}"
        );
        let t = Instant::now();
        assert_eq!(
            run_python("while True:\n    pass\n", &l).unwrap(),
            ExecOutcome::TimedOut
        );
        assert!(t.elapsed() < Duration::from_secs(6));
        // Unbounded allocation hits RLIMIT_AS: MemoryError (or a kill), never passed.
        let mem = run_python(
            "x = []\nwhile True:\n    x.append(bytearray(1 << 24))\n",
            &l,
        )
        .unwrap();
        assert!(!mem.passed(), "{mem:?}");
        // A forked child that outlives its parent is killed with the group.
        let fork = "import os, time\nif os.fork() == 0:\n    time.sleep(1000)\nelse:\n    time.sleep(1000)\n";
        let t = Instant::now();
        assert_eq!(run_python(fork, &l).unwrap(), ExecOutcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(6));
        // A missing interpreter is a harness error, not a program failure.
        let bad = ExecLimits {
            python: "/nonexistent/python3".into(),
            ..quick()
        };
        assert!(matches!(run_python("pass", &bad), Err(Error::Exec { .. })));
    }
}
