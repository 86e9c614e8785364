//! Training data for the trainers users scale out with: TRL's `SFTTrainer`,
//! LLaMA-Factory and axolotl, in the prompt format of a run.
//!
//! In the `chat` prompt format every example becomes one conversation in
//! OpenAI's message layout, `{"messages": [{"role", "content"}, …]}`, ending
//! with the assistant's answer: the system message as the run's prompts carry
//! it, each user message as the template's `user_format` renders it, each
//! assistant message with the template's assistant prefix. The trainer then
//! applies the model's own chat template, the one our stages render with, so
//! the tokens it trains on are ours. TRL reads the JSONL as a conversational
//! dataset; axolotl with `type: chat_template`; LLaMA-Factory as `sharegpt`
//! formatting with OpenAI tags (a `dataset_info.json` entry is written beside
//! the file).
//!
//! In the `paper` prompt format the prompts are the paper's text, not a chat:
//! each example becomes its rendered prompt and its target, BOS/EOS markers
//! left to the trainer's tokenizer (which adds them as our stages do): TRL's
//! prompt-completion layout (`{"prompt", "completion"}`, loss on the
//! completion); axolotl's `input_output` segments with the loss masks of our
//! training (every assistant turn supervised, user turns masked);
//! LLaMA-Factory's `alpaca` columns, to be trained with its `empty` template.
//!
//! ```
//! use sdft_core::Example;
//! use sdft_data::export::{export, Trainer};
//! use sdft_data::Template;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let ex = vec![Example::new("Add 2 and 3.", "5")];
//! let t = Template::preset("alpaca").unwrap();
//! let out = export(&ex, &t, Trainer::Trl, dir.path(), "sdft").unwrap();
//! let line = std::fs::read_to_string(&out.data).unwrap();
//! let row: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
//! assert!(row["prompt"].as_str().unwrap().ends_with("### Response:\n"));
//! assert_eq!(row["completion"], "5");
//! ```

use std::path::{Path, PathBuf};

use sdft_core::Example;
use serde_json::{json, Value};

use crate::template::PromptFormat;
use crate::{atomic, Error, Result, Template};

/// The trainer whose data layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trainer {
    /// TRL's `SFTTrainer` (JSONL).
    Trl,
    /// LLaMA-Factory (a JSON file and its `dataset_info.json` entry).
    Llamafactory,
    /// axolotl (JSONL and a `datasets:` entry for its config).
    Axolotl,
}

impl Trainer {
    pub fn as_str(self) -> &'static str {
        match self {
            Trainer::Trl => "trl",
            Trainer::Llamafactory => "llamafactory",
            Trainer::Axolotl => "axolotl",
        }
    }
}

impl std::fmt::Display for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Trainer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "trl" => Ok(Trainer::Trl),
            "llamafactory" | "llama-factory" => Ok(Trainer::Llamafactory),
            "axolotl" => Ok(Trainer::Axolotl),
            other => Err(Error::Template {
                name: "export format".into(),
                message: format!("expected trl, llamafactory or axolotl, found {other:?}"),
            }),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    /// The data file.
    pub data: PathBuf,
    /// The trainer's dataset registration written beside it, if it has one
    /// (LLaMA-Factory's `dataset_info.json`, axolotl's `datasets:` entry).
    pub registration: Option<PathBuf>,
    pub rows: usize,
    pub prompt_format: PromptFormat,
}

/// The conversation of `ex` as the `chat` prompt format renders it, with its
/// reference answer (`ex.output`) as the final assistant message.
fn messages(template: &Template, ex: &Example) -> Value {
    let msgs = template.chat_conversation(ex, &ex.output);
    Value::Array(
        msgs.into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    )
}

