//! Behaviour logs as LLM token sequences: one prompt per target, or a user's whole log packed
//! into one sequence with the loss on every selected behaviour span (token-efficient SFT).
//!
//! Text comes from [`behavior_data::Verbaliser`] (one line per event,
//! `"Mon 08:00: Breakfast\n"`). Every piece — the ChatML header, each line's prefix
//! (`"Mon 08:00: "`) and each answer (`"Breakfast\n"`) — is tokenised **separately** and the ids
//! are concatenated, so a target's one-prompt form (header + earlier lines + its prefix → its
//! answer) is token for token a prefix of the packed sequence: under a causal LM both give the same
//! log-likelihood for every target ([`PackedExample::unpack`] makes the one-prompt examples;
//! `tests/llm_packed.rs` checks the equality). Candidate answers for the closed-set read-out are
//! tokenised the same way ([`LogTokens::answer_ids`]).
//!
//! On 2 CPU cores most of a one-prompt-per-target SFT re-encodes the same history; packing
//! encodes it once. [`PackStats`] reports the tokens processed per trained target for both forms.

use std::ops::Range;

use behavior_data::Verbaliser;

use super::sft::SftExample;
use super::tokenizer::{chatml, ChatMessage, LlmTokenizer};
use crate::{Error, Result};

/// One answer span of a packed sequence: tokens `start..start + len` are event `event`'s
/// behaviour (class `class`), trained with weight `weight` (0 = context only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerSpan {
    /// First answer token.
    pub start: usize,
    /// Answer tokens (behaviour name and the newline).
    pub len: usize,
    /// Loss weight of every token of the span.
    pub weight: f32,
    /// Event index in the data set's log.
    pub event: usize,
    /// Behaviour class of the event.
    pub class: u32,
}

/// A token sequence with several answer spans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PackedExample {
    /// Token ids.
    pub ids: Vec<i64>,
    /// Answer spans in order.
    pub spans: Vec<AnswerSpan>,
}

impl PackedExample {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Spans with a positive weight.
    pub fn n_trained(&self) -> usize {
        self.spans.iter().filter(|s| s.weight > 0.0).count()
    }

    /// Every trained span as its own example (prompt = the tokens before the span, answer = the
    /// span) with its weight: the one-prompt-per-target form of the same targets.
    pub fn unpack(&self) -> Vec<(SftExample, f32)> {
        self.spans
            .iter()
            .filter(|s| s.weight > 0.0)
            .map(|s| {
                (
                    SftExample {
                        prompt: self.ids[..s.start].to_vec(),
                        answer: self.ids[s.start..s.start + s.len].to_vec(),
                    },
                    s.weight,
                )
            })
            .collect()
    }
}

/// Token counts of a set of packed sequences against the one-prompt-per-target form.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct PackStats {
    /// Sequences.
    pub sequences: usize,
    /// Trained targets (spans with weight > 0).
    pub targets: usize,
    /// Tokens of the packed sequences.
    pub packed_tokens: usize,
    /// Tokens the same targets take as one prompt each (prompt + answer).
    pub one_prompt_tokens: usize,
}

impl PackStats {
    /// Counts `examples`.
    pub fn of(examples: &[PackedExample]) -> Self {
        let mut s = Self {
            sequences: examples.len(),
            ..Self::default()
        };
        for e in examples {
            s.targets += e.n_trained();
            s.packed_tokens += e.len();
            s.one_prompt_tokens += e
                .spans
                .iter()
                .filter(|sp| sp.weight > 0.0)
                .map(|sp| sp.start + sp.len)
                .sum::<usize>();
        }
        s
    }

    /// Packed tokens per trained target.
    pub fn packed_per_target(&self) -> f64 {
        self.packed_tokens as f64 / self.targets.max(1) as f64
    }

    /// One-prompt tokens per trained target.
    pub fn one_prompt_per_target(&self) -> f64 {
        self.one_prompt_tokens as f64 / self.targets.max(1) as f64
    }
}

/// Tokenises behaviour logs piece by piece behind a fixed ChatML header
/// (`[system] user: instruction`, then the assistant turn opened; the log is the assistant's text).
#[derive(Debug)]
pub struct LogTokens<'t> {
    tok: &'t LlmTokenizer,
    header: Vec<i64>,
}

impl<'t> LogTokens<'t> {
    /// The header for `instruction` (with `system` as the system turn, when given). A tokenizer
    /// without the ChatML tokens `<|im_start|>` / `<|im_end|>` is refused.
    pub fn new(tok: &'t LlmTokenizer, system: Option<&str>, instruction: &str) -> Result<Self> {
        for special in ["<|im_start|>", "<|im_end|>"] {
            if tok.token_id(special).is_none() {
                return Err(Error::Config(format!(
                    "tokenizer {tok:?} has no {special} token: the prompts use the ChatML template"
                )));
            }
        }
        let header = tok.encode(&chatml(
            &[ChatMessage::new("user", instruction)],
            system,
            true,
        ))?;
        Ok(Self { tok, header })
    }

    /// The header ids.
    pub fn header(&self) -> &[i64] {
        &self.header
    }

    /// Ids of one piece of text; a non-empty text that encodes to nothing is an error.
    pub fn piece(&self, text: &str) -> Result<Vec<i64>> {
        let ids = self.tok.encode(text)?;
        if ids.is_empty() && !text.is_empty() {
            return Err(Error::Config(format!(
                "{text:?} tokenizes to nothing with {:?}",
                self.tok
            )));
        }
        Ok(ids)
    }

