//! Adapters in HF PEFT's directory layout: `adapter_config.json` and
//! `adapter_model.safetensors` with tensors named
//! `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (`[r, d_in]`)
//! and `...lora_B.weight` (`[d_out, r]`), PyTorch layout, F32.

use std::collections::HashMap;
use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{adapters, slot_mut, transpose, Lora, LoraConfig, Target};
use crate::model::llama::Llama;
use crate::weights::{to_f32, F32Tensor, WeightSource};
use crate::{Error, LlamaConfig, ModelFiles, Result};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The fields of PEFT's `adapter_config.json` this crate writes and reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(deserialize_with = "targets_from_json")]
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default = "bias_none")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
}

fn bias_none() -> String {
    "none".into()
}

/// PEFT writes `target_modules` as a list, or as one string (`"all-linear"`).
fn targets_from_json<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl AdapterConfig {
    pub fn new(config: &LoraConfig, base_model: Option<String>) -> Result<Self> {
        Ok(AdapterConfig {
            r: config.rank,
            lora_alpha: config.alpha,
            lora_dropout: config.dropout,
            target_modules: config
                .resolved_targets()?
                .iter()
                .map(|t| t.name().to_string())
                .collect(),
            base_model_name_or_path: base_model,
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            use_rslora: config.use_rslora,
            bias: "none".into(),
            fan_in_fan_out: false,
            inference_mode: true,
        })
    }

    pub fn lora_config(&self) -> LoraConfig {
        LoraConfig {
            rank: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: self.target_modules.clone(),
            use_rslora: self.use_rslora,
        }
    }
}

fn tensor_name(module: &str, ab: &str) -> String {
    format!("base_model.model.{module}.lora_{ab}.weight")
}

fn f32_values<B: Backend>(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 tensor data")
}

/// Writes the model's adapters to `dir` in PEFT's layout (each file written to a
/// temporary name, then renamed).
pub fn save<B: Backend>(llama: &Llama<B>, config: &AdapterConfig, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (module, l) in adapters(llama) {
        let [d_in, r] = l.a.val().dims();
        let [_, d_out] = l.b.val().dims();
        let a = transpose(&f32_values(l.a.val()), d_in, r);
        let b = transpose(&f32_values(l.b.val()), r, d_out);
        let bytes = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        tensors.push((tensor_name(&module, "A"), vec![r, d_in], bytes(a)));
        tensors.push((tensor_name(&module, "B"), vec![d_out, r], bytes(b)));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, shape, bytes)| {
            let v =
                TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| Error::Tensor {
                    path: dir.to_path_buf(),
                    tensor: n.clone(),
                    message: e.to_string(),
                })?;
            Ok((n.clone(), v))
        })
        .collect::<Result<_>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let path = dir.join(WEIGHTS_FILE);
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Format {
        path: path.clone(),
        message: e.to_string(),
    })?;
    sdft_core::provenance::write_atomic(&path, &bytes)?;
    let json = serde_json::to_string_pretty(config).expect("adapter config serializes");
    Ok(sdft_core::provenance::write_atomic(
        &dir.join(CONFIG_FILE),
        json.as_bytes(),
    )?)
}

/// Reads `dir/adapter_config.json`.
pub fn read_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let c: AdapterConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let bad = |field: &str, expected: &str, found: String| Error::Config {
        path: path.clone(),
        field: field.into(),
        expected: expected.into(),
        found,
    };
    // PEFT features that compute something plain LoRA does not: loaded as LoRA
    // they would give other logits, so they are refused by name.
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    for (key, what) in [
        ("use_dora", "DoRA (weight-decomposed LoRA)"),
        (
            "modules_to_save",
            "modules trained in full beside the adapter",
        ),
        ("rank_pattern", "per-module ranks"),
        ("alpha_pattern", "per-module alphas"),
        ("layers_to_transform", "an adapter on some layers only"),
        ("lora_bias", "LoRA bias terms"),
    ] {
        use serde_json::Value as V;
        let found = raw.get(key).filter(|v| match v {
            V::Null | V::Bool(false) => false,
            V::Object(m) => !m.is_empty(),
            V::Array(a) => !a.is_empty(),
            _ => true,
        });
        if let Some(v) = found {
            return Err(bad(
                key,
                &format!("unset: {what} is not supported (plain LoRA only)"),
                v.to_string(),
            ));
        }
    }
    if c.peft_type != "LORA" {
        return Err(bad("peft_type", "\"LORA\"", format!("{:?}", c.peft_type)));
    }
    if c.bias != "none" {
        return Err(bad("bias", "\"none\"", format!("{:?}", c.bias)));
    }
    if c.fan_in_fan_out {
        return Err(bad("fan_in_fan_out", "false", "true".into()));
    }
    c.lora_config().resolved_targets().map_err(|e| match e {
        Error::Config {
            field,
            expected,
            found,
            ..
        } => bad(&field, &expected, found),
        other => other,
    })?;
    Ok(c)
}