/// The row of `ex` for `trainer` in the template's prompt format.
fn row(template: &Template, trainer: Trainer, ex: &Example) -> Result<Value> {
    if template.prompt_format() == PromptFormat::Chat {
        return Ok(json!({ "messages": messages(template, ex) }));
    }
    let prompt = template.render_prompt(ex)?.text();
    let completion = template
        .render_turns(ex)?
        .pop()
        .map(|t| t.response.text())
        .unwrap_or_default();
    Ok(match trainer {
        Trainer::Trl => json!({"prompt": prompt, "completion": completion}),
        Trainer::Llamafactory => json!({"instruction": prompt, "output": completion}),
        Trainer::Axolotl => {
            let mut segments = Vec::new();
            for t in template.render_turns(ex)? {
                segments.push(json!({"text": t.prompt.text(), "label": false}));
                segments.push(json!({"text": t.response.text(), "label": true}));
            }
            json!({ "segments": segments })
        }
    })
}

/// Writes `examples` (their `output` is the answer trained on) for `trainer`
/// into `dir` under the dataset name `name`: `NAME.jsonl` (TRL, axolotl) or
/// `NAME.json` with `dataset_info.json` (LLaMA-Factory; an existing
/// `dataset_info.json` keeps its other entries), and for axolotl
/// `NAME.axolotl.yaml`, the `datasets:` entry to paste into its config.
pub fn export(
    examples: &[Example],
    template: &Template,
    trainer: Trainer,
    dir: &Path,
    name: &str,
) -> Result<Exported> {
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(Error::Template {
            name: "export".into(),
            message: format!("dataset name {name:?}: expected a plain file name"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let rows = examples
        .iter()
        .map(|ex| {
            row(template, trainer, ex).map_err(|e| Error::Template {
                name: template.name.clone(),
                message: format!("example {}: {e}", ex.id),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let chat = template.prompt_format() == PromptFormat::Chat;
    let (data, registration) = match trainer {
        Trainer::Trl | Trainer::Axolotl => {
            let path = dir.join(format!("{name}.jsonl"));
            let mut text = String::new();
            for r in &rows {
                text.push_str(&r.to_string());
                text.push('\n');
            }
            atomic::write_bytes(&path, text.as_bytes())?;
            let registration = (trainer == Trainer::Axolotl)
                .then(|| write_axolotl_entry(dir, name, &path, chat))
                .transpose()?;
            (path, registration)
        }
        Trainer::Llamafactory => {
            let path = dir.join(format!("{name}.json"));
            let text = serde_json::to_string_pretty(&rows).expect("JSON values serialize");
            atomic::write_bytes(&path, text.as_bytes())?;
            let info = write_dataset_info(dir, name, &path, chat)?;
            (path, Some(info))
        }
    };
    Ok(Exported {
        data,
        registration,
        rows: rows.len(),
        prompt_format: template.prompt_format(),
    })
}

/// LLaMA-Factory's registration of `NAME.json` in `dir/dataset_info.json`.
fn write_dataset_info(dir: &Path, name: &str, data: &Path, chat: bool) -> Result<PathBuf> {
    let path = dir.join("dataset_info.json");
    let mut info = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Value>(&text)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| Error::Template {
                name: "export".into(),
                message: format!("{}: expected a JSON object of datasets", path.display()),
            })?,
        Err(_) => json!({}),
    };
    let file_name = data
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let entry = if chat {
        json!({
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system"
            }
        })
    } else {
        json!({
            "file_name": file_name,
            "columns": {"prompt": "instruction", "response": "output"}
        })
    };
    info[name] = entry;
    let text = serde_json::to_string_pretty(&info).expect("JSON values serialize");
    atomic::write_bytes(&path, text.as_bytes())?;
    Ok(path)
}

/// axolotl's `datasets:` entry for `data`.
fn write_axolotl_entry(dir: &Path, name: &str, data: &Path, chat: bool) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.axolotl.yaml"));
    let body = if chat {
        "    type: chat_template\n    field_messages: messages\n    message_property_mappings:\n      role: role\n      content: content\n    roles_to_train: [\"assistant\"]\n"
    } else {
        "    type: input_output\n"
    };
    let text = format!(
        "# axolotl `datasets:` entry for {name} (written by sdft data export)\ndatasets:\n  - path: {}\n    ds_type: json\n{body}",
        data.display()
    );
    atomic::write_bytes(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::ChatFormat;
    use sdft_core::Turn;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    fn examples() -> Vec<Example> {
        vec![
            Example::new("What is 6 x 7?", "6 x 7 = 42.\n#### 42"),
            Example::new("And 2 + 2?", "4")
                .with_history(vec![Turn::new("Hi.", "Hello!")])
                .with_system("Be brief."),
        ]
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn chat_rows_are_the_conversations_the_chat_template_renders() {
        let chat = ChatFormat::new(CHATML, "", "<|im_end|>").unwrap();
        let t = Template::preset("gsm8k")
            .unwrap()
            .with_prompt_format(PromptFormat::Chat, Some(chat.clone()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ex = examples();
        let out = export(&ex, &t, Trainer::Trl, dir.path(), "sdft").unwrap();
        assert_eq!((out.rows, out.prompt_format), (2, PromptFormat::Chat));
        let rows = lines(&out.data);
        let msgs = rows[1]["messages"].as_array().unwrap();
        let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
        assert_eq!(msgs[0]["content"], "Be brief.");
        assert_eq!(msgs[4]["content"], "4");
        // Rendered with the chat template, the conversation is exactly the
        // training rendering: prompt pieces and targets of every turn.
        for (row, ex) in rows.iter().zip(&ex) {
            let pairs: Vec<(String, String)> = row["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["role"].as_str().unwrap().to_string(),
                        m["content"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let rendered = chat.render(&pairs, false).unwrap();
            let ours: String = t
                .render_turns(ex)
                .unwrap()
                .iter()
                .map(|r| r.prompt.text() + &r.response.text())
                .collect();
            assert_eq!(rendered, ours);
        }
        // axolotl: the same rows and its datasets entry.
        let ax = export(&ex, &t, Trainer::Axolotl, dir.path(), "ax").unwrap();
        assert_eq!(lines(&ax.data), rows);
        let yaml = std::fs::read_to_string(ax.registration.unwrap()).unwrap();
        assert!(
            yaml.contains("type: chat_template") && yaml.contains("ax.jsonl"),
            "{yaml}"
        );
        // LLaMA-Factory: a JSON array and its dataset_info entry, added beside
        // what the file held.
        std::fs::write(
            dir.path().join("dataset_info.json"),
            r#"{"other": {"file_name": "o.json"}}"#,
        )
        .unwrap();
        let lf = export(&ex, &t, Trainer::Llamafactory, dir.path(), "lf").unwrap();
        let arr: Value = serde_json::from_str(&std::fs::read_to_string(&lf.data).unwrap()).unwrap();
        assert_eq!(arr.as_array().unwrap(), &rows);
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(lf.registration.unwrap()).unwrap())
                .unwrap();
        assert_eq!(info["lf"]["formatting"], "sharegpt");
        assert_eq!(info["lf"]["file_name"], "lf.json");
        assert_eq!(info["lf"]["tags"]["system_tag"], "system");
        assert_eq!(info["other"]["file_name"], "o.json");
    }

    #[test]
    fn paper_rows_are_prompt_and_target_text() {
        let t = Template::preset("alpaca").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ex = examples();
        let trl = export(&ex, &t, Trainer::Trl, dir.path(), "p").unwrap();
        let rows = lines(&trl.data);
        let prompt = t.render_prompt(&ex[1]).unwrap().text();
        assert_eq!(rows[1]["prompt"], prompt.as_str());
        assert!(!prompt.contains("<s>"));
        assert_eq!(rows[1]["completion"], "4");
        let ax = export(&ex, &t, Trainer::Axolotl, dir.path(), "p").unwrap();
        let seg = &lines(&ax.data)[1]["segments"];
        let labels: Vec<bool> = seg
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["label"].as_bool().unwrap())
            .collect();
        assert_eq!(labels, [false, true, false, true]);
        assert_eq!(seg[1]["text"], "Hello!");
        let lf = export(&ex, &t, Trainer::Llamafactory, dir.path(), "p").unwrap();
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(lf.registration.unwrap()).unwrap())
                .unwrap();
        assert_eq!(info["p"]["columns"]["prompt"], "instruction");
        assert!(export(&ex, &t, Trainer::Trl, dir.path(), "a/b").is_err());
        assert_eq!("axolotl".parse::<Trainer>().unwrap(), Trainer::Axolotl);
        assert!("torchtune".parse::<Trainer>().is_err());
    }
}
