//! Event histories as text for a language model (BehaviorLM's prompts), without libtorch.
//!
//! One event is one line, `"{weekday} {HH:MM}[ at {location}]: {behaviour}\n"`, e.g.
//! `"Mon 08:00 at home: Breakfast\n"`. A prediction prompt is the instruction, the user's
//! earlier events as lines (oldest first) and the target's **prefix** (`"Tue 09:00: "`): the
//! model's answer is the behaviour name and the newline that ends the line. Because a target's
//! prompt is its history's lines followed by its own prefix, a user's whole history written as one
//! text holds every target's prompt as a prefix — packed training (one sequence per user, loss on
//! every selected behaviour span) sees the same tokens as one prompt per target.
//!
//! Behaviour names are [`crate::Vocab::name`] (or [`crate::Vocab::verbalise`], `"name (category)"`,
//! with `category = true`), so the semantic names of the data set reach the model. The location
//! is optional ([`VerbaliserConfig::location`]): it is useful where location names mean something
//! (the simulator's `home` / `work`), useless where they are ids (Foursquare's `poi-…`), and a
//! label leak where they embed the category (LLMob's `category#place`).
//!
//! Token budgets: [`Verbaliser::prompt`] keeps the newest events that fit a budget counted by a
//! [`TokenCounter`] (the tokenizer, supplied by the caller) and reports how many older ones it
//! dropped; a budget that cannot hold the instruction, the prefix and one event is an error.

use crate::{Dataset, Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Weekday abbreviations, 0 = Monday.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// How events become text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerbaliserConfig {
    /// Instruction text (the user turn before the log).
    pub instruction: String,
    /// Write each event's location name (`"… at home: …"`).
    pub location: bool,
    /// Write behaviours as `"name (category)"` where the vocabulary has categories.
    pub category: bool,
    /// At most this many history events per prompt (newest kept); 0 = no limit.
    pub max_events: usize,
}

impl Default for VerbaliserConfig {
    fn default() -> Self {
        Self {
            instruction: "Below is one person's activity log, one event per line (weekday, time: \
                          activity). Continue it: give the activity of the last line."
                .into(),
            location: false,
            category: false,
            max_events: 0,
        }
    }
}

/// Counts tokens of a text (the LLM tokenizer, supplied by the caller).
pub trait TokenCounter {
    /// Number of tokens `text` encodes to (without special tokens added).
    fn count(&self, text: &str) -> Result<usize>;
}

/// Any `Fn(&str) -> usize` counts tokens (tests use a character or word count).
impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> Result<usize> {
        Ok(self(text))
    }
}

/// A prediction prompt in pieces: `instruction`, `lines` (history, oldest first), then `prefix`;
/// `answer` is what follows (the target's behaviour text and the newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The instruction.
    pub instruction: String,
    /// History lines, oldest first, each ending in `\n`.
    pub lines: Vec<String>,
    /// The target's line up to its behaviour (`"Tue 09:00: "`).
    pub prefix: String,
    /// The target's behaviour text followed by `\n` (for training and teacher forcing).
    pub answer: String,
    /// The target's class id.
    pub class: u32,
    /// History events left out (budget or `max_events`), oldest first.
    pub dropped: usize,
    /// Tokens of instruction + lines + prefix by the counter (0 when no counter was used).
    pub tokens: usize,
}

impl Prompt {
    /// The log part as one text: lines then prefix.
    pub fn log_text(&self) -> String {
        let mut s = self.lines.concat();
        s.push_str(&self.prefix);
        s
    }
}

/// Writes events of a [`Dataset`] as text.
#[derive(Debug, Clone)]
pub struct Verbaliser<'a> {
    ds: &'a Dataset,
    cfg: VerbaliserConfig,
    labels: Vec<String>,
}

