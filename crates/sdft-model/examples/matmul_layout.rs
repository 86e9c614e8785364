//! Time of `x · w` on the default backend for the shapes of SmolLM2's projections
//! and output head, at decode-like row counts: burn's `linear` with the weight as
//! a contiguous `[in, out]` matrix, burn's `linear` with the weight as a
//! transposed view of `[out, in]` data (the layout the model uses, see
//! `weights/build.rs`), and [`sdft_model::kernels::linear`] on that view (which
//! runs the unpacked dot-product kernel up to `NT_MAX_ROWS` rows on flex).
//!
//! `cargo run --release -p sdft-model --example matmul_layout`

use burn::prelude::*;
use burn::tensor::module::linear;
use sdft_model::backend::{default_device, DefaultBackend as B};
use sdft_model::kernels;
use std::time::Instant;

fn time(f: impl Fn() -> Tensor<B, 2>) -> f64 {
    let _ = f().into_data();
    let reps = 20;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = f().into_data();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let dev = default_device();
    for (k, n) in [(576usize, 576usize), (576, 1536), (1536, 576), (576, 49152)] {
        let wkn = Tensor::<B, 2>::random([k, n], burn::tensor::Distribution::Default, &dev);
        let wnk =
            Tensor::<B, 2>::random([n, k], burn::tensor::Distribution::Default, &dev).transpose();
        for m in [1usize, 4, 16, 64, 128] {
            let x = Tensor::<B, 2>::random([m, k], burn::tensor::Distribution::Default, &dev);
            let cases: [(&str, f64); 3] = [
                (
                    "linear [k,n]",
                    time(|| linear(x.clone(), wkn.clone(), None)),
                ),
                (
                    "linear [n,k]^T",
                    time(|| linear(x.clone(), wnk.clone(), None)),
                ),
                (
                    "kernels::linear",
                    time(|| kernels::linear(x.clone(), wnk.clone())),
                ),
            ];
            let line: Vec<String> = cases
                .iter()
                .map(|(l, s)| {
                    format!(
                        "{l} {:7.3} ms {:6.1} GF",
                        s * 1e3,
                        2.0 * (m * k * n) as f64 / s / 1e9
                    )
                })
                .collect();
            println!("m={m:4} k={k:5} n={n:6}: {}", line.join(" | "));
        }
    }
}
