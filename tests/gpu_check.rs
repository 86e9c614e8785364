//! The measuring half of `cargo xtask gpu-check` (the `gpu-check` binary of this
//! crate): a random Llama of a named shape (Llama-2-7B's by default) built on this
//! build's backend in bf16, then prefill and decode tokens/s through the
//! [`Engine`], one LoRA step's time and peak memory, and, with `--compare-hf
//! PYTHON`, HF transformers `generate` on the same shape
//! (`scripts/gpu_check/hf_generate.py`); the results go to `report.json` and
//! `report.md`. Generic over the backend: CI runs it on flex with `--shape small`.
//!
//! `--dtype q4_k` (flex only) quantizes the random weights to Q4_K (ggml's
//! blocks, [`sdft_model::gguf::quantize`]) and loads the model quantized-only,
//! as `--dtype quantized` loads a Q4_K GGUF file: the CPU check of a 7B shape in
//! a few GiB. The LoRA step is not run on it (training on a quantized base is
//! not implemented).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::DType;
use sdft_core::rng::SplitMix64;
use sdft_core::{GenerationRequest, SamplingParams};
use sdft_model::gguf::quantize::quantize_q4_k;
use sdft_model::gguf::GgmlType;
use sdft_model::kernels::quant::QuantMatrix;
use sdft_model::model::lora::{self, LoraConfig};
use sdft_model::model::PaddedBatch;
use sdft_model::weights::{F32Tensor, WeightSource};
use sdft_model::{Engine, LlamaConfig, LoadOptions, Model, ModelFiles, TokenizerInfo};
use sdft_train::step::{lora_grads, summed_nll};
use sdft_train::Sequence;
use serde_json::{json, Value};

/// The options, with their defaults, of `cargo xtask gpu-check`.
pub const USAGE: &str = include_str!("gpu_check_usage.txt");

/// An architecture shape (a Llama with random weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub max_positions: usize,
}

/// Llama-2-7B (`meta-llama/Llama-2-7b-hf`'s `config.json`).
pub const LLAMA_7B: Shape = Shape {
    name: "7b",
    hidden: 4096,
    intermediate: 11008,
    layers: 32,
    heads: 32,
    kv_heads: 32,
    vocab: 32000,
    max_positions: 4096,
};

/// A 2-layer grouped-query toy, for checking the measuring code on a CPU.
pub const SMALL: Shape = Shape {
    name: "small",
    hidden: 64,
    intermediate: 176,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    vocab: 512,
    max_positions: 1024,
};

impl Shape {
    /// HF's `config.json` of a `LlamaForCausalLM` of this shape (what
    /// `hf_generate.py` builds its model from).
    pub fn hf_config(&self, dtype: DType) -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": self.hidden, "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads, "vocab_size": self.vocab,
            "max_position_embeddings": self.max_positions, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "tie_word_embeddings": false, "hidden_act": "silu",
            "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": torch_dtype(dtype),
        })
    }

    /// The model's configuration as sdft-model reads it.
    pub fn config(&self) -> LlamaConfig {
        let text = self.hf_config(DType::F32).to_string();
        LlamaConfig::from_hf_json(Path::new("gpu-check config.json"), &text)
            .expect("the shape's config is valid")
    }

    /// Parameters of the model.
    pub fn parameters(&self) -> u64 {
        let (h, f, v) = (
            self.hidden as u64,
            self.intermediate as u64,
            self.vocab as u64,
        );
        let kv = (self.hidden / self.heads * self.kv_heads) as u64;
        let layer = 2 * h * h + 2 * h * kv + 3 * h * f + 2 * h;
        2 * v * h + self.layers as u64 * layer + h
    }
}

fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub skip_parity: bool,
    pub shape: Shape,
    pub dtype: DType,
    /// `--dtype q4_k`: the matrices quantized to Q4_K, computed on by the CPU
    /// kernels (`dtype` is then `F32`, the rest's).
    pub q4_k: bool,
    pub prompt: usize,
    pub new_tokens: usize,
    pub batches: Vec<usize>,
    pub lora_seq: usize,
    pub reps: usize,
    pub compare_hf: Option<PathBuf>,
    pub out: PathBuf,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            skip_parity: false,
            shape: LLAMA_7B,
            dtype: DType::BF16,
            q4_k: false,
            prompt: 512,
            new_tokens: 64,
            batches: vec![1, 32],
            lora_seq: 512,
            reps: 3,
            compare_hf: None,
            out: PathBuf::from("target/gpu-check"),
        }
    }
}

