//! How an [`Engine`] runs the network for generation: a prefill of new prompts
//! into their slots and a batched decode step, with every layer's KV cache.
//! Chosen once per generation call ([`Steps::open`]): the CPU kernels on the
//! model's packed weights with the cache in host memory (`flex` builds, f32
//! weights, no unmerged adapter), or burn operations on any backend with the
//! cache on the device. Both run the network's one order of operations
//! ([`crate::model::block`]).

use burn::prelude::*;

use super::Engine;
use crate::model::{DecodeStep, PaddedBatch, SlotKv};
use crate::Model;

/// One step's logits, a row per sequence: in host memory (the CPU kernels), or
/// still on the device (the generic path), where the engine picks greedy tokens
/// without reading the logits back.
pub(super) enum StepLogits<B: Backend> {
    Host(Vec<Vec<f32>>),
    Device(Tensor<B, 2>),
}

/// The step runner of one generation call, with its caches of `capacity`
/// positions per slot.
pub(super) enum Steps<B: Backend> {
    /// The CPU kernels ([`crate::kernels::decode`]).
    #[cfg(feature = "flex")]
    Host(HostSteps),
    /// burn operations ([`crate::model::Llama::forward_decode`]).
    Device(DeviceSteps<B>),
}

/// The CPU kernels' weights, per-layer caches and buffers.
#[cfg(feature = "flex")]
pub(super) struct HostSteps {
    views: std::sync::Arc<crate::kernels::decode::HostModel>,
    layers: Vec<crate::kernels::decode::HostKv>,
    scratch: crate::kernels::decode::Scratch,
    capacity: usize,
}

/// Every layer's batched slot cache on the device.
pub(super) struct DeviceSteps<B: Backend> {
    layers: Vec<SlotKv<B>>,
    capacity: usize,
}

impl<B: Backend> Steps<B> {
    /// The runner for `slots` sequences at once: the CPU kernels when the engine
    /// can pack the model's weights for them, burn operations otherwise.
    pub(super) fn open(engine: &Engine<B>, slots: usize, capacity: usize) -> Self {
        let c = &engine.model.config;
        #[cfg(feature = "flex")]
        if let Some(views) = engine.host_model() {
            use crate::kernels::decode::HostKv;
            let layers = (0..c.num_hidden_layers)
                .map(|_| HostKv::zeros(slots, c.num_key_value_heads, capacity, c.head_dim))
                .collect();
            return Steps::Host(HostSteps {
                views,
                layers,
                scratch: Default::default(),
                capacity,
            });
        }
        let shape = [slots, c.num_key_value_heads, capacity, c.head_dim];
        Steps::Device(DeviceSteps {
            layers: (0..c.num_hidden_layers)
                .map(|_| SlotKv::zeros(shape, &engine.model.device))
                .collect(),
            capacity,
        })
    }

    /// Positions each slot's cache holds.
    pub(super) fn capacity(&self) -> usize {
        match self {
            #[cfg(feature = "flex")]
            Steps::Host(h) => h.capacity,
            Steps::Device(d) => d.capacity,
        }
    }

    /// Grows every layer's cache to hold `capacity` positions.
    pub(super) fn grow(&mut self, capacity: usize) {
        match self {
            #[cfg(feature = "flex")]
            Steps::Host(h) if capacity > h.capacity => {
                for layer in h.layers.iter_mut() {
                    layer.grow(capacity);
                }
                h.capacity = capacity;
            }
            Steps::Device(d) if capacity > d.capacity => {
                let extra = capacity - d.capacity;
                for layer in d.layers.iter_mut() {
                    layer.grow(extra);
                }
                d.capacity = capacity;
            }
            _ => {}
        }
    }

