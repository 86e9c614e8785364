//! CPU kernels for the operations that dominate generation on the `flex` backend,
//! behind backend-generic entry points.
//!
//! Each entry point takes and returns ordinary burn tensors. When the build has
//! the `flex` feature and the tensors are flex `f32` tensors (inference; not
//! under autodiff), it runs a kernel written for the model's layouts; otherwise it
//! runs the same computation with burn's tensor operations, so CUDA, wgpu and
//! training take the generic path unchanged. The choice is made at run time by
//! the tensor primitive's type, so the model stays generic over the backend.
//!
//! - [`linear`]: `x · w` for a weight stored as a transposed view of PyTorch's
//!   `[out, in]` data (see [`matmul`]).
//! - [`packed`]: the product against weights packed once into column panels,
//!   which generation's decode and prefill run on.
//! - [`quant`]: weights a GGUF file stores quantized, kept as 8-bit codes with
//!   group scales, and their integer products on 8-bit activations
//!   (`--dtype quantized`).
//! - [`matrix`]: [`matrix::HostMatrix`], either of the two, behind the one
//!   [`matrix::Product`] every kernel calls.
//! - `kv_cache` (flex builds): the forward step's key/value cache in host memory
//!   and attention over it.
//! - `numeric` (flex builds): RMSNorm, RoPE, SwiGLU and the vector primitives
//!   shared by the forward step and the training kernels.
//! - `decode` (flex builds): a whole forward step with the key/value cache in
//!   host memory, used by [`crate::Engine`] when [`pack::host_model`] can read the
//!   model's weights (flex `f32`, no unmerged LoRA adapter).
//!
//! The packed product and attention run their parallel sections on a small team
//! of spinning threads (as many as rayon's global pool: `RAYON_NUM_THREADS`, or
//! one per core), which hands each thread a contiguous range of the weights.

/// Defines `fn` so that its body is compiled three times (AVX-512, AVX2 + FMA,
/// baseline) and the widest one the CPU supports runs; plain loops in the body
/// then vectorize at that width.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn imp($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    imp($($arg),*)
                }
                match super::Isa::detect() {
                    // SAFETY: the feature was detected at run time.
                    super::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: the features were detected at run time.
                    super::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    super::Isa::Portable => {}
                }
            }
            imp($($arg),*)
        }
    };
}

#[cfg(feature = "flex")]
pub mod decode;
#[cfg(feature = "flex")]
mod kv_cache;
pub mod matmul;
pub mod matrix;
#[cfg(feature = "flex")]
pub(crate) mod numeric;
pub mod pack;
pub mod packed;
pub mod quant;
mod team;
#[cfg(feature = "flex")]
pub mod train;

use burn::prelude::*;

/// A pointer into an output buffer that the tasks of one parallel section write
/// in disjoint parts (each use says which part a task owns).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: every parallel section writes disjoint parts of the buffer, which
// outlives the section (see each use).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The element `i` places on. (A method, so that closures capture the whole
    /// `Send` wrapper rather than its raw-pointer field.)
    ///
    /// # Safety
    /// `i` must lie inside the allocation.
    pub(crate) unsafe fn at(self, i: usize) -> *mut f32 {
        self.0.add(i)
    }
}

/// Test inputs and a float64 reference product, shared by the kernels' tests.
#[cfg(test)]
pub(crate) mod testing {
    /// `len` values in [-1, 1] from a small xorshift stream.
    pub fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// `(m, k, n)` shapes with tails in every dimension: row and column counts
    /// that are not multiples of any tile or block (and split unevenly), `k`
    /// not a multiple of the vector width, and products big enough to split
    /// over threads.
    pub const AWKWARD_SHAPES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 576, 192),
        (3, 37, 5),
        (5, 100, 9),
        (13, 100, 33),
        (16, 576, 576),
        (25, 1536, 130),
        (70, 64, 97),
    ];

    /// Asserts that `got` is within float32 rounding of the float64 `want`.
    pub fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what} at {i}: {a} vs {b}"
            );
        }
    }

    /// `x[m, k] · w[n, k]ᵀ` summed in float64.
    pub fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
                out[i * n + j] = s as f32;
            }
        }
        out
    }
}

