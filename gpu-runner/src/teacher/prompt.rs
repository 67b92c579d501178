//! The Qwen3-Reranker prompt, built by concatenating token ids (spec §D.1, §D.2).
//!
//! Never renders a chat template: recent model revisions ship one that empties the fields.

use std::fmt;
use std::str::FromStr;

use tokenizers::Tokenizer;

use crate::{Error, Result};

/// The system text of the official prompt.
pub const SYSTEM: &str = "Judge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".";

/// The reference pipeline's task instruction.
pub const DEFAULT_INSTRUCTION: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

/// The default total prompt length, in tokens.
pub const DEFAULT_MAX_LENGTH: usize = 8192;

/// Everything up to and including `<|im_start|>user\n`.
pub fn prefix_text() -> String {
    format!("<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
}

/// The assistant turn with the empty think block.
pub const SUFFIX_TEXT: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

/// The user content of one pair.
pub fn middle_text(instruction: &str, query: &str, doc: &str) -> String {
    format!("<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}")
}

/// Which token stream the teacher sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptVariant {
    /// The official Qwen3-Reranker prompt; only the middle is truncated.
    Official,
    /// The reference pipeline's stream: the chat template's `<|im_end|>\n` is duplicated, and
    /// the rendered prompt is cut to the max length before the suffix is appended.
    SeedCompat,
}

impl FromStr for PromptVariant {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "official" => Ok(PromptVariant::Official),
            "seed-compat" => Ok(PromptVariant::SeedCompat),
            _ => Err(format!("unknown prompt {s:?}: use official or seed-compat")),
        }
    }
}

impl fmt::Display for PromptVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PromptVariant::Official => "official",
            PromptVariant::SeedCompat => "seed-compat",
        })
    }
}

/// Ids of the special and answer tokens, checked when the tokenizer is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub im_start: u32,
    pub im_end: u32,
    pub think: u32,
    pub end_think: u32,
    pub yes: u32,
    pub no: u32,
}

impl SpecialTokens {
    /// Looks up the tokens in `tok`; errors name the token that is missing or not single.
    pub fn check(tok: &Tokenizer) -> Result<SpecialTokens> {
        let single = |text: &str| -> Result<u32> {
            match encode(tok, text)?.as_slice() {
                [id] => Ok(*id),
                ids => Err(Error::Other(format!(
                    "teacher tokenizer: {text:?} must encode to a single token, got {ids:?}"
                ))),
            }
        };
        let special = |text: &str| -> Result<u32> {
            tok.token_to_id(text)
                .ok_or_else(|| {
                    Error::Other(format!(
                        "teacher tokenizer: special token {text} is missing; \
                         is this a Qwen3 tokenizer.json?"
                    ))
                })
                .and_then(|id| match single(text)? {
                    got if got == id => Ok(id),
                    got => Err(Error::Other(format!(
                        "teacher tokenizer: {text} encodes to {got}, not its id {id}"
                    ))),
                })
        };
        Ok(SpecialTokens {
            im_start: special("<|im_start|>")?,
            im_end: special("<|im_end|>")?,
            think: special("<think>")?,
            end_think: special("</think>")?,
            yes: single("yes")?,
            no: single("no")?,
        })
    }
}

/// Encodes `text` without adding special tokens (none are added for Qwen3 anyway).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tok.encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| Error::Other(format!("teacher tokenizer failed on {text:?}: {e}")))
}

/// Builds the token ids of every pair for one prompt setting.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    tokenizer: Tokenizer,
    variant: PromptVariant,
    instruction: String,
    max_length: usize,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// `<|im_end|>\n`, appended by the chat template in seed-compat mode.
    turn_end: Vec<u32>,
    /// Ids every pair starts with: the prefix plus `<Instruct>: …\n<Query>:`.
    shared: Vec<u32>,
}

impl PromptBuilder {
    /// Tokenizes the fixed parts once.
    pub fn new(
        tokenizer: Tokenizer,
        variant: PromptVariant,
        instruction: &str,
        max_length: usize,
    ) -> Result<PromptBuilder> {
        let prefix = encode(&tokenizer, &prefix_text())?;
        let suffix = encode(&tokenizer, SUFFIX_TEXT)?;
        let turn_end = encode(&tokenizer, "<|im_end|>\n")?;
        let head = format!("<Instruct>: {instruction}\n<Query>:");
        let shared = [prefix.clone(), encode(&tokenizer, &head)?].concat();
        if shared.len() + suffix.len() + turn_end.len() >= max_length {
            return Err(Error::Other(format!(
                "--max-length {max_length} leaves no room for the query and document: the fixed \
                 prompt parts alone take {} tokens",
                shared.len() + suffix.len() + turn_end.len()
            )));
        }
        Ok(PromptBuilder {
            tokenizer,
            variant,
            instruction: instruction.to_string(),
            max_length,
            prefix,
            suffix,
            turn_end,
            shared,
        })
    }

    /// The ids of `<|im_start|>system\n…<|im_start|>user\n`.
    pub fn prefix_ids(&self) -> &[u32] {
        &self.prefix
    }

    /// The ids of the assistant turn with the empty think block.
    pub fn suffix_ids(&self) -> &[u32] {
        &self.suffix
    }

    /// The ids every pair's prompt starts with (prefix plus instruction and `<Query>:`).
    pub fn shared_ids(&self) -> &[u32] {
        &self.shared
    }

    /// The tokenizer the prompts are built with.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The full prompt ids of one (query, document) pair.
    pub fn build(&self, query: &str, doc: &str) -> Result<Vec<u32>> {
        let middle = encode(&self.tokenizer, &middle_text(&self.instruction, query, doc))?;
        let ids = match self.variant {
            PromptVariant::Official => {
                let budget = self.max_length - self.prefix.len() - self.suffix.len();
                let middle = &middle[..middle.len().min(budget)];
                [&self.prefix[..], middle, &self.suffix[..]].concat()
            }
            PromptVariant::SeedCompat => {
                let mut rendered = [&self.prefix[..], &middle, &self.turn_end[..]].concat();
                rendered.truncate(self.max_length);
                [rendered, self.suffix.clone()].concat()
            }
        };
        Ok(ids)
    }

    /// The ids of one pair after [`PromptBuilder::shared_ids`], for prefix reuse.
    pub fn build_rest(&self, query: &str, doc: &str) -> Result<Vec<u32>> {
        let ids = self.build(query, doc)?;
        match ids.strip_prefix(self.shared.as_slice()) {
            Some(rest) => Ok(rest.to_vec()),
            None => Err(Error::Other(format!(
                "prompt of query {query:?} does not start with the shared prefix tokens; \
                 the tokenizer is not Qwen3-like"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_and_print() {
        for v in [PromptVariant::Official, PromptVariant::SeedCompat] {
            assert_eq!(v.to_string().parse::<PromptVariant>(), Ok(v));
        }
        assert!("chat".parse::<PromptVariant>().is_err());
    }

    #[test]
    fn middle_uses_single_newlines() {
        assert_eq!(
            middle_text("I", "q", "d"),
            "<Instruct>: I\n<Query>: q\n<Document>: d"
        );
    }
}