/// `Ok(None)` for `--help`; errors name the option and what it expects.
pub fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("`{flag}` needs a value ({what})"))
        };
        let count = |v: String, flag: &str| -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "`{flag}` expects a positive whole number, found `{v}`"
                )),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--skip-parity" => a.skip_parity = true,
            "--shape" => {
                a.shape = match value("7b or small")?.as_str() {
                    "7b" => LLAMA_7B,
                    "small" => SMALL,
                    other => return Err(format!("`--shape` expects 7b or small, found `{other}`")),
                }
            }
            "--dtype" => {
                let v = value("bf16, f16, f32 or q4_k")?;
                a.q4_k = v == "q4_k";
                a.dtype = match v.as_str() {
                    "bf16" => DType::BF16,
                    "f16" => DType::F16,
                    "f32" | "q4_k" => DType::F32,
                    other => {
                        return Err(format!(
                            "`--dtype` expects bf16, f16, f32 or q4_k, found `{other}`"
                        ))
                    }
                }
            }
            "--prompt" => a.prompt = count(value("tokens")?, flag)?,
            "--new-tokens" => {
                a.new_tokens = count(value("tokens")?, flag)?;
                if a.new_tokens < 2 {
                    return Err(
                        "`--new-tokens` must be at least 2 (decode is N tokens minus 1)".into(),
                    );
                }
            }
            "--lora-seq" => {
                a.lora_seq = count(value("tokens")?, flag)?;
                if a.lora_seq < 2 {
                    return Err("`--lora-seq` must be at least 2 tokens".into());
                }
            }
            "--reps" => a.reps = count(value("a count")?, flag)?,
            "--batch" => {
                a.batches = value("sizes, e.g. 1,32")?
                    .split(',')
                    .map(|s| count(s.trim().to_string(), "--batch"))
                    .collect::<Result<_, _>>()?
            }
            "--compare-hf" => a.compare_hf = Some(PathBuf::from(value("a Python executable")?)),
            "--out" => a.out = PathBuf::from(value("a directory")?),
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    let longest = a.prompt.max(a.lora_seq).max(32 + a.new_tokens);
    if longest > a.shape.max_positions {
        return Err(format!(
            "{longest} positions exceed the {} shape's {}",
            a.shape.name, a.shape.max_positions
        ));
    }
    Ok(Some(a))
}

/// Random weights for every tensor of a shape, drawn on request (so that only
/// one tensor is in host memory at a time): matrices ~ U(-√3·0.02, √3·0.02) (HF's
/// `initializer_range` 0.02 as a standard deviation), norms 1.
pub struct RandomWeights {
    pub config: LlamaConfig,
    pub seed: u64,
    /// Serve the matrices quantized to Q4_K too ([`WeightSource::quantized`]).
    pub q4_k: bool,
}

impl RandomWeights {
    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let c = &self.config;
        let (h, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
        let (q, kv) = (
            c.num_attention_heads * c.head_dim,
            c.num_key_value_heads * c.head_dim,
        );
        if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
            return Some(vec![v, h]);
        }
        if name == "model.norm.weight" {
            return Some(vec![h]);
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (layer, tail) = rest.split_once('.')?;
        if layer.parse::<usize>().ok()? >= c.num_hidden_layers {
            return None;
        }
        Some(match tail {
            "input_layernorm.weight" | "post_attention_layernorm.weight" => vec![h],
            "self_attn.q_proj.weight" => vec![q, h],
            "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => vec![kv, h],
            "self_attn.o_proj.weight" => vec![h, q],
            "mlp.gate_proj.weight" | "mlp.up_proj.weight" => vec![f, h],
            "mlp.down_proj.weight" => vec![h, f],
            _ => return None,
        })
    }
}

impl WeightSource for RandomWeights {
    fn path(&self) -> &Path {
        Path::new("random weights")
    }

