//! Rotary position embeddings in the HF ("rotate half") layout, with Llama-3
//! frequency scaling.

use burn::prelude::*;

use crate::LlamaConfig;

/// The inverse frequencies `1 / theta^(2i/d)`, scaled as HF's
/// `_compute_llama3_parameters` does when the config has Llama-3 `rope_scaling`.
pub fn inv_freq(config: &LlamaConfig) -> Vec<f64> {
    let d = config.head_dim;
    let base: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / config.rope_theta.powf((2 * i) as f64 / d as f64))
        .collect();
    let Some(s) = config.rope_scaling else {
        return base;
    };
    let (factor, low, high) = (
        s.factor as f64,
        s.low_freq_factor as f64,
        s.high_freq_factor as f64,
    );
    let old = s.original_max_position_embeddings as f64;
    let low_wavelen = old / low;
    let high_wavelen = old / high;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}

/// Precomputed cos/sin tables, `[max_positions, head_dim]`, each frequency written
/// twice (`[f0 .. f(d/2-1), f0 .. f(d/2-1)]`) as the rotate-half layout needs.
#[derive(Module, Debug)]
pub struct Rope<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

impl<B: Backend> Rope<B> {
    pub fn new(config: &LlamaConfig, max_positions: usize, device: &B::Device) -> Self {
        let freqs = inv_freq(config);
        let d = config.head_dim;
        let mut cos = Vec::with_capacity(max_positions * d);
        let mut sin = Vec::with_capacity(max_positions * d);
        for p in 0..max_positions {
            for _ in 0..2 {
                for f in &freqs {
                    let a = p as f64 * f;
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
        Rope {
            cos: Tensor::from_data(TensorData::new(cos, [max_positions, d]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_positions, d]), device),
        }
    }

    /// The cos and sin tables, `[max_positions, head_dim]`.
    pub fn raw(&self) -> (&Tensor<B, 2>, &Tensor<B, 2>) {
        (&self.cos, &self.sin)
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// cos and sin for the given positions `[batch, seq]`, shaped `[batch, 1, seq, d]`.
    pub fn tables(&self, positions: Tensor<B, 2, Int>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s] = positions.dims();
        let d = self.cos.dims()[1];
        let flat = positions.reshape([b * s]);
        let cos = self
            .cos
            .clone()
            .select(0, flat.clone())
            .reshape([b, 1, s, d]);
        let sin = self.sin.clone().select(0, flat).reshape([b, 1, s, d]);
        (cos, sin)
    }
}

/// Applies RoPE to `x` `[batch, heads, seq, d]`: `x * cos + rotate_half(x) * sin`.
pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    let half = d / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..s, half..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    // The tables are f32; a model in f16 or bf16 multiplies in its own dtype (a
    // mixed-dtype product is not defined on every backend: on wgpu it gives NaN).
    let (cos, sin) = if cos.dtype() == x.dtype() {
        (cos.clone(), sin.clone())
    } else {
        (cos.clone().cast(x.dtype()), sin.clone().cast(x.dtype()))
    };
    x * cos + rotated * sin
}
