//! HF chat templates (Jinja, from `tokenizer_config.json` or GGUF
//! `tokenizer.chat_template`), rendered with minijinja the way transformers renders
//! them: `raise_exception`, Python string and dict methods (`content.strip()`,
//! `.items()`, ...) through minijinja-contrib's `pycompat`, and blocks trimmed
//! (`trim_blocks`, `lstrip_blocks`) as HF's environment does.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};

use crate::{Error, Result};

/// A compiled HF chat template.
///
/// ```
/// use sdft_data::ChatTemplate;
/// let t = ChatTemplate::new("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}").unwrap();
/// let text = t.render(&[("user".into(), "Hi".into())], true, "<s>", "</s>").unwrap();
/// assert_eq!(text, "<|user|>Hi\n<|assistant|>");
/// ```
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Compiles `source`; errors say where the template is malformed.
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template {
                name: "chat_template".into(),
                message: e.to_string(),
            })?;
        Ok(ChatTemplate { env })
    }

    /// Renders `(role, content)` messages; `add_generation_prompt` opens the
    /// assistant's turn. `bos_token`/`eos_token` are the variables HF passes.
    pub fn render(
        &self,
        messages: &[(String, String)],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        let msgs: Vec<_> = messages
            .iter()
            .map(|(r, c)| context! { role => r, content => c })
            .collect();
        let tmpl = self.env.get_template("chat").map_err(|e| Error::Template {
            name: "chat_template".into(),
            message: e.to_string(),
        })?;
        tmpl.render(context! {
            messages => msgs,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| Error::Template {
            name: "chat_template".into(),
            message: e.to_string(),
        })
    }
}
