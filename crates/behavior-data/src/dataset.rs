//! A [`Dataset`]: an [`EventLog`] with its vocabularies, name and time-slot count.

use crate::event::EventLog;
use crate::vocab::Vocab;
use serde::{Deserialize, Serialize};

/// A categorical context column beyond weekday / slot / location (Frappe's weather, cost, …),
/// aligned with the event log's order.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextColumn {
    /// Column name, as in the source file.
    pub name: String,
    /// Value vocabulary (reserved ids included).
    pub vocab: Vocab,
    /// One token id per event.
    pub values: Vec<u32>,
}

/// How bad rows are handled by the loaders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strictness {
    /// The first bad row is an error (`file:line:column: reason`). The default.
    #[default]
    Strict,
    /// Bad rows are skipped, counted and reported in [`LoadReport`].
    Lenient,
}

/// Options shared by every loader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadOptions {
    /// Strict (default) or lenient handling of bad rows.
    pub strictness: Strictness,
    /// Time slots per day (default 24: one per hour).
    pub num_slots: u16,
    /// How many skipped-row messages a lenient load keeps (all are counted).
    pub max_reported: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strictness: Strictness::Strict,
            num_slots: crate::event::DEFAULT_SLOTS,
            max_reported: 20,
        }
    }
}

impl LoadOptions {
    /// Lenient options with the defaults otherwise.
    pub fn lenient() -> Self {
        LoadOptions {
            strictness: Strictness::Lenient,
            ..Self::default()
        }
    }

    /// Checks ranges.
    pub fn check(&self) -> crate::Result<()> {
        if self.num_slots == 0 || self.num_slots > 1440 {
            return Err(crate::Error::config("num_slots", "must be in 1..=1440"));
        }
        Ok(())
    }
}

/// What a loader read: rows kept and rows skipped (lenient mode), with the first messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Data rows read (header excluded), over all files.
    pub rows_read: u64,
    /// Rows skipped as malformed (lenient mode only; strict mode fails instead).
    pub rows_skipped: u64,
    /// Rows intentionally left out by the loader's documented rules (for example LSApp events
    /// that are not `Opened`, or Tsinghua traffic records merged into one usage event).
    pub rows_filtered: u64,
    /// The first skipped-row messages, `file:line:column: reason`.
    pub messages: Vec<String>,
    /// Warnings, all kept (`file:line:column: warning: …`): a table without data rows, a last
    /// line without a line break (the file may have been cut inside its last field).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How events got their intent labels, from the loaders that derive intents from another
    /// field when asked to (LLMob Tokyo, Foursquare NYC, RecBole); `None` otherwise (the
    /// simulator and the generic loader carry intents without a report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intents: Option<IntentReport>,
}

/// Where a loader's intent labels came from ([`LoadReport::intents`]). Every event of a data set
/// with intents has one: an event whose intent cannot be derived is a bad row (an error in
/// strict mode, skipped and counted in lenient mode), never an event without a label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntentReport {
    /// The rule, in words (`"venue category → top-level category"`, …).
    pub rule: String,
    /// The sources in the order they are consulted (the first that knows a key labels it).
    pub sources: Vec<IntentSource>,
}

/// What one source of intent labels labelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntentSource {
    /// The source: a file and field, or a table committed in this crate.
    pub source: String,
    /// Distinct behaviour classes whose events it labelled.
    pub classes: u64,
    /// Events it labelled.
    pub events: u64,
}

impl IntentReport {
    /// The source named `source`, if any.
    pub fn source(&self, source: &str) -> Option<&IntentSource> {
        self.sources.iter().find(|s| s.source == source)
    }

    /// Events labelled, over all sources.
    pub fn events(&self) -> u64 {
        self.sources.iter().map(|s| s.events).sum()
    }
}

/// An event log and everything needed to interpret it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Short name (`sim`, `foursquare-nyc`, `frappe`, …).
    pub name: String,
    /// The events, sorted by `(user, ts)`.
    pub log: EventLog,
    /// Behaviour vocabulary: the label space (`num_classes()` classes).
    pub behaviors: Vocab,
    /// Location vocabulary.
    pub locations: Vocab,
    /// User vocabulary (original user ids as names).
    pub users: Vocab,
    /// Intent vocabulary, when events carry intents.
    pub intents: Option<Vocab>,
    /// Time slots per day.
    pub num_slots: u16,
    /// True when events have a meaningful order (false for Frappe's aggregated context rows).
    pub ordered: bool,
    /// Extra context columns aligned with the log (Frappe).
    pub context: Vec<ContextColumn>,
    /// Per-event weights (Frappe's `cnt`), aligned with the log.
    pub weights: Option<Vec<u32>>,
    /// What the loader read and skipped.
    pub report: LoadReport,
}

impl Dataset {
    /// Number of behaviour classes `K`.
    pub fn num_classes(&self) -> usize {
        self.behaviors.num_classes()
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.log.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The same events with the **intent** as the label: the behaviour column and vocabulary are
    /// replaced by the intents (the intents stay as they are), so anything that predicts "the
    /// behaviour" — count baselines, SASRec, BehaveGPT, the split's statistics — predicts the
    /// intent, from intent histories. Event indices are unchanged, so a chronological split of
    /// this view holds the same events as one of `self`. A data set without intents is an
    /// error naming it.
    pub fn intent_view(&self) -> crate::Result<Dataset> {
        let (Some(vocab), Some(intents)) = (self.intents.as_ref(), self.log.intents()) else {
            return Err(crate::Error::Invalid(format!(
                "{}: no intent labels (load it with registry::load_intents)",
                self.name
            )));
        };
        Ok(Dataset {
            name: format!("{} (intents)", self.name),
            log: self.log.clone().with_behaviors(intents.to_vec())?,
            behaviors: vocab.clone(),
            ..self.clone()
        })
    }

    /// A one-line description: name, users, events, classes (and skipped rows and warnings).
    pub fn summary(&self) -> String {
        format!(
            "{}: {} users, {} events, {} behaviour classes, {} locations{}{}",
            self.name,
            self.log.num_users(),
            self.log.len(),
            self.num_classes(),
            self.locations.num_classes(),
            if self.report.rows_skipped > 0 {
                format!(", {} bad rows skipped", self.report.rows_skipped)
            } else {
                String::new()
            },
            match self.report.warnings.len() {
                0 => String::new(),
                n => format!(", {n} load warnings"),
            }
        )
    }
}