    /// Runs the new prompts `seqs`, the `i`th into slot `fill[i].0`, storing their
    /// keys/values in their slots; returns each prompt's last-position logits.
    pub(super) fn prefill(
        &mut self,
        model: &Model<B>,
        seqs: &[Vec<u32>],
        fill: &[(usize, usize)],
    ) -> StepLogits<B> {
        match self {
            #[cfg(feature = "flex")]
            Steps::Host(host) => {
                use crate::kernels::decode::{forward, Row};
                let mut rows = Vec::new();
                let mut last = Vec::with_capacity(seqs.len());
                for ((slot, _), seq) in fill.iter().zip(seqs) {
                    rows.extend(seq.iter().enumerate().map(|(pos, &token)| Row {
                        slot: *slot,
                        token,
                        pos,
                    }));
                    last.push(rows.len() - 1);
                }
                StepLogits::Host(forward(
                    &host.views,
                    &rows,
                    &mut host.layers,
                    &mut host.scratch,
                    &last,
                ))
            }
            Steps::Device(cache) => {
                let llama = &model.llama;
                let device = &model.device;
                let batch = PaddedBatch::right_padded(seqs);
                let (tokens, positions, mask) = batch.tensors::<B>(device);
                let mut kv = llama.new_cache();
                let hidden = llama.forward(tokens, positions, mask, Some(&mut kv));
                let [b, s, d] = hidden.dims();
                let last: Vec<i64> = seqs
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (i * s + q.len() - 1) as i64)
                    .collect();
                let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [b]), device);
                let picked = hidden.reshape([b * s, d]).select(0, idx);
                let logits = llama.logits(picked);
                for (layer, lc) in kv.layers.iter().enumerate() {
                    let (k, v) = lc.tensors().expect("prefill filled the cache");
                    for (row, (slot, _)) in fill.iter().enumerate() {
                        let [_, h, len, hd] = k.dims();
                        let kr = k.clone().slice([row..row + 1, 0..h, 0..len, 0..hd]);
                        let vr = v.clone().slice([row..row + 1, 0..h, 0..len, 0..hd]);
                        cache.layers[layer].write(*slot, 0, kr, vr);
                    }
                }
                StepLogits::Device(logits)
            }
        }
    }

    /// One decode step: `tokens[s]` at position `lens[s]` for every slot `s`
    /// (`None`: an idle slot, whose row of the result is meaningless). The caches
    /// hold at least `max(lens) + 1` positions.
    pub(super) fn decode(
        &mut self,
        model: &Model<B>,
        tokens: &[Option<u32>],
        lens: &[usize],
    ) -> StepLogits<B> {
        match self {
            #[cfg(feature = "flex")]
            Steps::Host(host) => {
                let rows = crate::kernels::decode::decode_step(
                    &host.views,
                    tokens,
                    lens,
                    &mut host.layers,
                    &mut host.scratch,
                );
                StepLogits::Host(rows.into_iter().map(Option::unwrap_or_default).collect())
            }
            Steps::Device(cache) => {
                let (llama, device) = (&model.llama, &model.device);
                let (slots, total) = (tokens.len(), cache.capacity);
                // An idle slot runs token 0 at position 0 with everything masked
                // but itself.
                let ids: Vec<i64> = tokens.iter().map(|t| t.unwrap_or(0) as i64).collect();
                let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [slots, 1]), device);
                let pos: Vec<i64> = lens.iter().map(|l| *l as i64).collect();
                let positions =
                    Tensor::<B, 2, Int>::from_data(TensorData::new(pos, [slots, 1]), device);
                let mut mask = Vec::with_capacity(slots * total);
                for l in lens {
                    for k in 0..total {
                        mask.push(k > *l);
                    }
                }
                let mask = Tensor::<B, 4, Bool>::from_data(
                    TensorData::new(mask, [slots, 1, 1, total]),
                    device,
                );
                let kvh = model.config.num_key_value_heads;
                let mut at = Vec::with_capacity(slots * kvh * 3);
                for (s, l) in lens.iter().enumerate() {
                    for h in 0..kvh {
                        at.extend([s as i64, h as i64, *l as i64]);
                    }
                }
                let write_at =
                    Tensor::<B, 2, Int>::from_data(TensorData::new(at, [slots * kvh, 3]), device);
                let (cos, sin) = llama.rope.tables(positions);
                let step = DecodeStep {
                    lens: lens.to_vec(),
                    write_at,
                    cos,
                    sin,
                    mask,
                };
                let hidden = llama.forward_decode(ids, &step, &mut cache.layers);
                let [b, _, d] = hidden.dims();
                StepLogits::Device(llama.logits(hidden.reshape([b, d])))
            }
        }
    }
}