impl<'a> Verbaliser<'a> {
    /// Checks that the data set's behaviours have usable, distinct names: a data set whose names
    /// are ids (all numeric), or where two classes write the same text, or a name with a newline,
    /// is refused with the offending name.
    pub fn new(ds: &'a Dataset, cfg: VerbaliserConfig) -> Result<Self> {
        if !ds.ordered {
            return Err(Error::Invalid(format!(
                "data set {}: events have no order, so there is no history to verbalise",
                ds.name
            )));
        }
        let k = ds.num_classes();
        let mut labels = Vec::with_capacity(k);
        for c in 0..k as u32 {
            let id = crate::vocab::class_to_token(c);
            let text = if cfg.category {
                ds.behaviors.verbalise(id)
            } else {
                ds.behaviors.name(id).to_owned()
            };
            let text = text.trim().to_owned();
            if text.is_empty() {
                return Err(Error::Invalid(format!(
                    "data set {}: behaviour class {c} has an empty name",
                    ds.name
                )));
            }
            if text.contains('\n') {
                return Err(Error::Invalid(format!(
                    "data set {}: behaviour name {text:?} contains a newline",
                    ds.name
                )));
            }
            labels.push(text);
        }
        if k > 0
            && labels
                .iter()
                .all(|l| l.chars().all(|ch| ch.is_ascii_digit()))
        {
            return Err(Error::Invalid(format!(
                "data set {}: behaviour names are numeric ids ({:?} …), not names a language model \
                 can read",
                ds.name,
                &labels[..labels.len().min(3)]
            )));
        }
        let mut seen = std::collections::HashMap::new();
        for (c, l) in labels.iter().enumerate() {
            if let Some(prev) = seen.insert(l.as_str(), c) {
                return Err(Error::Invalid(format!(
                    "data set {}: classes {prev} and {c} are both written {l:?}",
                    ds.name
                )));
            }
        }
        Ok(Self { ds, cfg, labels })
    }

