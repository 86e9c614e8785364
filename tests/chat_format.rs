//! The `chat` prompt format against transformers' own rendering, per template
//! family: SmolLM2's template (from its GGUF; a copy in the fixtures so this runs
//! offline), Qwen2.5's ChatML with its default system message, Llama-2-chat's and
//! Llama-3-instruct's (tests/fixtures/chat_templates/). The expected strings are
//! `tokenizer.apply_chat_template` output written by
//! scripts/reference/chat_templates.py into tests/golden/chat_format.json.
//!
//! For a distill, a train and an infer preset of each family: the prompt text
//! equals HF's; the turns concatenate to HF's whole conversation; the ids the
//! stages feed are that text's tokenization; the training label mask ends with
//! the end-of-turn id.

use std::path::PathBuf;

use sdft_core::{Example, PromptPiece, Turn};
use sdft_data::{ChatFormat, PromptFormat, Template};
use sdft_model::tokenizer::{llama2_tokenizer_from_js, TokenizerInfo};
use sdft_model::GgufFile;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("golden/chat_format.json")).unwrap())
        .unwrap()
}

fn family(name: &str) -> (ChatFormat, Value) {
    let g = golden();
    let f = g["families"][name].clone();
    let source = std::fs::read_to_string(
        root()
            .join("fixtures/chat_templates")
            .join(f["template_file"].as_str().unwrap()),
    )
    .unwrap();
    let chat = ChatFormat::new(
        &source,
        f["bos_token"].as_str().unwrap(),
        f["eos_token"].as_str().unwrap(),
    )
    .unwrap();
    (chat, f)
}

fn example(case: &Value) -> Example {
    let e = &case["example"];
    let mut ex = Example::new(
        e["instruction"].as_str().unwrap(),
        e["output"].as_str().unwrap(),
    );
    if let Some(h) = e["history"].as_array() {
        ex.history = h
            .iter()
            .map(|t| Turn::new(t[0].as_str().unwrap(), t[1].as_str().unwrap()))
            .collect();
    }
    ex
}

fn chat_template(preset: &str, chat: &ChatFormat) -> Template {
    Template::preset(preset)
        .unwrap()
        .with_prompt_format(PromptFormat::Chat, Some(chat.clone()))
        .unwrap()
}

fn single_text(p: &sdft_core::Prompt) -> &str {
    match p.pieces.as_slice() {
        [PromptPiece::Text(t)] => t,
        other => panic!("expected one text piece, got {other:?}"),
    }
}

/// Text checks of every case of a family; returns the cases.
fn check_texts(name: &str, end_of_turn: &str) -> (ChatFormat, Vec<Value>) {
    let (chat, f) = family(name);
    assert_eq!(chat.end_of_turn(), end_of_turn, "{name}");
    let cases = f["cases"].as_array().unwrap().clone();
    for case in &cases {
        let what = format!("{name} / {}", case["case"]);
        let t = chat_template(case["preset"].as_str().unwrap(), &chat);
        assert_eq!(t.prompt_format(), PromptFormat::Chat);
        // The preset's own stop strings, then the end-of-turn token.
        let mut stop = Template::preset(case["preset"].as_str().unwrap())
            .unwrap()
            .stop;
        if !stop.iter().any(|s| s == end_of_turn) {
            stop.push(end_of_turn.to_string());
        }
        assert_eq!(t.stop, stop, "{what}");
        let ex = example(case);
        let prompt = t.render_prompt(&ex).unwrap();
        assert_eq!(
            single_text(&prompt),
            case["prompt"].as_str().unwrap(),
            "{what}"
        );
        if let Some(conv) = case["conversation"].as_str() {
            let turns = t.render_turns(&ex).unwrap();
            let whole: String = turns
                .iter()
                .map(|x| format!("{}{}", x.prompt.text(), x.response.text()))
                .collect();
            assert_eq!(whole, conv, "{what}");
            let last = turns.last().unwrap();
            assert_eq!(
                last.response.text(),
                case["target"].as_str().unwrap(),
                "{what}"
            );
            // The final prompt of the turns is the generation prompt's tail.
            assert!(case["prompt"]
                .as_str()
                .unwrap()
                .ends_with(&last.prompt.text()));
        }
    }
    (chat, cases)
}

