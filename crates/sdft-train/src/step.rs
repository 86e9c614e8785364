//! The numeric core of a training step: the masked cross-entropy of a micro-batch,
//! and moving LoRA parameters and gradients between the model and host vectors.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use sdft_model::model::lora::{adapters, adapters_mut, LoraConfig};
use sdft_model::model::{Llama, PaddedBatch};
use sdft_model::LlamaConfig;

use crate::data::Sequence;
use crate::Result;

/// The summed negative log-likelihood of the target tokens of `seqs` (one padded
/// forward). Position `t` predicts token `t + 1`; only positions whose next token
/// is a target count (label -100 elsewhere: prompt tokens and padding add nothing,
/// neither to the loss nor to any gradient).
pub fn summed_nll<B: Backend>(
    llama: &Llama<B>,
    seqs: &[&Sequence],
    device: &B::Device,
) -> Tensor<B, 1> {
    let ids: Vec<Vec<u32>> = seqs.iter().map(|s| s.ids.clone()).collect();
    let batch = PaddedBatch::right_padded(&ids);
    let s = batch.max_len;
    // Only the rows that predict a target go through the output head (the head is
    // a fifth of a small model's work, and prompts are often half the tokens).
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (i, seq) in seqs.iter().enumerate() {
        for t in 0..seq.ids.len().saturating_sub(1) {
            if seq.target[t + 1] {
                rows.push((i * s + t) as i64);
                targets.push(seq.ids[t + 1] as i64);
            }
        }
    }
    let n = rows.len();
    let (tokens, positions, mask) = batch.tensors::<B>(device);
    let hidden = llama.forward(tokens, positions, mask, None);
    if n == 0 {
        // Zero, still part of the graph (so `backward` gives zero gradients).
        return hidden.sum() * 0.0;
    }
    let [b, _, d] = hidden.dims();
    let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [n]), device);
    let picked_hidden = hidden.reshape([b * s, d]).select(0, rows);
    let logp = log_softmax(llama.logits(picked_hidden), 1);
    let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, 1]), device);
    logp.gather(1, idx).sum().neg()
}

/// Names (`model.layers.0.self_attn.q_proj.lora_A`), shapes and values of every
/// LoRA parameter, `A` `[d_in, r]` then `B` `[r, d_out]` per adapter.
pub fn lora_params<B: Backend>(llama: &Llama<B>) -> Vec<(String, [usize; 2], Vec<f32>)> {
    let values = |t: Tensor<B, 2>| -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().expect("f32 data")
    };
    let mut out = Vec::new();
    for (module, l) in adapters(llama) {
        out.push((
            format!("{module}.lora_A"),
            l.a.val().dims(),
            values(l.a.val()),
        ));
        out.push((
            format!("{module}.lora_B"),
            l.b.val().dims(),
            values(l.b.val()),
        ));
    }
    out
}

/// Replaces the LoRA parameters (in [`lora_params`] order) with `values`; they
/// stay trainable.
pub fn set_lora_params<B: Backend>(llama: &mut Llama<B>, values: &[Vec<f32>], device: &B::Device) {
    let tensor = |v: &Vec<f32>, shape: [usize; 2]| {
        burn::module::Param::from_tensor(Tensor::<B, 2>::from_data(
            TensorData::new(v.clone(), shape),
            device,
        ))
    };
    for (i, (_, l)) in adapters_mut(llama).into_iter().enumerate() {
        l.a = tensor(&values[2 * i], l.a.val().dims());
        l.b = tensor(&values[2 * i + 1], l.b.val().dims());
    }
}

/// The gradients of every LoRA parameter (in [`lora_params`] order); zeros where
/// the loss does not depend on one.
pub fn lora_grads<B: AutodiffBackend>(llama: &Llama<B>, grads: &B::Gradients) -> Vec<Vec<f32>> {
    let host = |t: &Tensor<B, 2>| -> Vec<f32> {
        match t.grad(grads) {
            Some(g) => g.into_data().convert::<f32>().to_vec().expect("f32 data"),
            None => vec![0.0; t.dims().iter().product()],
        }
    };
    let mut out = Vec::new();
    for (_, l) in adapters(llama) {
        out.push(host(&l.a.val()));
        out.push(host(&l.b.val()));
    }
    out
}

/// The CPU training path's prepared base (flex builds:
/// `sdft_model::kernels::train::TrainModel`, the generation kernels' packed
/// weights and their transposes).
#[cfg(feature = "flex")]
pub type HostTrainModel = sdft_model::kernels::train::TrainModel;

/// Without the flex backend there is no CPU training path: no value of this
/// type exists, so an `Option` of it is always `None`.
#[cfg(not(feature = "flex"))]
pub enum HostTrainModel {}

/// The CPU training path for `llama`, whose adapters `lora` made: the adapters
/// are checked against `lora` first ([`crate::adapters::check_adapters`]; a
/// mismatch is an error naming the tensor). `None` when the build has no flex or
/// `llama`'s weights are not flex `f32` in the kernels' layouts (the generic
/// autodiff path then runs).
pub fn host_train_model<B: AutodiffBackend>(
    llama: &Llama<B>,
    config: &LlamaConfig,
    lora: &LoraConfig,
) -> Result<Option<HostTrainModel>> {
    crate::adapters::check_adapters(llama, lora)?;
    #[cfg(feature = "flex")]
    {
        use burn::module::AutodiffModule;
        Ok(HostTrainModel::from_llama(&llama.valid(), config, lora)?)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (config, lora);
        Ok(None)
    }
}

/// The sequences as the CPU training path takes them.
#[cfg(feature = "flex")]
fn host_batch<'a>(seqs: &[&'a Sequence]) -> Vec<sdft_model::kernels::train::Example<'a>> {
    seqs.iter()
        .map(|s| sdft_model::kernels::train::Example {
            ids: &s.ids,
            target: &s.target,
        })
        .collect()
}

/// [`summed_nll`] of `seqs` and the gradients of it divided by `n_targets` with
/// respect to the LoRA parameters `params` ([`lora_params`] order), on the CPU
/// training path; `dropout_key` as passed to `lora::set_dropout_key`.
pub fn host_nll_and_grads(
    model: &HostTrainModel,
    params: &[Vec<f32>],
    seqs: &[&Sequence],
    dropout_key: u64,
    scale: f64,
) -> (f64, Vec<Vec<f32>>) {
    #[cfg(feature = "flex")]
    {
        model.loss_and_grads(params, &host_batch(seqs), dropout_key, scale as f32)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (params, seqs, dropout_key, scale);
        match *model {}
    }
}

/// [`host_nll_and_grads`] with the on-policy loss: the summed divergences at
/// the target positions of `seqs` from the teacher's rows `teacher`
/// (`[targets, vocab]` in order), and the gradients of `scale` times that sum.
pub fn host_distill_and_grads(
    model: &HostTrainModel,
    params: &[Vec<f32>],
    seqs: &[&Sequence],
    teacher: &[f32],
    loss: &sdft_model::kernels::train::DistillLoss,
    dropout_key: u64,
    scale: f64,
) -> (f64, Vec<Vec<f32>>) {
    #[cfg(feature = "flex")]
    {
        let batch = host_batch(seqs);
        model.distill_and_grads(params, &batch, teacher, loss, dropout_key, scale as f32)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (params, seqs, teacher, loss, dropout_key, scale);
        match *model {}
    }
}
