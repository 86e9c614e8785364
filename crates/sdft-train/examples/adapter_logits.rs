//! Compares the logits of a model with a trained LoRA adapter kept as a separate
//! term (unmerged), merged into the weights in memory, and (optionally) loaded
//! from a directory written by `sdft model merge`; every position, full
//! vocabulary. Also reports how far the adapter moves the base model.
//!
//! ```sh
//! cargo run --release -p sdft-train --example adapter_logits -- \
//!     MODEL ADAPTER_DIR [MERGED_DIR] --text "Natalia sold clips to 48 of her friends"
//! ```

use std::path::PathBuf;

use sdft_model::assets;
use sdft_model::backend::DefaultBackend;
use sdft_model::fixture::max_logit_diff;
use sdft_model::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut text = String::from("Natalia sold clips to 48 of her friends in April");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--text" {
            text = args.next().ok_or("--text needs a value")?;
        } else {
            positional.push(a);
        }
    }
    if !(2..=3).contains(&positional.len()) {
        return Err("usage: adapter_logits MODEL ADAPTER_DIR [MERGED_DIR] [--text TEXT]".into());
    }
    let model = assets::resolve_model(&positional[0])?;
    let adapter = PathBuf::from(&positional[1]);
    let load = |path: &PathBuf| {
        Model::<DefaultBackend>::load(path, &Default::default(), &Default::default())
    };
    let base = load(&model)?;
    let ids = vec![base.tokenizer.encode_prompt(&text)?];
    let base_logits = base.logits_all(&ids)?;
    drop(base);
    let mut unmerged = load(&model)?;
    unmerged.load_adapter(&adapter, false)?;
    let u = unmerged.logits_all(&ids)?;
    drop(unmerged);
    let mut merged = load(&model)?;
    merged.load_adapter(&adapter, true)?;
    let m = merged.logits_all(&ids)?;
    drop(merged);
    let values = u.iter().flatten().map(Vec::len).sum::<usize>();
    println!("text: {text:?} ({} tokens, {values} logits)", ids[0].len());
    let mut pairs = vec![
        ("base vs adapter (unmerged)", &base_logits, &u),
        ("unmerged vs merged in memory (--adapter)", &u, &m),
    ];
    let written = match positional.get(2) {
        Some(dir) => Some(load(&PathBuf::from(dir))?.logits_all(&ids)?),
        None => None,
    };
    if let Some(w) = &written {
        pairs.push(("unmerged vs `sdft model merge` output", &u, w));
        pairs.push(("merged in memory vs `sdft model merge` output", &m, w));
    }
    for (what, a, b) in pairs {
        println!("max |logit diff| {what}: {:.4e}", max_logit_diff(a, b));
    }
    Ok(())
}