/// Token checks: prompt ids are the prompt text's tokenization; a training
/// sequence is the whole conversation's, supervised through the end-of-turn id.
fn check_ids(
    tok: &TokenizerInfo,
    chat: &ChatFormat,
    cases: &[Value],
    eot_id: u32,
    after_eot: usize,
) {
    for case in cases {
        let what = case["case"].to_string();
        let t = chat_template(case["preset"].as_str().unwrap(), chat);
        let ex = example(case);
        let ids = tok.encode_pieces(&t.render_prompt(&ex).unwrap()).unwrap();
        assert_eq!(
            ids,
            tok.encode(case["prompt"].as_str().unwrap(), true).unwrap(),
            "{what}"
        );
        let Some(conv) = case["conversation"].as_str() else {
            continue;
        };
        let seq =
            sdft_train::data::encode_example(&t, &ex, 1 << 20, &|p| tok.encode_pieces(p)).unwrap();
        assert_eq!(seq.ids, tok.encode(conv, true).unwrap(), "{what}");
        let last = seq.target.iter().rposition(|x| *x).unwrap();
        assert_eq!(
            seq.ids[last], eot_id,
            "{what}: the mask ends with the end-of-turn id"
        );
        assert_eq!(
            seq.ids.len() - 1 - last,
            after_eot,
            "{what}: tokens after end-of-turn"
        );
        // Every prompt token is masked: the supervised spans are exactly the
        // assistant messages' tokens (the target texts' tokenizations).
        let prompt_ids = tok.encode(case["prompt"].as_str().unwrap(), true).unwrap();
        assert!(!seq.target[prompt_ids.len() - 1], "{what}");
        assert!(seq.target[prompt_ids.len()], "{what}");
        if ex.history.is_empty() {
            assert!(seq.target[..prompt_ids.len()].iter().all(|x| !x), "{what}");
        }
    }
}

fn smollm2_tokenizer() -> Option<TokenizerInfo> {
    let p = sdft_model::assets::cached_model(&sdft_model::assets::SMOLLM2_135M_INSTRUCT)?;
    Some(TokenizerInfo::from_gguf(&GgufFile::open(p).unwrap()).unwrap())
}

#[test]
fn smollm2_template_is_the_ggufs() {
    let Some(tok) = smollm2_tokenizer() else {
        return;
    };
    let fixture =
        std::fs::read_to_string(root().join("fixtures/chat_templates/smollm2.jinja")).unwrap();
    assert_eq!(tok.chat_template(), Some(fixture.as_str()));
}

