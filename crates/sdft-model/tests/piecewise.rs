//! The paper's prompts tokenized the way its code does: each template piece encoded
//! on its own with the real Llama-2 tokenizer (SentencePiece's dummy prefix on every
//! piece), BOS/EOS as ids. Expected ids are Llama-2's well-known ones: `<s>` = 1,
//! `▁[INST]` = [518, 25580, 29962], `<<SYS>>` = [3532, 14816, 29903, 6778], a piece
//! "\n\n" = [29871, 13, 13] (the lone `▁` then two newline bytes).

use sdft_core::{Example, PromptPiece};
use sdft_data::Template;
use sdft_model::tokenizer::{llama2_tokenizer_from_js, TokenizerInfo};

fn llama2() -> Option<TokenizerInfo> {
    let p = sdft_model::assets::cached(sdft_model::assets::LLAMA_TOKENIZER_JS.rel)?;
    Some(llama2_tokenizer_from_js(&std::fs::read_to_string(p).unwrap()).unwrap())
}

fn example() -> Example {
    Example::new("What is 2 + 3?", "2 + 3 = 5.\nThe answer is 5.")
}

fn texts(t: &Template) -> Vec<String> {
    t.render_prompt(&example())
        .unwrap()
        .pieces
        .into_iter()
        .filter_map(|p| match p {
            PromptPiece::Text(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn gsm8k_distill_pieces() {
    let Some(tok) = llama2() else { return };
    let t = Template::preset("gsm8k_distill").unwrap();
    let prompt = t.render_prompt(&example()).unwrap();
    let ids = tok.encode_pieces(&prompt).unwrap();
    let pieces = texts(&t);
    assert_eq!(
        pieces.len(),
        2,
        "system block, then [INST] ... (separator is empty)"
    );
    let sys = tok.encode(&pieces[0], true).unwrap();
    let inst = tok.encode(&pieces[1], true).unwrap();
    assert_eq!(ids[0], 1, "BOS");
    assert_eq!(&ids[1..5], &[3532, 14816, 29903, 6778], "<<SYS>>");
    assert_eq!(ids[1..1 + sys.len()], sys[..]);
    assert_eq!(
        &ids[1 + sys.len()..1 + sys.len() + 3],
        &[518, 25580, 29962],
        "▁[INST] starts its own piece"
    );
    assert_eq!(ids.len(), 1 + sys.len() + inst.len());
    // Encoding the concatenated text instead gives other ids: piece boundaries matter.
    let whole = tok.encode(&pieces.concat(), true).unwrap();
    assert_ne!(whole, ids[1..].to_vec());
    // The forced prefix is the end of the prompt.
    let tail = tok.decode(&ids[ids.len() - 8..], true).unwrap();
    assert!(tail.ends_with("think step by step. "), "{tail:?}");
}

#[test]
fn alpaca_pieces_and_target() {
    let Some(tok) = llama2() else { return };
    let t = Template::preset("alpaca").unwrap();
    let ids = tok
        .encode_pieces(&t.render_prompt(&example()).unwrap())
        .unwrap();
    let pieces = texts(&t);
    assert_eq!(pieces.len(), 3, "system, separator, instruction block");
    let sys = tok.encode(&pieces[0], true).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(
        &ids[1 + sys.len()..1 + sys.len() + 3],
        &[29871, 13, 13],
        "the separator piece \\n\\n"
    );
    // The target: the response piece, then EOS = 2.
    let target = tok
        .encode_pieces(&t.render_turns(&example()).unwrap()[0].response)
        .unwrap();
    assert_eq!(*target.last().unwrap(), 2);
    assert_eq!(
        tok.decode(&target, true).unwrap(),
        "2 + 3 = 5.\nThe answer is 5."
    );
}