    /// The answer ids of every class (label text and newline), the candidates of the read-out.
    pub fn answer_ids(&self, v: &Verbaliser<'_>) -> Result<Vec<Vec<i64>>> {
        v.labels()
            .iter()
            .map(|l| {
                let ids = self.piece(&format!("{l}\n"))?;
                if ids.len() <= self.piece("\n")?.len() {
                    return Err(Error::Config(format!(
                        "behaviour name {l:?} tokenizes to nothing"
                    )));
                }
                Ok(ids)
            })
            .collect()
    }

    /// The prompt of target event `target` after history `history` (same user, earlier events),
    /// within `budget` tokens in all (0 = no limit; oldest events dropped first). Returns the
    /// example (prompt → answer) and the number of history events dropped.
    pub fn prompt(
        &self,
        v: &Verbaliser<'_>,
        history: Range<usize>,
        target: usize,
        budget: usize,
    ) -> Result<(SftExample, usize)> {
        // Counted as they will be encoded: lines as prefix + answer pieces.
        let count = |s: &str| {
            let ids = if s.ends_with('\n') {
                self.line_ids(s)
            } else {
                self.piece(s)
            };
            ids.map(|v| v.len()).unwrap_or(usize::MAX / 4)
        };
        // The header stands in for the instruction in the budget.
        let inner = if budget == 0 {
            0
        } else {
            let fixed = self.header.len();
            if budget <= fixed {
                return Err(Error::Config(format!(
                    "prompt budget {budget} tokens is not larger than the {fixed}-token header"
                )));
            }
            budget - fixed + count(&v.config().instruction)
        };
        let p = v.prompt(history, target, &count, inner)?;
        let mut prompt = self.header.clone();
        for line in &p.lines {
            prompt.extend(self.line_ids(line)?);
        }
        prompt.extend(self.piece(&p.prefix)?);
        Ok((
            SftExample {
                prompt,
                answer: self.piece(&p.answer)?,
            },
            p.dropped,
        ))
    }

    /// A line's ids as prefix + answer pieces (split at the last `": "`), the same split
    /// [`LogTokens::pack`] uses.
    fn line_ids(&self, line: &str) -> Result<Vec<i64>> {
        let cut = line
            .rfind(": ")
            .map(|i| i + 2)
            .ok_or_else(|| Error::Config(format!("verbalised line {line:?} has no \": \"")))?;
        let mut ids = self.piece(&line[..cut])?;
        ids.extend(self.piece(&line[cut..])?);
        Ok(ids)
    }

    /// Packs one user's events `events` (in log order) into sequences of at most `max_len`
    /// tokens: header, then each event's prefix and answer; event `i`'s answer span gets weight
    /// `weight(i)` (0 = context only). A sequence that fills up is closed and the next one starts
    /// with the header and the last `overlap` events again (as weight-0 context). Sequences
    /// without a trained span are not returned. `max_len` too small for the header and one event
    /// is an error.
    pub fn pack(
        &self,
        v: &Verbaliser<'_>,
        events: Range<usize>,
        weight: &dyn Fn(usize) -> f32,
        max_len: usize,
        overlap: usize,
    ) -> Result<Vec<PackedExample>> {
        let mut out = Vec::new();
        let mut cur = PackedExample {
            ids: self.header.clone(),
            spans: vec![],
        };
        // (prefix ids, answer ids, event, class) of the lines in the current sequence.
        let mut lines: Vec<(Vec<i64>, Vec<i64>, usize, u32)> = Vec::new();
        let class_of = |i: usize| -> Result<u32> {
            let id = v.dataset().log.behaviors()[i];
            behavior_data::vocab::token_to_class(id)
                .ok_or_else(|| Error::Config(format!("event {i} has reserved behaviour id {id}")))
        };
        for i in events {
            let p = self.piece(&v.prefix(i))?;
            let a = self.piece(&v.answer(i)?)?;
            let need = p.len() + a.len();
            if self.header.len() + need > max_len {
                return Err(Error::Config(format!(
                    "pack max_len {max_len} cannot hold the {}-token header and one {need}-token \
                     event",
                    self.header.len()
                )));
            }
            if cur.ids.len() + need > max_len {
                let done = std::mem::take(&mut cur);
                if done.n_trained() > 0 {
                    out.push(done);
                }
                cur.ids = self.header.clone();
                let keep = overlap.min(lines.len());
                let ctx: Vec<_> = lines.split_off(lines.len() - keep);
                lines.clear();
                for (cp, ca, ce, cc) in ctx {
                    if cur.ids.len() + cp.len() + ca.len() + need > max_len {
                        continue; // context that does not fit is left out
                    }
                    cur.ids.extend(&cp);
                    cur.spans.push(AnswerSpan {
                        start: cur.ids.len(),
                        len: ca.len(),
                        weight: 0.0,
                        event: ce,
                        class: cc,
                    });
                    cur.ids.extend(&ca);
                    lines.push((cp, ca, ce, cc));
                }
            }
            let class = class_of(i)?;
            cur.ids.extend(&p);
            cur.spans.push(AnswerSpan {
                start: cur.ids.len(),
                len: a.len(),
                weight: weight(i),
                event: i,
                class,
            });
            cur.ids.extend(&a);
            lines.push((p, a, i, class));
        }
        if cur.n_trained() > 0 {
            out.push(cur);
        }
        Ok(out)
    }
}