/// One adapter read from disk, PyTorch layout: `a` `[r, d_in]`, `b` `[d_out, r]`.
pub struct Pair {
    pub layer: usize,
    pub target: Target,
    pub d_in: usize,
    pub d_out: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
}

/// Reads the adapter in `dir` for a model of `n_layers` layers, whose target
/// maps `d_in` to `d_out` features as `dims(target)` says. Every target module
/// of every layer must be present with those shapes.
pub fn read(
    dir: &Path,
    n_layers: usize,
    dims: &dyn Fn(Target) -> (usize, usize),
) -> Result<(AdapterConfig, Vec<Pair>)> {
    let config = read_config(dir)?;
    let targets = config.lora_config().resolved_targets()?;
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Format {
        path: path.clone(),
        message: format!("invalid safetensors file: {e}"),
    })?;
    let used = std::cell::RefCell::new(std::collections::HashSet::new());
    let fetch = |name: &str, shape: [usize; 2]| -> Result<Vec<f32>> {
        let alt = name.replace(".weight", ".default.weight");
        let (found, view) = match st.tensor(name) {
            Ok(v) => (name.to_string(), v),
            Err(_) => (
                alt.clone(),
                st.tensor(&alt).map_err(|_| Error::MissingTensor {
                    path: path.clone(),
                    tensor: name.to_string(),
                })?,
            ),
        };
        used.borrow_mut().insert(found);
        if view.shape() != shape {
            return Err(Error::Tensor {
                path: path.clone(),
                tensor: name.to_string(),
                message: format!("expected shape {shape:?}, found {:?}", view.shape()),
            });
        }
        let values = to_f32(&path, name, view.dtype(), view.data())?;
        crate::weights::check_finite(&path, name, &values)?;
        Ok(values)
    };
    let r = config.r;
    let mut pairs = Vec::new();
    for layer in 0..n_layers {
        for target in targets.iter().copied() {
            let (d_in, d_out) = dims(target);
            let module = super::module_path(layer, target);
            pairs.push(Pair {
                layer,
                target,
                d_in,
                d_out,
                a: fetch(&tensor_name(&module, "A"), [r, d_in])?,
                b: fetch(&tensor_name(&module, "B"), [d_out, r])?,
            });
        }
    }
    let used = used.into_inner();
    let mut extra: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .map(str::to_string)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(Error::Format {
            path: path.clone(),
            message: format!(
                "{} tensor(s) match no target module of adapter_config.json (targets {targets:?}, {n_layers} layers): {}",
                extra.len(),
                extra.join(", ")
            ),
        });
    }
    Ok((config, pairs))
}

/// Loads the PEFT adapter in `dir` onto `llama` (unmerged; replaces any adapters
/// there).
pub fn load<B: Backend>(
    llama: &mut Llama<B>,
    dir: &Path,
    device: &B::Device,
) -> Result<AdapterConfig> {
    let mut shapes = HashMap::new();
    if let Some(block) = llama.layers.first_mut() {
        for target in Target::ALL {
            let (w, _) = slot_mut(block, target);
            let [d_in, d_out] = w.val().dims();
            shapes.insert(target, (d_in, d_out));
        }
    }
    let (config, pairs) = read(dir, llama.layers.len(), &|t| shapes[&t])?;
    let lc = config.lora_config();
    let r = config.r;
    for block in llama.layers.iter_mut() {
        for target in Target::ALL {
            *slot_mut(block, target).1 = None;
        }
    }
    for p in pairs {
        let (w, slot) = slot_mut(&mut llama.layers[p.layer], p.target);
        let dtype = w.val().dtype();
        let tensor = |v: Vec<f32>, shape: [usize; 2]| {
            Param::from_tensor(
                Tensor::<B, 2>::from_data(TensorData::new(v, shape), device).cast(dtype),
            )
        };
        *slot = Some(Lora {
            a: tensor(transpose(&p.a, r, p.d_in), [p.d_in, r]),
            b: tensor(transpose(&p.b, p.d_out, r), [r, p.d_out]),
            scale: lc.scale(),
            dropout: lc.dropout,
            dropout_key: 0,
        });
    }
    Ok(config)
}