#[test]
fn smollm2_chatml() {
    let (chat, cases) = check_texts("smollm2", "<|im_end|>");
    // No system text: SmolLM2's own default system message.
    let none = cases
        .iter()
        .find(|c| c["case"] == "train_no_system")
        .unwrap();
    assert!(none["prompt"]
        .as_str()
        .unwrap()
        .starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    let Some(tok) = smollm2_tokenizer() else {
        return;
    };
    // `<|im_end|>` then "\n": the newline is in the sequence, not supervised.
    check_ids(&tok, &chat, &cases, 2, 1);
    assert_eq!(tok.special_token_id("<|im_end|>"), Some(2));
}

#[test]
fn qwen25_chatml_with_its_default_system() {
    let (chat, cases) = check_texts("qwen2.5", "<|im_end|>");
    let none = cases
        .iter()
        .find(|c| c["case"] == "train_no_system")
        .unwrap();
    assert!(none["prompt"].as_str().unwrap().starts_with(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    ));
    // Qwen's vocabulary is not an asset; ChatML's control tokens are SmolLM2's too.
    let Some(tok) = smollm2_tokenizer() else {
        return;
    };
    check_ids(&tok, &chat, &cases, 2, 1);
}

#[test]
fn llama2_chat() {
    let (chat, cases) = check_texts("llama2-chat", "</s>");
    let Some(js) = sdft_model::assets::cached("assets/llama-tokenizer-js/llama-tokenizer.js")
    else {
        return;
    };
    let tok = llama2_tokenizer_from_js(&std::fs::read_to_string(js).unwrap()).unwrap();
    check_ids(&tok, &chat, &cases, 2, 0);
}

#[test]
fn llama3_instruct() {
    let (chat, cases) = check_texts("llama3-instruct", "<|eot_id|>");
    // Llama-3's vocabulary is not an asset: SmolLM2's byte-level BPE with
    // Llama-3's pre-tokenizer (its split regex) and control tokens stands in.
    let Some(base) = smollm2_tokenizer() else {
        return;
    };
    let mut hf = base.tokenizer().clone();
    use tokenizers::pre_tokenizers::{
        byte_level::ByteLevel,
        sequence::Sequence,
        split::{Split, SplitPattern},
    };
    let llama3_split = Split::new(
        SplitPattern::Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+".into()),
        tokenizers::SplitDelimiterBehavior::Isolated,
        false,
    )
    .unwrap();
    hf.with_pre_tokenizer(Some(Sequence::new(vec![
        llama3_split.into(),
        ByteLevel::default()
            .add_prefix_space(false)
            .use_regex(false)
            .into(),
    ])));
    let specials: Vec<tokenizers::AddedToken> = [
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    .iter()
    .map(|t| tokenizers::AddedToken::from(*t, true))
    .collect();
    hf.add_special_tokens(&specials);
    let eot = hf.token_to_id("<|eot_id|>").unwrap();
    let bos = hf.token_to_id("<|begin_of_text|>").unwrap();
    let tok = TokenizerInfo::new(
        hf,
        Some(bos),
        Some(eot),
        false,
        None,
        "smollm2 + llama-3 specials",
    );
    check_ids(&tok, &chat, &cases, eot, 0);
    assert_eq!(tok.special_token_id("<|eot_id|>"), Some(eot));
}

#[test]
fn chat_format_needs_a_chat_template() {
    let e = Template::preset("gsm8k")
        .unwrap()
        .with_prompt_format(PromptFormat::Chat, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("chat template") && e.contains("paper"), "{e}");
    assert_eq!(PromptFormat::resolve(None, true), PromptFormat::Chat);
    assert_eq!(PromptFormat::resolve(None, false), PromptFormat::Paper);
    assert_eq!(
        PromptFormat::resolve(Some(PromptFormat::Paper), true),
        PromptFormat::Paper
    );
    let e = "json".parse::<PromptFormat>().unwrap_err().to_string();
    assert!(e.contains("`paper` or `chat`"), "{e}");
}

#[test]
fn paper_format_is_the_preset_and_hashes_differ() {
    let (chat, _) = family("smollm2");
    let paper = Template::preset("gsm8k_distill").unwrap();
    let back = chat_template("gsm8k_distill", &chat)
        .with_prompt_format(PromptFormat::Paper, None)
        .unwrap();
    assert_eq!(back, paper);
    assert_eq!(back.template_hash(), paper.template_hash());
    assert_ne!(
        chat_template("gsm8k_distill", &chat).template_hash(),
        paper.template_hash()
    );
    assert_eq!(paper.template_hash().len(), 64);
}

#[test]
fn user_format_is_data_and_settable_in_toml() {
    assert_eq!(
        Template::preset("gsm8k_infer").unwrap().user_format,
        "{query}"
    );
    assert_eq!(Template::preset("alpaca").unwrap().user_format, "{query}");
    assert_eq!(
        Template::preset("alpaca_gcg").unwrap().user_format,
        format!("{{query}}{}", sdft_data::template::GCG_SUFFIX)
    );
    assert_eq!(
        Template::preset("gsm8k_distill").unwrap().user_format,
        "{query}\n\n{resp}"
    );
    let t = Template::from_toml_str(
        "t.toml",
        "base = \"alpaca\"\nuser_format = \"Question: {query}\"\n",
    )
    .unwrap();
    let (chat, _) = family("smollm2");
    let t = t
        .with_prompt_format(PromptFormat::Chat, Some(chat))
        .unwrap();
    let p = t.render_prompt(&Example::new("2+2?", "4")).unwrap();
    assert!(
        p.text()
            .contains("<|im_start|>user\nQuestion: 2+2?<|im_end|>"),
        "{}",
        p.text()
    );
    let e = Template::from_toml_str(
        "t.toml",
        "base = \"gsm8k_distill\"\nuser_format = \"{query}\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("{resp}"), "{e}");
}