    fn tensor(&self, hf_name: &str) -> sdft_model::Result<Option<F32Tensor>> {
        let Some(shape) = self.shape_of(hf_name) else {
            return Ok(None);
        };
        let n: usize = shape.iter().product();
        let data = if shape.len() == 1 {
            vec![1.0; n]
        } else {
            let name_hash = hf_name
                .bytes()
                .fold(self.seed, |h, b| h.rotate_left(5) ^ b as u64);
            let mut rng = SplitMix64::new(name_hash);
            let a = 0.02 * 3f64.sqrt();
            (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * a) as f32)
                .collect()
        };
        Ok(Some(F32Tensor { shape, data }))
    }

    fn dtype_summary(&self) -> String {
        match self.q4_k {
            true => "random, Q4_K".into(),
            false => "random F32".into(),
        }
    }

    fn quantized(&self, hf_name: &str) -> sdft_model::Result<Option<QuantMatrix>> {
        if !self.q4_k {
            return Ok(None);
        }
        let Some(t) = self.tensor(hf_name)? else {
            return Ok(None);
        };
        let [rows, cols] = t.shape[..] else {
            return Ok(None);
        };
        let bytes = quantize_q4_k(&t.data)?;
        drop(t);
        QuantMatrix::from_ggml(GgmlType::Q4_K, &bytes, rows, cols, hf_name).map(Some)
    }
}

/// A word-level tokenizer over `w0 .. w{vocab-1}` (prompts are written in it, and
/// every generated id decodes).
fn word_tokenizer(vocab: usize) -> TokenizerInfo {
    let words: serde_json::Map<String, Value> =
        (0..vocab).map(|i| (format!("w{i}"), json!(i))).collect();
    let spec = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": false},
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "w0"}
    });
    let tokenizer =
        tokenizers::Tokenizer::from_bytes(spec.to_string().as_bytes()).expect("word tokenizer");
    TokenizerInfo::new(
        tokenizer,
        None,
        None,
        false,
        None,
        "gpu-check word tokenizer",
    )
}

/// The random model of `shape` in `dtype` on `device`; with `q4_k`, its
/// matrices quantized to Q4_K and the model loaded quantized-only (the CPU
/// kernels compute on them; on other backends the load is in `f32`).
pub fn random_model<B: Backend>(
    shape: &Shape,
    dtype: DType,
    q4_k: bool,
    device: &B::Device,
) -> Model<B> {
    let config = shape.config();
    let files = ModelFiles {
        path: PathBuf::from("random"),
        format: sdft_model::ModelFormat::HfDir,
        tokenizer: word_tokenizer(config.vocab_size),
        weights: Box::new(RandomWeights {
            config: config.clone(),
            seed: 7,
            q4_k,
        }),
        config,
    };
    let options = LoadOptions {
        dtype,
        quantized: q4_k,
    };
    Model::from_files(files, &options, device).expect("random weights fit the config")
}

