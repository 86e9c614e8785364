use super::panels::product_with;
use super::*;
use crate::fixture::random_ggml_blocks as random_blocks;
use crate::kernels::testing::values;
use crate::kernels::Isa;

const TYPES: [GgmlType; 7] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        v.push(Isa::Avx2);
    }
    v
}

#[test]
fn every_type_keeps_the_values_ggml_dequantizes_bit_for_bit() {
    let (n, k) = (5, 512);
    for dtype in TYPES {
        let data = random_blocks(dtype, n, k, 3);
        let mut want = vec![0f32; n * k];
        crate::gguf::dequantize(dtype, &data, &mut want).unwrap();
        let m = QuantMatrix::from_ggml(dtype, &data, n, k, "t").unwrap();
        let got = m.dequantize();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{dtype} at {i}: {a} vs {b}");
        }
        assert!(m.bytes() < n * k * 2, "{dtype}: {} bytes", m.bytes());
    }
}

/// `x · wᵀ` in float64 on the values given.
fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                .sum();
        }
    }
    out
}

#[test]
fn products_equal_the_dequantized_weights_times_the_quantized_inputs() {
    // The integer sums are exact: the only differences from a float64 product
    // of the same values are the float32 scale products and their sum.
    let (m, k, n) = (3, 768, 37);
    for dtype in TYPES {
        let w = QuantMatrix::from_ggml(dtype, &random_blocks(dtype, n, k, 5), n, k, "t").unwrap();
        let x = values(m * k, 9);
        let rows = QuantRows::quantize(&x, m, k);
        let xq: Vec<f32> = (0..m).flat_map(|r| rows.dequantize_row(r)).collect();
        let want = reference(&xq, &w.dequantize(), m, k, n);
        let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
        let p = QuantPanels::new(&w);
        for isa in isas() {
            let got = product_with(isa, &p, &x, m);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 * scale,
                    "{dtype} {isa:?} at {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn quantizing_the_inputs_costs_under_one_percent_of_the_output_scale() {
    let (m, k, n) = (4, 1024, 64);
    for dtype in TYPES {
        let w = QuantMatrix::from_ggml(dtype, &random_blocks(dtype, n, k, 6), n, k, "t").unwrap();
        let x = values(m * k, 10);
        let want = reference(&x, &w.dequantize(), m, k, n);
        let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
        let got = product_with(Isa::detect(), &QuantPanels::new(&w), &x, m);
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f64, |a, (g, w)| a.max((*g as f64 - w).abs()));
        assert!(worst <= 0.01 * scale, "{dtype}: worst {worst} of {scale}");
    }
}

#[test]
fn a_row_gives_the_same_bits_alone_as_in_a_batch() {
    let (m, k, n) = (9, 256, 300);
    for dtype in [GgmlType::Q5_0, GgmlType::Q6_K, GgmlType::Q4_K] {
        let w = QuantMatrix::from_ggml(dtype, &random_blocks(dtype, n, k, 7), n, k, "t").unwrap();
        let x = values(m * k, 11);
        let p = QuantPanels::new(&w);
        for isa in isas() {
            let batch = product_with(isa, &p, &x, m);
            for r in [0, 4, 8] {
                let one = product_with(isa, &p, &x[r * k..(r + 1) * k], 1);
                assert_eq!(one, batch[r * n..(r + 1) * n], "{dtype} {isa:?} row {r}");
            }
        }
    }
}

#[test]
fn stacked_and_reordered_matrices_hold_their_parts_rows() {
    let k = 256;
    let a = QuantMatrix::from_ggml(
        GgmlType::Q5_0,
        &random_blocks(GgmlType::Q5_0, 4, k, 1),
        4,
        k,
        "a",
    )
    .unwrap();
    let b = QuantMatrix::from_ggml(
        GgmlType::Q6_K,
        &random_blocks(GgmlType::Q6_K, 3, k, 2),
        3,
        k,
        "b",
    )
    .unwrap();
    let c = QuantMatrix::from_ggml(
        GgmlType::Q4_K,
        &random_blocks(GgmlType::Q4_K, 2, k, 3),
        2,
        k,
        "c",
    )
    .unwrap();
    let s = QuantMatrix::stack(&[&a, &b, &c]).unwrap();
    assert_eq!((s.n(), s.k(), s.source()), (9, k, "Q5_0+Q6_K+Q4_K"));
    let mut want = a.dequantize();
    want.extend(b.dequantize());
    want.extend(c.dequantize());
    assert_eq!(s.dequantize(), want);
    let r = s.reorder_rows(&[8, 0, 3]);
    let got = r.dequantize();
    for (i, j) in [8, 0, 3].into_iter().enumerate() {
        assert_eq!(got[i * k..(i + 1) * k], want[j * k..(j + 1) * k]);
    }
}

#[test]
fn wrong_sizes_and_types_are_errors_that_name_the_tensor() {
    let data = random_blocks(GgmlType::Q8_0, 2, 64, 1);
    let e = QuantMatrix::from_ggml(GgmlType::Q8_0, &data[1..], 2, 64, "blk.0.attn_q.weight")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("bytes"),
        "{e}"
    );
    let e = QuantMatrix::from_ggml(GgmlType::F16, &[0; 8], 2, 2, "output.weight")
        .unwrap_err()
        .to_string();
    assert!(e.contains("output.weight") && e.contains("F16"), "{e}");
}

