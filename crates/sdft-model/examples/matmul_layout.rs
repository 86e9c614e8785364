//! Time of `x · w` on the default backend for the shapes of SmolLM2's projections
//! and output head, at decode-like row counts, with the weight stored as a
//! contiguous `[in, out]` matrix versus as a transposed view of `[out, in]` data
//! (the layout the model uses, see `weights/build.rs` and docs/performance.md).
//!
//! `cargo run --release -p sdft-model --example matmul_layout`

use burn::prelude::*;
use burn::tensor::module::linear;
use sdft_model::backend::{default_device, DefaultBackend as B};
use std::time::Instant;

fn main() {
    let dev = default_device();
    for (k, n) in [(576usize, 1536usize), (1536, 576), (576, 49152)] {
        let wkn = Tensor::<B, 2>::random([k, n], burn::tensor::Distribution::Default, &dev);
        let wnk = Tensor::<B, 2>::random([n, k], burn::tensor::Distribution::Default, &dev);
        for (label, w) in [("[k,n]", wkn), ("[n,k]^T", wnk.transpose())] {
            for m in [1usize, 16, 128] {
                let x = Tensor::<B, 2>::random([m, k], burn::tensor::Distribution::Default, &dev);
                let _ = linear(x.clone(), w.clone(), None).into_data();
                let reps = 20;
                let t = Instant::now();
                for _ in 0..reps {
                    let _ = linear(x.clone(), w.clone(), None).into_data();
                }
                let s = t.elapsed().as_secs_f64() / reps as f64;
                println!(
                    "{label:8} m={m:4} k={k:5} n={n:6}: {:8.3} ms  {:6.1} GFLOPS",
                    s * 1e3,
                    2.0 * (m * k * n) as f64 / s / 1e9
                );
            }
        }
    }
}
