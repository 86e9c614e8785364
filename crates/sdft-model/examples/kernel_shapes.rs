//! GFLOP/s of the CPU product kernels at the shapes of SmolLM2-135M's
//! projections and output head, for the row counts generation runs: the unpacked
//! dot-product kernel (`matmul_nt`) and the packed-panel kernel
//! (`matmul_packed`).
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p sdft-model --example kernel_shapes`

use sdft_model::kernels::matmul::matmul_nt;
use sdft_model::kernels::packed::{matmul_packed, PackedMatrix};
use std::time::Instant;

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

fn main() {
    for (k, n) in [(576usize, 960usize), (576, 576), (576, 3072), (1536, 576), (576, 49152)] {
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
        let packed = PackedMatrix::pack(&w, n, k);
        for m in [1usize, 16, 128, 1024] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 31) % 100) as f32 * 1e-2).collect();
            let reps = (2e9 / (2 * m * n * k) as f64).clamp(1.0, 200.0) as usize;
            let flops = 2.0 * (m * n * k) as f64;
            let a = time(reps, || {
                std::hint::black_box(matmul_nt(&x, &w, m, k, n));
            });
            let b = time(reps, || {
                std::hint::black_box(matmul_packed(&x, m, &packed));
            });
            println!(
                "m={m:5} k={k:5} n={n:6}: nt {:7.1} GF/s {:6.2} GB/s | packed {:7.1} GF/s {:6.2} GB/s | {:.2}x",
                flops / a / 1e9,
                (n * k * 4) as f64 / a / 1e9,
                flops / b / 1e9,
                (n * k * 4) as f64 / b / 1e9,
                a / b
            );
        }
    }
}
