//! The hostile-completion set under bubblewrap (`--sandbox bwrap`): each completion
//! is an otherwise right answer to `add` (or a wrong one that exits early), and each
//! is scored failed, writes nothing outside its directory, leaves no process behind
//! and never reaches a listener on the host's 127.0.0.1.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sdft_eval::exec::{run_python, ExecLimits};
use sdft_eval::humaneval::{check, Problem};
use sdft_eval::sandbox::{isolation, SandboxMode};

fn problem() -> Problem {
    Problem {
        task_id: "Toy/0".into(),
        prompt: "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n".into(),
        entry_point: "add".into(),
        test: "def check(candidate):\n    assert candidate(2, 3) == 5\n".into(),
        canonical_solution: "    return a + b\n".into(),
    }
}

/// The bubblewrap limits, or None (the skip recorded) where it does not work here.
fn bwrap_limits() -> Option<ExecLimits> {
    let limits = ExecLimits {
        timeout: Duration::from_secs(4),
        sandbox: SandboxMode::Bwrap,
        ..ExecLimits::default()
    };
    match isolation(SandboxMode::Bwrap, &limits.python) {
        Ok(_) => Some(limits),
        Err(e) => {
            sdft_assets::skip(
                "bwrap",
                &format!(
                    "bubblewrap is not usable here ({e}; Debian: apt-get install bubblewrap); the sandbox tests did not run"
                ),
            );
            None
        }
    }
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(marker) && !c.contains("cargo") {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Whether every process whose command line holds `marker` is gone within `limit`.
fn gone_within(marker: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while !processes_with(marker).is_empty() {
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn hostile_completions_fail_and_leave_nothing() {
    let Some(limits) = bwrap_limits() else {
        return;
    };
    let p = problem();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("escaped.txt");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let right = "    return a + b\n";
    // Each sleeping process carries a unique marker in its command line.
    let marker = format!("7{}.25", std::process::id());
    let cases: Vec<(&str, String)> = vec![
        (
            "write outside",
            format!("{right}open({:?}, 'w').write('x')\n", target.to_str().unwrap()),
        ),
        (
            "loopback socket",
            format!("{right}import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"),
        ),
        (
            // Bounded: at most 300 children, each sleeping, so that without a
            // process limit it could not hurt the machine either.
            "fork bomb",
            format!(
                "{right}import os\nfor _ in range(300):\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '{marker}'])\n"
            ),
        ),
        (
            "20 GB allocation",
            format!("{right}x = bytearray(20 * 1000 ** 3)\n"),
        ),
        ("sleep forever", format!("{right}import time\ntime.sleep(10 ** 6)\n")),
        (
            "setsid double fork",
            format!(
                "{right}import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execvp('sh', ['sh', '-c', 'sleep {marker}; echo late > {}'])\n    os._exit(0)\ntime.sleep(0.5)\nraise SystemExit(0)\n",
                target.to_str().unwrap()
            ),
        ),
        ("sys.exit(0)", "    return a * b\nimport sys\nsys.exit(0)\n".into()),
        ("os._exit(0)", "    return a * b\nimport os\nos._exit(0)\n".into()),
        (
            "unittest.main()",
            "    return a * b\nimport unittest\nunittest.main()\n".into(),
        ),
    ];
    for (name, answer) in &cases {
        let t = Instant::now();
        let got = check(&p, answer, &limits).unwrap();
        assert!(!got.passed(), "{name}: scored {got:?}");
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{name}: {:?}",
            t.elapsed()
        );
        // The kernel kills what is left in the sandbox's PID namespace when its
        // init exits; a fork bomb's children take a moment to be reaped.
        assert!(
            gone_within(&marker, Duration::from_secs(5)),
            "{name}: left {:?}",
            processes_with(&marker)
        );
        assert!(!target.exists(), "{name}: wrote outside its directory");
        assert!(
            listener.accept().is_err(),
            "{name}: reached the host's loopback"
        );
    }
    // The right answer alone passes in the same sandbox.
    assert!(check(&p, right, &limits).unwrap().passed());
    // Nothing appears later either (the setsid grandchild would write after ~7 s).
    std::thread::sleep(Duration::from_millis(500));
    assert!(processes_with(&marker).is_empty());
    assert!(!target.exists());
}

#[test]
fn the_sandbox_shows_a_read_only_system_and_no_network() {
    let Some(limits) = bwrap_limits() else {
        return;
    };
    // Its own directory is writable; /tmp, the home directory and /usr are not;
    // there is no network interface but loopback.
    let probe = "import os, socket\nopen('mine.txt', 'w').write('ok')\nfor d in ['/tmp', '/usr', os.path.expanduser('~root')]:\n    try:\n        open(os.path.join(d, 'sdft-probe.txt'), 'w')\n    except OSError:\n        pass\n    else:\n        raise SystemExit('wrote into ' + d)\nassert sorted(n for _, n in socket.if_nameindex()) == ['lo'], socket.if_nameindex()\n";
    let got = run_python(probe, &limits).unwrap();
    assert!(got.passed(), "{got:?}");
}
