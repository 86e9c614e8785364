use sdft_model::kernels::packed::{matmul_packed, PackedMatrix};
use std::time::Instant;
fn main() {
    for (m, k, n) in [(12usize, 256usize, 32usize), (12, 128, 64), (8, 256, 32), (16, 256, 32), (12, 576, 32), (12, 576, 64)] {
        let w: Vec<f32> = (0..n * k).map(|i| (i % 100) as f32 * 1e-3).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i % 10) as f32 * 1e-3).collect();
        let p = PackedMatrix::pack(&w, n, k);
        let reps = 200000;
        let t = Instant::now();
        for _ in 0..reps { std::hint::black_box(matmul_packed(std::hint::black_box(&x), m, &p)); }
        let s = t.elapsed().as_secs_f64();
        println!("m={m} k={k} n={n}: {:.1} GF/s", 2.0 * (m * n * k * reps) as f64 / s / 1e9);
    }
}
