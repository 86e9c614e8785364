//! The key/value cache: per layer, the rotated keys and the values of every
//! position seen so far, kept on the device.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

/// One layer's cached keys and values, `[batch, kv_heads, seq, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerCache<B: Backend> {
    kv: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

impl<B: Backend> LayerCache<B> {
    /// Appends this step's keys and values and returns the whole sequence's.
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        (k, v)
    }

    /// The cached keys and values, if any.
    pub fn tensors(&self) -> Option<(Tensor<B, 4>, Tensor<B, 4>)> {
        self.kv.clone()
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.kv.as_ref().map(|(k, _)| k.dims()[2]).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cache of a whole model: one [`LayerCache`] per layer.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    pub layers: Vec<LayerCache<B>>,
}

impl<B: Backend> KvCache<B> {
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: (0..n_layers).map(|_| LayerCache { kv: None }).collect(),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers.first().map(LayerCache::len).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One layer's keys and values for a batch of generation slots,
/// `[slots, kv_heads, capacity, head_dim]`. The tensors are held in `Option`s so
/// that a write moves them out and back, leaving no second handle behind.
#[derive(Debug)]
pub struct SlotKv<B: Backend> {
    k: Option<Tensor<B, 4>>,
    v: Option<Tensor<B, 4>>,
}

impl<B: Backend> SlotKv<B> {
    /// An empty (zero) cache of `capacity` positions per slot.
    pub fn zeros(shape: [usize; 4], device: &B::Device) -> Self {
        SlotKv {
            k: Some(Tensor::zeros(shape, device)),
            v: Some(Tensor::zeros(shape, device)),
        }
    }

    fn take(&mut self) -> (Tensor<B, 4>, Tensor<B, 4>) {
        (
            self.k.take().expect("slot cache present"),
            self.v.take().expect("slot cache present"),
        )
    }

    /// The whole cache, `(keys, values)`.
    pub fn tensors(&self) -> (Tensor<B, 4>, Tensor<B, 4>) {
        (
            self.k.clone().expect("slot cache present"),
            self.v.clone().expect("slot cache present"),
        )
    }

    /// Adds `extra` zero positions to every slot.
    pub fn grow(&mut self, extra: usize) {
        let (k, v) = self.take();
        let pad = |t: Tensor<B, 4>| {
            let [s, h, _, d] = t.dims();
            let zeros = Tensor::<B, 4>::zeros([s, h, extra, d], &t.device());
            Tensor::cat(vec![t, zeros], 2)
        };
        self.k = Some(pad(k));
        self.v = Some(pad(v));
    }

    /// Writes every slot's new key/value `[slots, kv_heads, 1, head_dim]` at that
    /// slot's own position with one scatter per tensor: `at` `[slots * kv_heads, 3]`
    /// holds the `(slot, head, position)` of each row (see [`DecodeStep::write_at`]).
    pub fn write_step(&mut self, at: &Tensor<B, 2, Int>, k: Tensor<B, 4>, v: Tensor<B, 4>) {
        let [s, h, _, d] = k.dims();
        let (kc, vc) = self.take();
        let put = |cache: Tensor<B, 4>, x: Tensor<B, 4>| {
            cache.scatter_nd(at.clone(), x.reshape([s * h, d]), IndexingUpdateOp::Assign)
        };
        self.k = Some(put(kc, k));
        self.v = Some(put(vc, v));
    }

    /// Writes keys/values `[1, kv_heads, len, head_dim]` into `slot` at positions
    /// `start..start + len`.
    pub fn write(&mut self, slot: usize, start: usize, k: Tensor<B, 4>, v: Tensor<B, 4>) {
        let [_, h, len, d] = k.dims();
        let range = [slot..slot + 1, 0..h, start..start + len, 0..d];
        let (kc, vc) = self.take();
        self.k = Some(kc.slice_assign(range.clone(), k));
        self.v = Some(vc.slice_assign(range, v));
    }
}

/// The inputs of one batched decode step shared by every layer: each slot's
/// position (= its cached length), the RoPE tables of those positions
/// `[slots, 1, 1, head_dim]`, and the mask `[slots, 1, 1, capacity]` hiding the
/// positions past each slot's length.
pub struct DecodeStep<B: Backend> {
    pub lens: Vec<usize>,
    /// `[slots * kv_heads, 3]`: the `(slot, head, position)` each slot's new key
    /// and value go to (position = the slot's length).
    pub write_at: Tensor<B, 2, Int>,
    pub cos: Tensor<B, 4>,
    pub sin: Tensor<B, 4>,
    pub mask: Tensor<B, 4, Bool>,
}
