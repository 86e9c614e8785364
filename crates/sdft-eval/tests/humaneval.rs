//! The 164 canonical HumanEval solutions pass under the completion rule, in the
//! sandbox this machine has (`--sandbox auto`) and under the guard alone.

use sdft_eval::exec::ExecLimits;
use sdft_eval::humaneval::{check, read_problems};
use sdft_eval::sandbox::SandboxMode;

#[test]
fn canonical_solutions_pass() {
    // `cached` records the skip ("humaneval") when the file is absent.
    let Some(path) = sdft_assets::cached(sdft_assets::HUMANEVAL.rel) else {
        return;
    };
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        sdft_assets::skip(
            "python3",
            "python3 is not available (install it); the canonical-solution test did not run",
        );
        return;
    }
    let problems = read_problems(&path).unwrap();
    assert_eq!(problems.len(), 164);
    for sandbox in [SandboxMode::Auto, SandboxMode::None] {
        let limits = ExecLimits {
            sandbox,
            ..ExecLimits::default()
        };
        let failed: Vec<String> = std::thread::scope(|s| {
            let chunks: Vec<_> = problems
                .chunks(41)
                .map(|c| {
                    let limits = &limits;
                    s.spawn(move || {
                        c.iter()
                            .filter_map(|p| {
                                let o = check(p, &p.canonical_solution, limits).unwrap();
                                (!o.passed()).then(|| format!("{}: {}", p.task_id, o.label()))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert!(failed.is_empty(), "{sandbox:?}: {failed:?}");
    }
}
