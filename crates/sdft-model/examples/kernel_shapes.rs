//! Speed of the CPU product kernels at the shapes of SmolLM2-135M's products,
//! for the row counts generation runs (1 = decode at batch 1, 16 = decode at
//! batch 16, 128 and 1024 = prefills):
//!
//! - in cache: one weight matrix used over and over (it stays in the L2/L3
//!   caches), the unpacked dot-product kernel (`matmul_nt`) against the
//!   packed-panel kernel (`matmul_packed`);
//! - streamed: 60 distinct `[3072, 576]` packed matrices (424 MB, far more than
//!   any cache) used in turn, as a decode step streams the model's weights: the
//!   memory bandwidth the packed kernel reaches at each row count.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p sdft-model --example kernel_shapes`

use sdft_model::kernels::matmul::matmul_nt;
use sdft_model::kernels::packed::{matmul_packed, PackedMatrix};
use std::time::Instant;

/// Seconds per call of `f`, the best of three timings of `reps` calls.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + salt) % 1000) as f32 * 1e-3)
        .collect()
}

fn main() {
    println!("in cache (GFLOP/s):");
    for (k, n) in [
        (576usize, 960usize),
        (576, 576),
        (576, 3072),
        (1536, 576),
        (576, 49152),
    ] {
        let w = values(n * k, 0);
        let packed = PackedMatrix::pack(&w, n, k);
        for m in [1usize, 16, 128, 1024] {
            let x = values(m * k, 1);
            let flops = 2.0 * (m * n * k) as f64;
            let reps = (2e9 / flops).clamp(1.0, 200.0) as usize;
            let nt = time(reps, || {
                std::hint::black_box(matmul_nt(&x, &w, m, k, n));
            });
            let pk = time(reps, || {
                std::hint::black_box(matmul_packed(&x, m, &packed));
            });
            println!(
                "  m={m:5} k={k:5} n={n:6}: matmul_nt {:6.1} | matmul_packed {:6.1} | {:.2}x",
                flops / nt / 1e9,
                flops / pk / 1e9,
                nt / pk
            );
        }
    }

    let (k, n, count) = (576usize, 3072usize, 60usize);
    let mats: Vec<PackedMatrix> = (0..count)
        .map(|c| PackedMatrix::pack(&values(n * k, c), n, k))
        .collect();
    let bytes = (count * n * k * 4) as f64;
    println!(
        "streamed ({count} packed [{n}, {k}] matrices, {:.0} MB):",
        bytes / 1e6
    );
    for m in [1usize, 4, 8, 16, 32, 64] {
        let x = values(m * k, 1);
        let s = time(1, || {
            for w in &mats {
                std::hint::black_box(matmul_packed(&x, m, w));
            }
        });
        println!(
            "  m={m:3}: {:6.2} GB/s of weights, {:6.1} GFLOP/s",
            bytes / s / 1e9,
            2.0 * (m * n * k * count) as f64 / s / 1e9
        );
    }
}
