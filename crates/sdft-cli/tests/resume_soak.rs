//! Kill-and-resume soak of every stage that writes (`generate`, `distill`, `train`,
//! `eval run`) on a tiny random model: each is SIGKILLed at several random points
//! (after a random number of finished rows, chunks or steps; the seed is printed,
//! `SOAK_SEED=N` replays it) and rerun with the same command; the output must be
//! byte-identical to an uninterrupted run's. The reuse rule's refusals are in
//! `reuse_cli.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sdft_model::fixture::write_tiny_model;
use sdft_train::fixture::write_tiny_dataset;

const KILLS: usize = 3;

pub struct Soak {
    pub dir: tempfile::TempDir,
    rng: u64,
}

impl Soak {
    fn new() -> Soak {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_model(&dir.path().join("model"), 3).unwrap();
        write_tiny_dataset(&dir.path().join("data.json"), 24, 5).unwrap();
        let seed = std::env::var("SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
            });
        eprintln!("soak: SOAK_SEED={seed}");
        Soak { dir, rng: seed }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A kill point in `1..n`.
    fn point(&mut self, n: usize) -> usize {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1 + (self.rng >> 33) as usize % (n - 1)
    }
}

fn sdft(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdft"));
    c.args(args);
    c
}

fn run_ok(args: &[String]) {
    let o = sdft(args).output().unwrap();
    assert!(
        o.status.success(),
        "sdft {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Starts `args`, SIGKILLs it once `progress()` reaches `at` (or lets it finish
/// if it gets there first), then reruns the same command to the end. Returns
/// whether it was killed.
fn kill_then_resume(args: &[String], at: usize, progress: &dyn Fn() -> usize) -> bool {
    let killed = kill_at(args, at, progress);
    run_ok(args);
    killed
}

fn kill_at(args: &[String], at: usize, progress: &dyn Fn() -> usize) -> bool {
    let mut child = sdft(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if progress() >= at {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// At least one of the kill points must have landed inside a run.
fn some_killed(stage: &str, killed: usize) {
    eprintln!("soak: {stage}: {killed} of {KILLS} runs killed mid-way");
    assert!(
        killed > 0,
        "{stage}: every run finished before its kill point"
    );
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn files_starting(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .count()
        })
        .unwrap_or(0)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn with_output(base: &[String], out: &Path) -> Vec<String> {
    let mut a = base.to_vec();
    a.extend(["--output".to_string(), out.display().to_string()]);
    a
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn generate_resumes_byte_identical() {
    let mut k = Soak::new();
    let input = k.path("prompts.jsonl");
    let text: String = (0..24)
        .map(|i| {
            format!(
                "{{\"id\": \"p{i}\", \"prompt\": \"w{} w{} w3\"}}\n",
                i % 9,
                i % 5
            )
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let model = k.path("model").display().to_string();
    let base = s(&[
        "generate",
        "--model",
        &model,
        "--input",
        &input.display().to_string(),
        "--max-new-tokens",
        "24",
        "--batch-size",
        "4",
        "--seed",
        "7",
    ]);
    let whole = k.path("whole.jsonl");
    run_ok(&with_output(&base, &whole));
    let mut killed = 0;
    for i in 0..KILLS {
        let out = k.path(&format!("out{i}.jsonl"));
        let partial = sdft_data::generations::partial_path(&out);
        let at = k.point(24);
        killed += kill_then_resume(&with_output(&base, &out), at, &|| lines(&partial)) as usize;
        assert_eq!(read(&out), read(&whole), "killed after {at} rows");
        assert!(!partial.exists());
    }
    some_killed("generate", killed);
}

#[test]
fn distill_resumes_byte_identical() {
    let mut k = Soak::new();
    let model = k.path("model").display().to_string();
    let base = s(&[
        "distill",
        "--model",
        &model,
        "--data",
        &k.path("data.json").display().to_string(),
        "--task",
        "alpaca",
        "--max-new-tokens",
        "16",
        "--batch-size",
        "4",
        "--flush-rows",
        "1",
        "--seed",
        "11",
    ]);
    let whole = k.path("whole.parquet");
    run_ok(&with_output(&base, &whole));
    let mut killed = 0;
    for i in 0..KILLS {
        let out = k.path(&format!("out{i}.parquet"));
        let parts = sdft_distill::ChunkStore::dir_for(&out);
        let at = k.point(24);
        killed += kill_then_resume(&with_output(&base, &out), at, &|| {
            files_starting(&parts, "chunk-")
        }) as usize;
        assert_eq!(read(&out), read(&whole), "killed after {at} chunks");
    }
    some_killed("distill", killed);
}

#[test]
fn train_resumes_byte_identical() {
    let mut k = Soak::new();
    let root = k.dir.path().display().to_string();
    let base = s(&[
        "train",
        "--model",
        &format!("{root}/model"),
        "--data",
        &format!("{root}/data.json"),
        "--template",
        "alpaca",
        "--max-steps",
        "12",
        "--save-steps",
        "1",
        "--batch-size",
        "2",
        "--learning-rate",
        "2e-3",
    ]);
    let whole = k.path("whole");
    run_ok(&with_output(&base, &whole));
    let adapter = |d: &Path| read(&d.join("adapter/adapter_model.safetensors"));
    let mut killed = 0;
    for i in 0..KILLS {
        let out = k.path(&format!("out{i}"));
        let at = k.point(12);
        let mut first = with_output(&base, &out);
        let metrics = out.join("metrics.csv");
        // The first start is a fresh run; the rerun resumes it (`--resume`).
        killed += kill_at(&first, at + 1, &|| lines(&metrics)) as usize;
        if !out.join("adapter").exists() {
            first.push("--resume".into());
            run_ok(&first);
        }
        assert_eq!(adapter(&out), adapter(&whole), "killed after step {at}");
    }
    some_killed("train", killed);
}

#[test]
fn eval_run_resumes_byte_identical() {
    let mut k = Soak::new();
    let data = k.path("eval-data");
    std::fs::create_dir_all(&data).unwrap();
    let rows: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "{{\"question\": \"w{} w{} w7\", \"answer\": \"w8\\nThe answer is {i}.\"}}",
                i % 7,
                i % 4
            )
        })
        .collect();
    std::fs::write(
        data.join("gsm8k_test.json"),
        format!("[{}]", rows.join(",")),
    )
    .unwrap();
    let model = k.path("model").display().to_string();
    let base = s(&[
        "eval",
        "run",
        "--model",
        &model,
        "--benchmarks",
        "gsm8k",
        "--data-dir",
        &data.display().to_string(),
        "--max-new-tokens",
        "16",
        "--batch-size",
        "2",
        "--seed",
        "5",
    ]);
    let whole = k.path("whole");
    run_ok(&with_output(&base, &whole));
    let metrics = |d: &Path| {
        let v: serde_json::Value = serde_json::from_slice(&read(&d.join("results.json"))).unwrap();
        v["benchmarks"][0]["metrics"].clone()
    };
    let mut killed = 0;
    for i in 0..KILLS {
        let out = k.path(&format!("out{i}"));
        let gens = out.join("gsm8k.generations.jsonl");
        let at = k.point(12);
        killed += kill_then_resume(&with_output(&base, &out), at, &|| lines(&gens)) as usize;
        assert_eq!(
            read(&out.join("gsm8k.parquet")),
            read(&whole.join("gsm8k.parquet")),
            "killed after {at} rows"
        );
        assert_eq!(metrics(&out), metrics(&whole));
    }
    some_killed("eval run", killed);
}