fn prompt_text(len: usize, salt: usize, vocab: usize) -> String {
    (0..len)
        .map(|i| format!("w{}", 3 + (i * 31 + salt * 17) % (vocab - 3)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Best (shortest) time of `reps` runs of `f`, after one untimed warm-up run
/// (the GPU runtimes compile and tune kernels on first use).
fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Prefill tokens/s: one `prompt`-token sequence through the model, up to its
/// last position's logits (read back, which waits for the device).
fn prefill<B: Backend>(model: &Model<B>, prompt: usize, reps: usize) -> f64 {
    let ids: Vec<u32> = (0..prompt as u32)
        .map(|i| 3 + i % (model.config.vocab_size as u32 - 3))
        .collect();
    if model.llama.quantized_only {
        // The CPU kernels' prefill (logits at every position).
        let secs = best_secs(reps, || {
            let _ = model
                .logits_all(std::slice::from_ref(&ids))
                .expect("prefill");
        });
        return prompt as f64 / secs;
    }
    let batch = PaddedBatch::right_padded(&[ids]);
    let secs = best_secs(reps, || {
        let (tokens, positions, mask) = batch.tensors::<B>(&model.device);
        let hidden = model.llama.forward(tokens, positions, mask, None);
        let [_, s, d] = hidden.dims();
        let last = hidden.slice([0..1, s - 1..s, 0..d]).reshape([1, d]);
        let _ = model.llama.logits(last).into_data();
    });
    prompt as f64 / secs
}

/// Generated tokens/s of greedy decoding at batch `b` (EOS does not stop): a run
/// of `new` tokens minus a run of 1, so that prefill is not counted; `None` when
/// the two runs are too close to tell apart (a toy shape on a noisy machine).
fn decode<B: Backend>(engine: &Engine<B>, b: usize, new: usize, reps: usize) -> Option<f64> {
    let vocab = engine.model.config.vocab_size;
    let requests: Vec<GenerationRequest> = (0..b)
        .map(|i| GenerationRequest::text(format!("r{i}"), prompt_text(32, i, vocab)))
        .collect();
    let run = |n: usize| {
        let params = SamplingParams::greedy().with_max_new_tokens(n);
        best_secs(reps, || {
            let out = engine
                .generate_with(&requests, &params, &mut |_, _| {})
                .expect("generation");
            assert!(out.iter().all(|c| c.tokens == n));
        })
    };
    let (t1, tn) = (run(1), run(new));
    (tn > t1).then(|| (b * (new - 1)) as f64 / (tn - t1))
}

/// Peak memory while `f` runs: of the GPU (nvidia-smi's `memory.used`, sampled
/// every 20 ms; the runtimes' pools keep what they reserve, so this is the peak
/// reserved) when there is one, else this process's peak resident size.
fn peak_memory_during(f: impl FnOnce()) -> (f64, &'static str) {
    let query = || -> Option<f64> {
        let out = std::process::Command::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        text.trim().parse::<f64>().ok().map(|mib| mib / 1024.0)
    };
    if query().is_some() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0f64;
            loop {
                peak = peak.max(query().unwrap_or(0.0));
                if s.load(std::sync::atomic::Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        f();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (
            sampler.join().unwrap_or(0.0),
            "GPU memory used (nvidia-smi)",
        )
    } else {
        f();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        (
            kib / (1024.0 * 1024.0),
            "peak resident memory of the process",
        )
    }
}

/// One LoRA step (r8, alpha 16, q and v, the paper's recipe without dropout) on
/// one `seq`-token sequence whose second half is the target: forward, backward and
/// the adapter gradients read back. Returns (seconds, peak GiB, what the peak is).
fn lora_step<B: Backend>(args: &Args, device: &B::Device) -> (f64, f64, &'static str) {
    let mut model = random_model::<Autodiff<B>>(&args.shape, args.dtype, false, device);
    model.llama = model.llama.no_grad();
    let config = LoraConfig {
        dropout: 0.0,
        ..LoraConfig::default()
    };
    lora::attach(&mut model.llama, &config, 1, device).expect("LoRA targets");
    let ids: Vec<u32> = (0..args.lora_seq as u32)
        .map(|i| 3 + (i * 7) % (args.shape.vocab as u32 - 3))
        .collect();
    let target = (0..ids.len()).map(|t| t >= ids.len() / 2).collect();
    let seq = Sequence { ids, target };
    let n = seq.n_targets() as f64;
    let step = || {
        let loss = summed_nll(&model.llama, &[&seq], device) / n;
        let grads = loss.backward();
        let _ = lora_grads(&model.llama, &grads);
    };
    step();
    let mut secs = f64::INFINITY;
    let (peak, what) = peak_memory_during(|| {
        for _ in 0..args.reps {
            let t = Instant::now();
            step();
            secs = secs.min(t.elapsed().as_secs_f64());
        }
    });
    (secs, peak, what)
}

/// Runs the measures on `device` and, with `--compare-hf`, the HF script; writes
/// `report.json` and `report.md` into `args.out` and returns the report.
pub fn run<B: Backend>(args: &Args, backend: &str, device: &B::Device) -> Result<Value, String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let t = Instant::now();
    let model = random_model::<B>(&args.shape, args.dtype, args.q4_k, device);
    let build_secs = t.elapsed().as_secs_f64();
    if args.q4_k && model.quantized.is_none() {
        return Err(format!(
            "--dtype q4_k: only the CPU kernels compute on quantized weights (the flex \
             backend), and this is {backend}"
        ));
    }
    let mut prefill_tps = 0.0;
    let mut decode_tps = serde_json::Map::new();
    let (run_peak_gib, run_peak_what) = peak_memory_during(|| {
        prefill_tps = prefill(&model, args.prompt, args.reps);
        let mut engine = Engine::new(model, 1);
        engine.stop_ids.clear();
        for &b in &args.batches {
            engine.batch_size = b;
            decode_tps.insert(
                b.to_string(),
                json!(decode(&engine, b, args.new_tokens, args.reps)),
            );
        }
    });
    let lora = match args.q4_k {
        // Training on a quantized base is not implemented.
        true => Value::Null,
        false => {
            let (secs, peak, what) = lora_step::<B>(args, device);
            json!({"tokens": args.lora_seq, "secs": secs, "peak_gib": peak, "peak_is": what})
        }
    };
    let hf = match &args.compare_hf {
        Some(python) => Some(run_hf(python, args)?),
        None => None,
    };
    let report = json!({
        "backend": backend,
        "shape": args.shape.name,
        "parameters": args.shape.parameters(),
        "dtype": if args.q4_k { "q4_k" } else { torch_dtype(args.dtype) },
        "prompt_tokens": args.prompt,
        "new_tokens": args.new_tokens,
        "reps": args.reps,
        "build_secs": build_secs,
        "sdft": {
            "prefill_tokens_per_s": prefill_tps,
            "decode_tokens_per_s": decode_tps,
            "generation_peak": {"gib": run_peak_gib, "is": run_peak_what},
            "lora_step": lora,
        },
        "hf": hf,
    });
    let md = markdown(&report);
    write(
        &args.out.join("report.json"),
        &serde_json::to_string_pretty(&report).unwrap(),
    )?;
    write(&args.out.join("report.md"), &md)?;
    print!("{md}");
    Ok(report)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Runs `hf_generate.py` with `python` on the same shape; its JSON report.
fn run_hf(python: &Path, args: &Args) -> Result<Value, String> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu_check/hf_generate.py");
    let config = args.out.join("hf_config.json");
    write(&config, &args.shape.hf_config(args.dtype).to_string())?;
    let out = args.out.join("hf.json");
    let batches: Vec<String> = args.batches.iter().map(usize::to_string).collect();
    let status = std::process::Command::new(python)
        .arg(&script)
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["--out".as_ref(), out.as_os_str()])
        .args(["--prompt", &args.prompt.to_string()])
        .args(["--new-tokens", &args.new_tokens.to_string()])
        .args(["--batch", &batches.join(",")])
        .args(["--reps", &args.reps.to_string()])
        .status()
        .map_err(|e| format!("could not start {} (--compare-hf): {e}", python.display()))?;
    if !status.success() {
        return Err(format!(
            "{} {} failed with {status}",
            python.display(),
            script.display()
        ));
    }
    let text =
        std::fs::read_to_string(&out).map_err(|e| format!("reading {}: {e}", out.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", out.display()))
}

/// The report as a Markdown table: sdft-rs beside HF transformers where measured.
pub fn markdown(r: &Value) -> String {
    let num = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let s = &r["sdft"];
    let h = &r["hf"];
    let mut out = format!(
        "# gpu-check: {} random Llama ({:.1}M parameters), {}, on {}\n\n| measure | sdft-rs | HF transformers |\n|---|---:|---:|\n",
        r["shape"].as_str().unwrap_or("?"),
        r["parameters"].as_f64().unwrap_or(0.0) / 1e6,
        r["dtype"].as_str().unwrap_or("?"),
        r["backend"].as_str().unwrap_or("?"),
    );
    out += &format!(
        "| prefill, {} tokens (tokens/s) | {} | {} |\n",
        r["prompt_tokens"],
        num(&s["prefill_tokens_per_s"]),
        num(&h["prefill_tokens_per_s"])
    );
    if let Some(d) = s["decode_tokens_per_s"].as_object() {
        for (b, v) in d {
            out += &format!(
                "| decode, batch {b}, {} new tokens (generated tokens/s) | {} | {} |\n",
                r["new_tokens"],
                num(v),
                num(&h["decode_tokens_per_s"][b])
            );
        }
    }
    let g = &s["generation_peak"];
    if let Some(gib) = g["gib"].as_f64() {
        out += &format!(
            "| peak memory, model loaded, through prefill and decode (GiB, {}) | {gib:.2} | - |\n",
            g["is"].as_str().unwrap_or("?")
        );
    }
    let l = &s["lora_step"];
    if l.is_null() {
        out += "| one LoRA step | not run (quantized base) | - |\n";
        return out;
    }
    out += &format!(
        "| one LoRA step, r8 q,v, {} tokens (s) | {:.3} | - |\n| peak memory of the LoRA step (GiB, {}) | {:.2} | - |\n",
        l["tokens"],
        l["secs"].as_f64().unwrap_or(f64::NAN),
        l["peak_is"].as_str().unwrap_or("?"),
        l["peak_gib"].as_f64().unwrap_or(f64::NAN)
    );
    out
}
