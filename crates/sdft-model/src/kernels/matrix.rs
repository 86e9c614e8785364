//! [`HostMatrix`]: a weight as the CPU kernels hold it, `f32` packed into
//! column panels ([`PackedMatrix`]) or kept quantized ([`QuantPanels`]), and
//! [`Product`], the product every kernel takes from either.

use super::packed::{matmul_packed_into, PackedMatrix};
use super::quant::QuantPanels;

/// `out[m, n] = x[m, k] · wᵀ` against a weight of the CPU kernels.
pub trait Product {
    /// Output columns.
    fn n(&self) -> usize;
    /// Input columns.
    fn k(&self) -> usize;
    /// Bytes held.
    fn bytes(&self) -> usize;
    /// Writes every value of `out` (`[m, n]`) from `x` (`[m, k]`), row-major.
    fn product_into(&self, x: &[f32], m: usize, out: &mut [f32]);

    /// [`Product::product_into`] into a new vector.
    fn product(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * self.n()];
        self.product_into(x, m, &mut out);
        out
    }
}

impl Product for PackedMatrix {
    fn n(&self) -> usize {
        PackedMatrix::n(self)
    }
    fn k(&self) -> usize {
        PackedMatrix::k(self)
    }
    fn bytes(&self) -> usize {
        PackedMatrix::bytes(self)
    }
    fn product_into(&self, x: &[f32], m: usize, out: &mut [f32]) {
        matmul_packed_into(x, m, self, out)
    }
}

impl Product for QuantPanels {
    fn n(&self) -> usize {
        QuantPanels::n(self)
    }
    fn k(&self) -> usize {
        QuantPanels::k(self)
    }
    fn bytes(&self) -> usize {
        QuantPanels::bytes(self)
    }
    fn product_into(&self, x: &[f32], m: usize, out: &mut [f32]) {
        QuantPanels::product_into(self, x, m, out)
    }
}

/// A weight of the forward step: `f32` panels, or quantized codes in panels.
#[derive(Debug)]
pub enum HostMatrix {
    F32(PackedMatrix),
    /// Shared with the model's [`super::pack::QuantWeights`].
    Quant(std::sync::Arc<QuantPanels>),
}

impl HostMatrix {
    fn get(&self) -> &dyn Product {
        match self {
            HostMatrix::F32(p) => p,
            HostMatrix::Quant(q) => &**q,
        }
    }

    /// True when quantized.
    pub fn is_quantized(&self) -> bool {
        matches!(self, HostMatrix::Quant(_))
    }
}

impl Product for HostMatrix {
    fn n(&self) -> usize {
        self.get().n()
    }
    fn k(&self) -> usize {
        self.get().k()
    }
    fn bytes(&self) -> usize {
        self.get().bytes()
    }
    fn product_into(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.get().product_into(x, m, out)
    }
}