#[test]
fn panels_compute_the_row_products_at_every_row_count() {
    // Rows not a multiple of the panel height, row counts over every register
    // block size, each type's layout.
    let (k, n) = (512, 45);
    for dtype in TYPES {
        let w = QuantMatrix::from_ggml(dtype, &random_blocks(dtype, n, k, 13), n, k, "t").unwrap();
        let p = QuantPanels::new(&w);
        for m in [1, 2, 3, 4, 5, 9] {
            let x = values(m * k, 14 + m as u32);
            let rows = QuantRows::quantize(&x, m, k);
            let xq: Vec<f32> = (0..m).flat_map(|r| rows.dequantize_row(r)).collect();
            let want = reference(&xq, &w.dequantize(), m, k, n);
            let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
            for isa in isas() {
                let got = product_with(isa, &p, &x, m);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() <= 1e-5 * scale,
                        "{dtype} {isa:?} m={m} at {i}: {a} vs {b}"
                    );
                }
                // A row alone gives the same bits as in the batch.
                let one = product_with(isa, &p, &x[(m - 1) * k..], 1);
                assert_eq!(one, got[(m - 1) * n..], "{dtype} {isa:?} m={m}");
            }
        }
    }
}

#[test]
fn codes_of_at_most_five_bits_are_kept_as_nibbles() {
    // Bytes per panel block of 8 rows × 32 steps: codes, then the scales and
    // offsets (`f32`, 8 each; Q6_K 16 scales).
    let (n, k) = (16, 512);
    for (dtype, codes, scales_and_offsets) in [
        (GgmlType::Q4_0, 128, 32), // shifted by 8 (taken back by the kernel)
        (GgmlType::Q4_1, 128, 64),
        (GgmlType::Q4_K, 128, 64),
        (GgmlType::Q5_0, 160, 32), // shifted by 16
        (GgmlType::Q5_K, 160, 64),
        (GgmlType::Q8_0, 256, 32),
        (GgmlType::Q6_K, 256, 64),
    ] {
        let w = QuantMatrix::from_ggml(dtype, &random_blocks(dtype, n, k, 3), n, k, "t").unwrap();
        let per_block = codes + scales_and_offsets;
        assert_eq!(
            QuantPanels::new(&w).bytes(),
            (n / 8) * (k / 32) * per_block,
            "{dtype}"
        );
    }
}

#[test]
fn panel_rows_dequantize_to_the_matrix_rows() {
    let (n, k) = (13, 256);
    for dtype in TYPES {
        let w = QuantMatrix::from_ggml(dtype, &random_blocks(dtype, n, k, 11), n, k, "t").unwrap();
        let p = QuantPanels::new(&w);
        for j in 0..n {
            let (mut a, mut b) = (vec![0f32; k], vec![0f32; k]);
            w.dequantize_row(j, &mut a);
            p.dequantize_row(j, &mut b);
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                // The shifted codes' offsets are folded in f32.
                assert!(
                    (x - y).abs() <= 1e-6 * (1.0 + x.abs()),
                    "{dtype} row {j} at {i}: {x} vs {y}"
                );
            }
        }
    }
}
