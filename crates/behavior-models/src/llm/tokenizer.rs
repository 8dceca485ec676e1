//! Tokenizer (the `tokenizers` crate on a HF `tokenizer.json`) and the ChatML chat template.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A HF tokenizer plus the file it came from (for error messages).
pub struct LlmTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for LlmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmTokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl LlmTokenizer {
    /// Loads a `tokenizer.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&json, path)
    }

    /// Parses a tokenizer from its JSON text (`path` is only used in error messages).
    pub fn from_json(json: &str, path: &Path) -> Result<Self> {
        let inner: tokenizers::Tokenizer =
            json.parse()
                .map_err(|e: tokenizers::Error| Error::Tokenizer {
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers::Tokenizer`.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Encodes text to ids. Special tokens written in the text (`<|im_start|>`) are recognised;
    /// no BOS/EOS is added (`add_special_tokens = false`), chat formatting is explicit.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                msg: format!("encoding {text:?}: {e}"),
            })?;
        Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// Decodes ids to text, optionally dropping special tokens.
    pub fn decode(&self, ids: &[i64], skip_special: bool) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner
            .decode(&ids, skip_special)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                msg: format!("decoding: {e}"),
            })
    }

    /// The id of one token string (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }
}

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A turn with the given role.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// SmolLM2-Instruct's default system prompt, inserted when the first turn is not a system turn.
pub const SMOLLM2_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// Renders the ChatML template (`<|im_start|>role\ncontent<|im_end|>\n` per turn), as SmolLM2's
/// and Qwen2's `chat_template` do. `default_system` is prepended as a system turn when the first
/// turn is not one (SmolLM2: [`SMOLLM2_SYSTEM`]); `add_generation_prompt` opens an assistant turn.
pub fn chatml(
    messages: &[ChatMessage],
    default_system: Option<&str>,
    add_generation_prompt: bool,
) -> String {
    let mut s = String::new();
    if let Some(sys) = default_system {
        if messages.first().is_none_or(|m| m.role != "system") {
            s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
        }
    }
    for m in messages {
        s.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    if add_generation_prompt {
        s.push_str("<|im_start|>assistant\n");
    }
    s
}
