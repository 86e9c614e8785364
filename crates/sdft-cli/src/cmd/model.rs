//! `sdft model info | tokenize | logits | convert`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sdft_model::convert::{write_hf_dir, SaveDtype};
use sdft_model::model::lora::peft::merge_files;
use sdft_model::{assets, ModelFiles, ModelSpec, TopLogit};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Architecture, parameter count, stored dtypes, tokenizer, chat template.
    Info {
        #[command(flatten)]
        model: ModelArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Token ids of a text (special-token text such as `<|im_start|>` is recognised).
    Tokenize {
        /// A .gguf file, an HF checkpoint directory, or a known name.
        #[arg(long)]
        model: String,
        /// The text to tokenize.
        #[arg(long)]
        text: String,
        /// Treat special-token text as plain text.
        #[arg(long)]
        no_special: bool,
        /// Print `{"ids": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Top tokens and logits at the last position (or every position).
    Logits {
        #[command(flatten)]
        load: LoadArgs,
        /// The text to run the model on.
        #[arg(long)]
        text: String,
        /// How many top tokens to show.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Show every position, not only the last.
        #[arg(long)]
        all_positions: bool,
        /// Print `{"tokens": [...], "top": [{"id", "token", "logit"}, ...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Merge a LoRA adapter into a model and write it as an HF safetensors directory.
    Merge {
        /// A .gguf file, an HF checkpoint directory, or a known name.
        #[arg(long)]
        model: String,
        /// The adapter directory (adapter_config.json, adapter_model.safetensors).
        #[arg(long)]
        adapter: PathBuf,
        /// The HF directory to write (config, tokenizer, model.safetensors).
        #[arg(long)]
        output: PathBuf,
        /// Float type of the written tensors: f32, bf16, f16.
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// Write a LoRA adapter (PEFT layout) as llama.cpp's GGUF adapter, for
    /// `llama-server --lora FILE` (docs/scale-out.md).
    ExportLora {
        /// A .gguf file, an HF checkpoint directory, or a known name: the base
        /// model the adapter was trained on (its architecture and shapes)
        /// [default: the adapter's `base_model_name_or_path`].
        #[arg(long)]
        model: Option<String>,
        /// The adapter directory (adapter_config.json, adapter_model.safetensors).
        #[arg(long)]
        adapter: PathBuf,
        /// The GGUF file to write.
        #[arg(long)]
        output: PathBuf,
        /// Float type of the written tensors: f32 or f16.
        #[arg(long, default_value = "f32", value_name = "f32|f16")]
        dtype: String,
    },
    /// Write a GGUF file (or HF directory) as an HF safetensors directory.
    Convert {
        #[command(flatten)]
        model: ModelArg,
        /// The HF directory to write (as OUT_DIR or `--output`).
        #[arg(value_name = "OUT_DIR", required_unless_present = "output")]
        out_dir: Option<PathBuf>,
        /// The HF directory to write (the same as OUT_DIR).
        #[arg(long, value_name = "OUT_DIR", conflicts_with = "out_dir")]
        output: Option<PathBuf>,
        /// Float type of the written tensors: f32, bf16, f16.
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
}

/// A model named as `MODEL` or `--model MODEL` (the name every other command uses).
#[derive(Debug, Clone, Args)]
pub struct ModelArg {
    /// A .gguf file, an HF checkpoint directory, or a known name (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct).
    #[arg(value_name = "MODEL", required_unless_present = "model")]
    name: Option<String>,
    /// The model (the same as MODEL).
    #[arg(long, value_name = "MODEL", conflicts_with = "name")]
    model: Option<String>,
}

impl ModelArg {
    fn get(self) -> String {
        self.model
            .or(self.name)
            .expect("clap requires MODEL or --model")
    }
}

/// Which model to load and how.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// A .gguf file, an HF checkpoint directory, or a known name (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct).
    #[arg(long)]
    pub model: String,
    /// Float type on the device: f32 (default), bf16, f16; or quantized: the
    /// matrices a GGUF file stores quantized (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K,
    /// Q6_K) kept that way, with integer products on the CPU, and no f32 copy
    /// loaded (so no --adapter).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// A LoRA adapter directory in PEFT's layout (e.g. RUN_DIR/adapter from
    /// `sdft train`), merged into the weights after loading.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl LoadArgs {
    /// The model the flags name ([`ModelSpec`]: load, tokenizer, recorded settings).
    pub fn spec(&self) -> Result<ModelSpec> {
        Ok(ModelSpec::new(&self.model)
            .dtype(&self.dtype)?
            .adapter(self.adapter.clone()))
    }
}

fn open(model: &str) -> Result<ModelFiles> {
    let path = assets::resolve_model(model)?;
    Ok(ModelFiles::open(&path)?)
}

pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Info { model, json } => info(&model.get(), json),
        ModelCommand::Tokenize {
            model,
            text,
            no_special,
            json,
        } => {
            let files = open(&model)?;
            let ids = files.tokenizer.encode(&text, !no_special)?;
            if json {
                println!("{}", json!({ "ids": ids }));
            } else {
                for id in &ids {
                    let tok = files.tokenizer.id_to_token(*id).unwrap_or_default();
                    println!("{id:>7}  {tok:?}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Logits {
            load,
            text,
            top,
            all_positions,
            json,
        } => logits(&load, &text, top, all_positions, json),
        ModelCommand::Merge {
            model,
            adapter,
            output,
            dtype,
        } => {
            let dt = SaveDtype::parse(&dtype)
                .with_context(|| format!("--dtype {dtype}: expected f32, bf16 or f16"))?;
            let (files, cfg) = merge_files(open(&model)?, &adapter)?;
            write_hf_dir(&files, &output, dt)?;
            eprintln!(
                "wrote {} (adapter r {} on {} merged, {dtype})",
                output.display(),
                cfg.r,
                cfg.target_modules.join(",")
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::ExportLora {
            model,
            adapter,
            output,
            dtype,
        } => {
            use sdft_model::model::lora::to_gguf::{export_gguf, LoraDtype};
            let dt = match dtype.as_str() {
                "f32" => LoraDtype::F32,
                "f16" => LoraDtype::F16,
                other => anyhow::bail!("--dtype {other}: expected f32 or f16"),
            };
            let model = match model {
                Some(m) => m,
                None => sdft_model::model::lora::peft::read_config(&adapter)?
                    .base_model_name_or_path
                    .with_context(|| {
                        format!(
                            "{}: adapter_config.json names no base model; give it with --model",
                            adapter.display()
                        )
                    })?,
            };
            let files = open(&model)?;
            let e = export_gguf(&adapter, &files.config, &output, dt)?;
            eprintln!(
                "wrote {} ({} tensors, r {}, alpha {}, {dtype})",
                output.display(),
                e.tensors,
                e.rank,
                e.alpha
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Convert {
            model,
            out_dir,
            output,
            dtype,
        } => {
            let (input, out_dir) = (
                model.get(),
                output.or(out_dir).expect("clap requires OUT_DIR"),
            );
            let dt = SaveDtype::parse(&dtype)
                .with_context(|| format!("--dtype {dtype}: expected f32, bf16 or f16"))?;
            let files = open(&input)?;
            write_hf_dir(&files, &out_dir, dt)?;
            eprintln!(
                "wrote {} ({} tensors, {dtype})",
                out_dir.display(),
                files.config.tensor_names().len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn info(model: &str, as_json: bool) -> Result<ExitCode> {
    let f = open(model)?;
    let c = &f.config;
    let format = f.format.as_str();
    let tok = &f.tokenizer;
    let v = f.describe();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("path:          {}", f.path.display());
    println!("format:        {format}");
    println!(
        "architecture:  {}, {} layers, width {}, {} heads / {} kv heads (head dim {}), ffn {}, vocab {}",
        c.architecture.hf_names().1,
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim,
        c.intermediate_size,
        c.vocab_size
    );
    println!(
        "parameters:    {} ({:.1}M)",
        c.parameter_count(),
        c.parameter_count() as f64 / 1e6
    );
    println!(
        "rope:          theta {}{}; context {}; tied head: {}",
        c.rope_theta,
        if c.rope_scaling.is_some() {
            " (llama3 scaling)"
        } else {
            ""
        },
        c.max_position_embeddings,
        c.tie_word_embeddings
    );
    println!("dtypes:        {}", f.weights.dtype_summary());
    println!(
        "tokenizer:     {} ({} tokens, bos {:?}, eos {:?}, add_bos {})",
        tok.source(),
        tok.vocab_size(),
        tok.bos_id().and_then(|i| tok.id_to_token(i)),
        tok.eos_id().and_then(|i| tok.id_to_token(i)),
        tok.add_bos()
    );
    match tok.chat_template() {
        Some(t) => println!("chat template: {} chars\n{t}", t.len()),
        None => println!("chat template: none"),
    }
    Ok(ExitCode::SUCCESS)
}

fn logits(load: &LoadArgs, text: &str, top: usize, all: bool, as_json: bool) -> Result<ExitCode> {
    let model = load.spec()?.load()?;
    let t = model.top_logits(text, top, all)?;
    if as_json {
        let entry = |e: &TopLogit| json!({"id": e.id, "token": e.token, "logit": e.logit});
        let tops: Vec<Vec<serde_json::Value>> = t
            .positions
            .iter()
            .map(|p| p.top.iter().map(entry).collect())
            .collect();
        let top_value = if all { json!(tops) } else { json!(tops[0]) };
        println!("{}", json!({"tokens": t.tokens, "top": top_value}));
        return Ok(ExitCode::SUCCESS);
    }
    for p in &t.positions {
        let id = t.tokens[p.position];
        let tok = model.tokenizer.id_to_token(id).unwrap_or_default();
        println!("position {} (token {id} {tok:?}):", p.position);
        for e in &p.top {
            println!("  {:>7}  {:>10.4}  {:?}", e.id, e.logit, e.token);
        }
    }
    Ok(ExitCode::SUCCESS)
}
