//! The Llama network on burn: embedding, blocks, final norm, output head.
//!
//! [`block`] holds the network's one order of operations; [`Llama`]
//! (`llama.rs`) runs it on burn tensors through `ops.rs`, and the CPU kernels
//! run it on host buffers (`crate::kernels`). A block's weights are in
//! `layers.rs`, a projection's product in `linear.rs`, adapters in
//! `adapter.rs` (one adapter) and [`lora`] (a model's adapters: attach, list,
//! merge, PEFT files).

mod adapter;
mod batch;
pub mod block;
mod cache;
mod layers;
mod linear;
mod llama;
pub mod lora;
mod ops;
pub mod rope;
mod target;

pub use batch::PaddedBatch;
pub use block::{BlockOps, Norm, Proj, Residual};
pub use cache::{DecodeStep, KvCache, LayerCache, SlotKv};
pub use layers::{Attention, Block, Mlp, RmsNorm};
pub use linear::{project, Weight};
pub(crate) use llama::rope_for;
pub use llama::Llama;
pub use lora::{Lora, LoraConfig};
pub use rope::Rope;
