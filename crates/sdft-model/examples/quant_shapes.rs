//! Speed of the quantized product (`kernels::quant::QuantPanels`, integer
//! products on 8-bit activations) against the `f32` packed product
//! (`kernels::packed`) at Qwen2.5-Coder-0.5B's shapes, for the row counts
//! generation runs (1 = decode at batch 1, 16 = decode at batch 16, 128 =
//! prefill):
//!
//! - in cache: one weight used over and over: GOP/s (two operations per
//!   multiply-add, integer or float);
//! - streamed: as many distinct gate/up matrices (`[9728, 896]`) as make 1 GB of
//!   `f32` (and their quantized copies), used in turn as a decode step streams
//!   the weights: GB/s of weights read, each kernel on its own bytes.
//!
//! The weights are random codes of Q5_0 (most of Qwen2.5-Coder's Q4_K_M file)
//! and, for the down projection, Q4_K.
//!
//! `cargo run --release -p sdft-model --example quant_shapes`

use sdft_model::gguf::GgmlType;
use sdft_model::kernels::matrix::Product;
use sdft_model::kernels::packed::PackedMatrix;
use sdft_model::kernels::quant::{QuantMatrix, QuantPanels};
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

/// `n` rows of `k` random `dtype` elements with small finite scales.
fn random(dtype: GgmlType, n: usize, k: usize, salt: u32) -> QuantMatrix {
    let data = sdft_model::fixture::random_ggml_blocks(dtype, n, k, salt);
    QuantMatrix::from_ggml(dtype, &data, n, k, "random").expect("whole blocks")
}

fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + salt) % 1000) as f32 * 1e-3 - 0.5)
        .collect()
}

fn main() {
    println!("in cache (GOP/s; f32 packed | quantized):");
    for (name, dtype, k, n) in [
        ("qkv", GgmlType::Q5_0, 896usize, 1152usize),
        ("gate+up", GgmlType::Q5_0, 896, 9728),
        ("down", GgmlType::Q4_K, 4864, 896),
    ] {
        let q = random(dtype, n, k, 1);
        let f = PackedMatrix::pack(&q.dequantize(), n, k);
        let p = QuantPanels::new(&q);
        for m in [1usize, 16, 128] {
            let x = values(m * k, 1);
            let ops = 2.0 * (m * n * k) as f64;
            let reps = (2e9 / ops).clamp(1.0, 200.0) as usize;
            let tf = time(reps, || {
                std::hint::black_box(f.product(&x, m));
            });
            let tq = time(reps, || {
                std::hint::black_box(p.product(&x, m));
            });
            println!(
                "  {name:8} {dtype} m={m:4} k={k:5} n={n:6}: {:6.1} | {:6.1} | {:.2}x",
                ops / tf / 1e9,
                ops / tq / 1e9,
                tf / tq
            );
        }
    }

    let (k, n) = (896usize, 9728usize);
    let count = (1usize << 30) / (n * k * 4);
    let qs: Vec<QuantPanels> = (0..count)
        .map(|c| QuantPanels::new(&random(GgmlType::Q5_0, n, k, c as u32 + 2)))
        .collect();
    let qbytes: usize = qs.iter().map(Product::bytes).sum();
    let fs: Vec<PackedMatrix> = (0..count)
        .map(|c| PackedMatrix::pack(&values(n * k, c), n, k))
        .collect();
    let fbytes: usize = fs.iter().map(Product::bytes).sum();
    println!(
        "streamed ({count} [{n}, {k}] matrices: f32 {:.0} MB, quantized {:.0} MB; GB/s of weights, GOP/s):",
        fbytes as f64 / 1e6,
        qbytes as f64 / 1e6
    );
    for m in [1usize, 4, 16, 64] {
        let x = values(m * k, 1);
        let ops = 2.0 * (m * n * k * count) as f64;
        let tf = time(1, || {
            for w in &fs {
                std::hint::black_box(w.product(&x, m));
            }
        });
        let tq = time(1, || {
            for w in &qs {
                std::hint::black_box(w.product(&x, m));
            }
        });
        println!(
            "  m={m:3}: f32 {:6.2} GB/s {:6.1} GOP/s | quantized {:6.2} GB/s {:6.1} GOP/s | {:.2}x",
            fbytes as f64 / tf / 1e9,
            ops / tf / 1e9,
            qbytes as f64 / tq / 1e9,
            ops / tq / 1e9,
            tf / tq
        );
    }
}
