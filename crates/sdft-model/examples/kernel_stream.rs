use sdft_model::kernels::packed::{matmul_packed, PackedMatrix};
use std::time::Instant;
fn main() {
    let (k, n, count) = (576usize, 3072usize, 60usize);
    let mats: Vec<PackedMatrix> = (0..count)
        .map(|c| {
            let w: Vec<f32> = (0..n * k).map(|i| ((i + c) % 100) as f32 * 1e-3).collect();
            PackedMatrix::pack(&w, n, k)
        })
        .collect();
    let bytes = (count * n * k * 4) as f64;
    for m in [1usize, 4, 8, 16, 32, 64] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 10) as f32 * 1e-3).collect();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for w in &mats {
                std::hint::black_box(matmul_packed(&x, m, w));
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("m={m:3}: {:6.2} GB/s {:6.1} GF/s", bytes / best / 1e9, 2.0 * (m * n * k * count) as f64 / best / 1e9);
    }
}