/// The widest vector instruction set this CPU runs, detected once; every kernel
/// dispatches on it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static ISA: OnceLock<Isa> = OnceLock::new();
            *ISA.get_or_init(|| {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    Isa::Avx512
                } else if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    Isa::Avx2
                } else {
                    Isa::Portable
                }
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Portable
    }
}

/// `x` `[rows, d_in]` times `w` `[d_in, d_out]`.
///
/// On flex, when `w` is a transposed view of `[d_out, d_in]` row-major data (how
/// the model stores its weights) and there are few rows, the product runs as
/// dot products of contiguous rows ([`matmul::matmul_nt`]); otherwise it is
/// burn's `linear`.
pub fn linear<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    if let Some(out) = flex::linear::<B>(&x, &w) {
        return out;
    }
    burn::tensor::module::linear(x, w, None)
}

/// Row counts up to which [`matmul::matmul_nt`] beats burn-flex's packed gemm
/// (measured with `cargo run --release -p sdft-model --example matmul_layout`).
pub const NT_MAX_ROWS: usize = 64;

#[cfg(feature = "flex")]
pub(crate) mod flex {
    //! Moving between generic tensors and burn-flex's primitive.

    use std::any::Any;

    use burn::prelude::*;
    use burn::tensor::{DType, TensorPrimitive};
    use burn_flex::FlexTensor;

    /// The flex primitive behind `t`, when `B` is the flex backend and `t` holds
    /// `f32` (a cheap handle clone; the data is shared).
    pub fn to_flex<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Option<FlexTensor> {
        let TensorPrimitive::Float(p) = t.clone().into_primitive() else {
            return None;
        };
        let any: Box<dyn Any> = Box::new(p);
        let f = *any.downcast::<FlexTensor>().ok()?;
        (f.dtype() == DType::F32).then_some(f)
    }

    /// Wraps a flex primitive as a tensor of `B` (only called after [`to_flex`]
    /// succeeded for `B`, so `B`'s primitive is `FlexTensor`).
    pub fn from_flex<B: Backend, const D: usize>(f: FlexTensor) -> Tensor<B, D> {
        let any: Box<dyn Any> = Box::new(f);
        let p = *any
            .downcast::<B::FloatTensorPrimitive>()
            .unwrap_or_else(|_| unreachable!("from_flex called for a non-flex backend"));
        Tensor::from_primitive(TensorPrimitive::Float(p))
    }

    /// A contiguous `f32` tensor of `shape` holding `data`.
    pub fn tensor<B: Backend, const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
        from_flex(FlexTensor::from_data(TensorData::new(data, shape)))
    }

    /// The row-major `f32` values of `f` (copied to a contiguous layout if needed).
    pub fn values(f: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
        match f.as_slice::<f32>() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => {
                std::borrow::Cow::Owned(f.to_contiguous().as_slice::<f32>().unwrap_or(&[]).to_vec())
            }
        }
    }

    pub fn linear<B: Backend>(x: &Tensor<B, 2>, w: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        let [m, k] = x.dims();
        let [k2, n] = w.dims();
        if m > super::NT_MAX_ROWS || k != k2 {
            return None;
        }
        let wf = to_flex(w)?;
        let layout = wf.layout();
        // A transposed view of row-major [n, k]: strides (1, k).
        if layout.strides() != [1, k as isize] {
            return None;
        }
        let start = layout.start_offset();
        let wdata = &wf.storage::<f32>()[start..start + n * k];
        let xf = to_flex(x)?;
        let xdata = values(&xf);
        let out = super::matmul::matmul_nt(&xdata, wdata, m, k, n);
        Some(tensor(out, [m, n]))
    }
}