    /// The data set.
    pub fn dataset(&self) -> &'a Dataset {
        self.ds
    }

    /// The configuration.
    pub fn config(&self) -> &VerbaliserConfig {
        &self.cfg
    }

    /// The answer text of every class (class order), without the newline.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// `"HH:MM"` of the start of a time slot.
    pub fn clock(&self, slot: u16) -> String {
        let minutes = slot as u32 * 1440 / self.ds.num_slots.max(1) as u32;
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// Event `i`'s line up to its behaviour: `"Mon 08:00[ at home]: "`.
    pub fn prefix(&self, i: usize) -> String {
        let log = &self.ds.log;
        self.prefix_of(log.weekdays()[i], log.slots()[i], log.locations()[i])
    }

    /// The line prefix of an event at `weekday`, `slot` and location token `location`.
    pub fn prefix_of(&self, weekday: u8, slot: u16, location: u32) -> String {
        let wd = WEEKDAYS[weekday as usize % 7];
        let mut s = format!("{wd} {}", self.clock(slot));
        if self.cfg.location {
            s.push_str(" at ");
            s.push_str(self.ds.locations.name(location));
        }
        s.push_str(": ");
        s
    }

    /// Event `i`'s behaviour text followed by `\n`.
    pub fn answer(&self, i: usize) -> Result<String> {
        let c = self.class(i)?;
        Ok(format!("{}\n", self.labels[c as usize]))
    }

    /// Event `i`'s full line.
    pub fn line(&self, i: usize) -> Result<String> {
        Ok(self.prefix(i) + &self.answer(i)?)
    }

    fn class(&self, i: usize) -> Result<u32> {
        let id = self.ds.log.behaviors()[i];
        crate::vocab::token_to_class(id).ok_or_else(|| {
            Error::Invalid(format!(
                "data set {}: event {i} has the reserved behaviour id {id}",
                self.ds.name
            ))
        })
    }

    /// The prompt for target event `target` with history `history` (event indices of the same
    /// user, before the target). Keeps the newest events such that instruction + lines + prefix
    /// take at most `budget` tokens by `counter` (and at most `max_events` events); the number
    /// left out is [`Prompt::dropped`]. `budget = 0` means no token limit (no counting).
    pub fn prompt(
        &self,
        history: Range<usize>,
        target: usize,
        counter: &dyn TokenCounter,
        budget: usize,
    ) -> Result<Prompt> {
        let log = &self.ds.log;
        if history.end > target || target >= log.len() {
            return Err(Error::Invalid(format!(
                "prompt: history {history:?} must end at or before the target {target} (< {})",
                log.len()
            )));
        }
        if !history.is_empty() && log.users()[history.start] != log.users()[target] {
            return Err(Error::Invalid(format!(
                "prompt: history starts at event {} of another user than target {target}",
                history.start
            )));
        }
        let prefix = self.prefix(target);
        let answer = self.answer(target)?;
        let class = self.class(target)?;
        let mut start = history.start;
        if self.cfg.max_events > 0 && history.len() > self.cfg.max_events {
            start = history.end - self.cfg.max_events;
        }
        let mut lines = Vec::with_capacity(history.end - start);
        let mut tokens = 0;
        if budget == 0 {
            for i in start..history.end {
                lines.push(self.line(i)?);
            }
        } else {
            tokens = counter.count(&self.cfg.instruction)? + counter.count(&prefix)?;
            let mut kept = Vec::new();
            for i in (start..history.end).rev() {
                let line = self.line(i)?;
                let t = counter.count(&line)?;
                if tokens + t > budget {
                    if kept.is_empty() {
                        return Err(Error::config(
                            "prompt budget",
                            format!(
                                "{budget} tokens cannot hold the instruction, the target's prefix \
                                 and one event ({} tokens needed)",
                                tokens + t
                            ),
                        ));
                    }
                    break;
                }
                tokens += t;
                kept.push(line);
            }
            start = history.end - kept.len();
            kept.reverse();
            lines = kept;
        }
        Ok(Prompt {
            instruction: self.cfg.instruction.clone(),
            dropped: start - history.start,
            lines,
            prefix,
            answer,
            class,
            tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::{simulate, SimConfig};

    fn sim() -> Dataset {
        simulate(&SimConfig {
            users: 3,
            days: 3,
            ..SimConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn lines_carry_time_location_and_names_and_prompts_are_prefixes_of_the_log() -> Result<()> {
        let ds = sim();
        let v = Verbaliser::new(
            &ds,
            VerbaliserConfig {
                location: true,
                ..VerbaliserConfig::default()
            },
        )?;
        let r = ds.log.user_range(0);
        let line = v.line(r.start)?;
        assert!(line.ends_with('\n') && line.contains(" at "), "{line}");
        assert!(WEEKDAYS.iter().any(|d| line.starts_with(d)), "{line}");
        let chars = |s: &str| s.chars().count();
        let t = r.start + 5;
        let p = v.prompt(r.start..t, t, &chars, 0)?;
        assert_eq!(p.lines.len(), 5);
        assert_eq!(p.dropped, 0);
        // The whole history written out holds the prompt and its answer as a prefix.
        let mut full = String::new();
        for i in r.start..=t {
            full.push_str(&v.line(i)?);
        }
        assert_eq!(p.log_text() + &p.answer, full);
        Ok(())
    }

    #[test]
    fn the_budget_drops_oldest_events_first_and_counts_them() -> Result<()> {
        let ds = sim();
        let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
        let r = ds.log.user_range(1);
        let t = r.start + 20;
        let chars = |s: &str| s.chars().count();
        let all = v.prompt(r.start..t, t, &chars, 0)?;
        let need: usize = chars(&all.instruction) + chars(&all.prefix);
        let last3: usize = all.lines[17..].iter().map(|l| chars(l)).sum();
        let p = v.prompt(r.start..t, t, &chars, need + last3)?;
        assert_eq!(p.lines, all.lines[17..].to_vec());
        assert_eq!(p.dropped, 17);
        assert_eq!(p.tokens, need + last3);
        let v4 = Verbaliser::new(
            &ds,
            VerbaliserConfig {
                max_events: 4,
                ..VerbaliserConfig::default()
            },
        )?;
        let p4 = v4.prompt(r.start..t, t, &chars, 0)?;
        assert_eq!((p4.lines.len(), p4.dropped), (4, 16));
        // Too small for one event: an error naming the budget.
        let err = v
            .prompt(r.start..t, t, &chars, need)
            .unwrap_err()
            .to_string();
        assert!(err.contains("budget"), "{err}");
        Ok(())
    }

    #[test]
    fn numeric_or_duplicate_names_are_refused() {
        let mut ds = sim();
        let mut vocab = crate::Vocab::new();
        for c in 0..ds.num_classes() {
            vocab.insert(&c.to_string(), None);
        }
        ds.behaviors = vocab;
        let err = Verbaliser::new(&ds, VerbaliserConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("numeric ids"), "{err}");
        let mut ds = sim();
        let mut vocab = crate::Vocab::new();
        for c in 0..ds.num_classes() {
            vocab.insert(&format!("b{c}"), None);
        }
        ds.behaviors = vocab.clone();
        assert!(Verbaliser::new(&ds, VerbaliserConfig::default()).is_ok());
        // Two names that write the same text once trimmed.
        let mut vocab = crate::Vocab::new();
        for c in 0..ds.num_classes() {
            let name = if c == 1 {
                "b0 ".to_owned()
            } else {
                format!("b{c}")
            };
            vocab.insert(&name, None);
        }
        ds.behaviors = vocab;
        let err = Verbaliser::new(&ds, VerbaliserConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("both written"), "{err}");
    }

    #[test]
    fn clock_covers_the_day() {
        let ds = sim();
        let v = Verbaliser::new(&ds, VerbaliserConfig::default()).unwrap();
        assert_eq!(v.clock(0), "00:00");
        let last = v.clock(ds.num_slots - 1);
        assert!(last.as_str() > "22:00" && last.as_str() < "24:00", "{last}");
    }
}