/// The input and output features of `target` in a model of `config`.
pub fn target_dims(config: &LlamaConfig, target: Target) -> (usize, usize) {
    let (h, ff) = (config.hidden_size, config.intermediate_size);
    let q = config.num_attention_heads * config.head_dim;
    match target {
        Target::Q => (h, q),
        Target::K | Target::V => (h, config.kv_dim()),
        Target::O => (q, h),
        Target::Gate | Target::Up => (h, ff),
        Target::Down => (ff, h),
    }
}

/// A checkpoint's weights with an adapter folded in (`W + scale·B·A` in PyTorch
/// layout), computed on the host while serving each tensor.
struct MergedSource {
    base: Box<dyn WeightSource>,
    /// HF tensor name -> `(scale, pair)`.
    deltas: HashMap<String, (f32, Pair)>,
    r: usize,
}

impl WeightSource for MergedSource {
    fn path(&self) -> &Path {
        self.base.path()
    }

    fn tensor(&self, hf_name: &str) -> Result<Option<F32Tensor>> {
        let Some(mut t) = self.base.tensor(hf_name)? else {
            return Ok(None);
        };
        if let Some((scale, p)) = self.deltas.get(hf_name) {
            for o in 0..p.d_out {
                let row = &mut t.data[o * p.d_in..(o + 1) * p.d_in];
                for k in 0..self.r {
                    let coef = scale * p.b[o * self.r + k];
                    let a = &p.a[k * p.d_in..(k + 1) * p.d_in];
                    row.iter_mut().zip(a).for_each(|(w, x)| *w += coef * x);
                }
            }
        }
        Ok(Some(t))
    }

    fn dtype_summary(&self) -> String {
        self.base.dtype_summary()
    }
}

/// `files` with the adapter in `dir` merged into its weights, ready for
/// [`crate::convert::write_hf_dir`].
pub fn merge_files(mut files: ModelFiles, dir: &Path) -> Result<(ModelFiles, AdapterConfig)> {
    let cfg = files.config.clone();
    let (config, pairs) = read(dir, cfg.num_hidden_layers, &|n| target_dims(&cfg, n))?;
    let scale = config.lora_config().scale() as f32;
    let deltas = pairs
        .into_iter()
        .map(|p| {
            let name = format!("{}.weight", super::module_path(p.layer, p.target));
            (name, (scale, p))
        })
        .collect();
    let base = std::mem::replace(&mut files.weights, Box::new(Empty));
    files.weights = Box::new(MergedSource {
        base,
        deltas,
        r: config.r,
    });
    Ok((files, config))
}

/// A placeholder while the base source moves into [`MergedSource`].
struct Empty;

impl WeightSource for Empty {
    fn path(&self) -> &Path {
        Path::new("")
    }
    fn tensor(&self, _: &str) -> Result<Option<F32Tensor>> {
        Ok(None)
    }
    fn dtype_summary(&self) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_peft_features_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let base = r#""r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "peft_type": "LORA""#;
        let write = |extra: &str| {
            std::fs::write(dir.path().join(CONFIG_FILE), format!("{{{base}{extra}}}")).unwrap();
            read_config(dir.path())
        };
        // PEFT's defaults for the same keys load.
        write(r#", "use_dora": false, "modules_to_save": null, "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": null, "lora_bias": false"#).unwrap();
        for (extra, key) in [
            (r#", "use_dora": true"#, "use_dora"),
            (r#", "modules_to_save": ["lm_head"]"#, "modules_to_save"),
            (r#", "rank_pattern": {"q_proj": 4}"#, "rank_pattern"),
            (r#", "alpha_pattern": {"q_proj": 4}"#, "alpha_pattern"),
            (r#", "layers_to_transform": [0, 1]"#, "layers_to_transform"),
            (r#", "lora_bias": true"#, "lora_bias"),
        ] {
            let e = write(extra).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("not supported"),
                "{extra}: {e}"
            );
        }
    }
}
