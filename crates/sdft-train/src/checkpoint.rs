//! Checkpoints: `RUN_DIR/checkpoints/step-N/` holds the adapter (PEFT layout), the
//! exact optimizer state (`optimizer.safetensors`: parameters, first and second
//! moments, and an on-policy run's moving-average teacher adapter) and `trainer_state.json` (step, scheduler position, data-order and
//! dropout RNG state, config). Each is written into a temporary directory that is
//! renamed into place, so a kill leaves either a whole checkpoint or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::optim::AdamState;
use crate::schedule::LrSchedule;
use crate::{Error, Result};

pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The prefix of the teacher's averaged adapter in [`OPTIMIZER_FILE`].
const TEACHER_EMA: &str = "teacher_ema";

/// Where the data order stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataOrder {
    /// Epoch `e` is shuffled with a SplitMix64 stream derived from `(seed, e)`.
    pub seed: u64,
    pub group_by_length: bool,
    /// The epoch of the next step, and how many of its micro-batches are done.
    pub epoch: usize,
    pub micro_batches_done: usize,
}

/// Everything but the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    pub total_steps: usize,
    pub epoch: f64,
    pub schedule: LrSchedule,
    pub data_order: DataOrder,
    /// The dropout masks of micro-batch `k` of step `s` come from SplitMix64 keyed
    /// by `(dropout_seed, s, k)`: no hidden RNG state survives a step.
    pub dropout_seed: u64,
    pub tokens_seen: u64,
    pub elapsed_secs: f64,
    pub data_sha256: String,
    pub config: TrainConfig,
}

/// The checkpoint directory of step `step`.
pub fn dir_for(run_dir: &Path, step: usize) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step-{step}"))
}

/// The complete checkpoint with the highest step, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    let root = run_dir.join("checkpoints");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&root, e)),
    };
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&root, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().join(STATE_FILE).is_file() && best.as_ref().is_none_or(|b| step > b.0) {
            best = Some((step, entry.path()));
        }
    }
    Ok(best.map(|b| b.1))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a checkpoint: `write_adapter` fills the adapter files into the directory
/// it is given; then the optimizer state (with `teacher_ema`, the on-policy
/// teacher's averaged adapter, when there is one) and the trainer state; then
/// the rename.
pub fn save(
    run_dir: &Path,
    state: &TrainerState,
    names: &[(String, [usize; 2])],
    params: &[Vec<f32>],
    adam: &AdamState,
    teacher_ema: Option<&[Vec<f32>]>,
    write_adapter: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let final_dir = dir_for(run_dir, state.step);
    let tmp = run_dir
        .join("checkpoints")
        .join(format!(".tmp-step-{}", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write_adapter(&tmp)?;
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, shape)) in names.iter().enumerate() {
        for (kind, values) in [
            ("param", &params[i]),
            ("exp_avg", &adam.m[i]),
            ("exp_avg_sq", &adam.v[i]),
        ] {
            blobs.push((format!("{kind}.{name}"), shape.to_vec(), f32_bytes(values)));
        }
        if let Some(ema) = teacher_ema {
            blobs.push((
                format!("{TEACHER_EMA}.{name}"),
                shape.to_vec(),
                f32_bytes(&ema[i]),
            ));
        }
    }
    let views = blobs
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Checkpoint {
                    path: tmp.clone(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("adam_step".to_string(), adam.step.to_string())]);
    let opt_path = tmp.join(OPTIMIZER_FILE);
    safetensors::serialize_to_file(views, Some(meta), &opt_path).map_err(|e| {
        Error::Checkpoint {
            path: opt_path.clone(),
            message: e.to_string(),
        }
    })?;
    let json = serde_json::to_string_pretty(state).expect("state serializes");
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(|e| Error::io(&state_path, e))?;
    sdft_core::provenance::publish_dir(&tmp, &final_dir)?;
    Ok(final_dir)
}

/// A checkpoint read back.
pub struct Loaded {
    pub state: TrainerState,
    pub params: Vec<Vec<f32>>,
    pub adam: AdamState,
    /// The on-policy teacher's averaged adapter, when asked for.
    pub teacher_ema: Option<Vec<Vec<f32>>>,
}

/// Reads the checkpoint in `dir`; `names` fixes the parameter order and shapes.
/// With `teacher_ema`, the teacher's averaged adapter is read too (its absence
/// is an error).
pub fn load(dir: &Path, names: &[(String, [usize; 2])], teacher_ema: bool) -> Result<Loaded> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&opt_path).map_err(|e| Error::io(&opt_path, e))?;
    let bad = |message: String| Error::Checkpoint {
        path: opt_path.clone(),
        message,
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let adam_step = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("adam_step"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("missing `adam_step` metadata".into()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let read = |key: String, shape: &[usize; 2]| -> Result<Vec<f32>> {
        let v = st
            .tensor(&key)
            .map_err(|_| bad(format!("missing tensor `{key}`")))?;
        if v.dtype() != Dtype::F32 || v.shape() != shape {
            return Err(bad(format!(
                "tensor `{key}`: expected F32 {shape:?}, found {:?} {:?}",
                v.dtype(),
                v.shape()
            )));
        }
        Ok(v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let mut params = Vec::new();
    let mut adam = AdamState {
        step: adam_step,
        m: Vec::new(),
        v: Vec::new(),
    };
    for (name, shape) in names {
        params.push(read(format!("param.{name}"), shape)?);
        adam.m.push(read(format!("exp_avg.{name}"), shape)?);
        adam.v.push(read(format!("exp_avg_sq.{name}"), shape)?);
    }
    let teacher_ema = if teacher_ema {
        let read_all = names
            .iter()
            .map(|(name, shape)| read(format!("{TEACHER_EMA}.{name}"), shape));
        Some(read_all.collect::<Result<Vec<_>>>()?)
    } else {
        None
    };
    Ok(Loaded {
        state,
        params,
        adam,
        teacher_ema,
    })
}
