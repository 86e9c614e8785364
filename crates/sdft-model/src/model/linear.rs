//! A linear projection's weight and its product, the op every projection of the
//! network runs (dispatched per backend in [`crate::kernels::linear`]).

use burn::module::Param;
use burn::prelude::*;

/// A weight matrix stored as `[d_in, d_out]` (the transpose of PyTorch's layout).
pub type Weight<B> = Param<Tensor<B, 2>>;

/// `x · w` for `x` `[b, s, d_in]`, computed as one `[b*s, d_in] x [d_in, d_out]`
/// matrix product (a batched product would stream the weights once per row).
pub fn project<B: Backend>(x: Tensor<B, 3>, w: &Weight<B>) -> Tensor<B, 3> {
    let [b, s, d] = x.dims();
    let out = crate::kernels::linear(x.reshape([b * s, d]), w.val());
    let n = out.dims()[1];
    out.reshape([b, s, n])
}
