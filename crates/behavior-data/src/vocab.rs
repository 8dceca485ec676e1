//! Vocabularies: names ↔ ids with reserved PAD / MASK / UNK ids, and the dense class ids models
//! predict over.
//!
//! Every vocabulary (behaviours, locations, users, intents) starts with three reserved tokens:
//! [`PAD`] = 0, [`MASK`] = 1, [`UNK`] = 2. Real entries get ids `3..len()`. Models predict over
//! *classes* `0..K` with `K = num_classes() = len() - 3`: class `c` is token `c + 3`
//! ([`class_to_token`] / [`token_to_class`]).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Padding token id (left padding of history windows).
pub const PAD: u32 = 0;
/// Mask token id (masked-event pretraining).
pub const MASK: u32 = 1;
/// Unknown token id (names not in the vocabulary).
pub const UNK: u32 = 2;
/// Number of reserved ids at the start of every vocabulary.
pub const NUM_RESERVED: u32 = 3;

/// Token id → dense class id, `None` for the reserved tokens.
#[inline]
pub fn token_to_class(token: u32) -> Option<u32> {
    token.checked_sub(NUM_RESERVED)
}

/// Dense class id → token id.
#[inline]
pub fn class_to_token(class: u32) -> u32 {
    class + NUM_RESERVED
}

/// A data value that is a reserved token name ([`Vocab::insert_checked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedName(pub String);

impl std::fmt::Display for ReservedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is a reserved token name (<pad>, <mask>, <unk>) and cannot be a value",
            self.0
        )
    }
}

impl std::error::Error for ReservedName {}

/// Names ↔ ids, with an optional category per entry (behaviours carry one, for verbalisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    names: Vec<String>,
    categories: Vec<Option<String>>,
    index: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
struct VocabRepr {
    names: Vec<String>,
    categories: Vec<Option<String>>,
}

impl From<VocabRepr> for Vocab {
    fn from(r: VocabRepr) -> Self {
        let mut v = Vocab::new();
        for (i, name) in r.names.iter().enumerate().skip(NUM_RESERVED as usize) {
            let cat = r.categories.get(i).cloned().flatten();
            v.insert(name, cat.as_deref());
        }
        v
    }
}

impl From<Vocab> for VocabRepr {
    fn from(v: Vocab) -> Self {
        VocabRepr {
            names: v.names,
            categories: v.categories,
        }
    }
}

impl Default for Vocab {
    fn default() -> Self {
        Self::new()
    }
}

impl Vocab {
    /// An empty vocabulary holding only the reserved tokens `<pad>`, `<mask>`, `<unk>`.
    pub fn new() -> Self {
        let names: Vec<String> = ["<pad>", "<mask>", "<unk>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Vocab {
            categories: vec![None; names.len()],
            names,
            index,
        }
    }

    /// Builds a vocabulary from `(name, category)` pairs in order; duplicates keep the first id.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        let mut v = Vocab::new();
        for (n, c) in entries {
            v.insert(n, c);
        }
        v
    }

    /// The id of `name`, inserting it if new. A category given here fills a missing one.
    pub fn insert(&mut self, name: &str, category: Option<&str>) -> u32 {
        if let Some(&id) = self.index.get(name) {
            if let (Some(c), None) = (category, &self.categories[id as usize]) {
                self.categories[id as usize] = Some(c.to_owned());
            }
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.categories.push(category.map(str::to_owned));
        self.index.insert(name.to_owned(), id);
        id
    }

    /// True for the reserved token names `<pad>`, `<mask>` and `<unk>`.
    pub fn is_reserved_name(name: &str) -> bool {
        matches!(name, "<pad>" | "<mask>" | "<unk>")
    }

    /// Like [`Vocab::insert`], but a reserved token name (`<pad>`, `<mask>`, `<unk>`) is an
    /// error instead of returning the reserved id: data must never alias PAD, MASK or UNK. Every
    /// loader builds its vocabularies through this one check.
    pub fn insert_checked(
        &mut self,
        name: &str,
        category: Option<&str>,
    ) -> Result<u32, ReservedName> {
        if name.starts_with('<') && Self::is_reserved_name(name) {
            return Err(ReservedName(name.to_owned()));
        }
        Ok(self.insert(name, category))
    }

    /// The id of a real (non-reserved) entry `name`, if present.
    pub fn get_entry(&self, name: &str) -> Option<u32> {
        self.get(name).filter(|&id| id >= NUM_RESERVED)
    }

    /// The id of `name`, if present.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The id of `name`, or [`UNK`].
    pub fn get_or_unk(&self, name: &str) -> u32 {
        self.get(name).unwrap_or(UNK)
    }

    /// The name of token `id` (`"<unk>"` for ids out of range).
    pub fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("<unk>")
    }

    /// The category of token `id`, if it has one.
    pub fn category(&self, id: u32) -> Option<&str> {
        self.categories.get(id as usize).and_then(|c| c.as_deref())
    }

    /// Sets the category of an existing token.
    pub fn set_category(&mut self, id: u32, category: Option<&str>) {
        if let Some(c) = self.categories.get_mut(id as usize) {
            *c = category.map(str::to_owned);
        }
    }

    /// Number of tokens, reserved ones included.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the vocabulary holds only the reserved tokens.
    pub fn is_empty(&self) -> bool {
        self.names.len() == NUM_RESERVED as usize
    }

    /// Number of real entries = number of classes `K` models predict over.
    pub fn num_classes(&self) -> usize {
        self.names.len() - NUM_RESERVED as usize
    }

    /// Name of class `c` (token `c + 3`).
    pub fn class_name(&self, class: u32) -> &str {
        self.name(class_to_token(class))
    }

    /// Category of class `c`.
    pub fn class_category(&self, class: u32) -> Option<&str> {
        self.category(class_to_token(class))
    }

    /// Human-readable text for token `id`: `"name (category)"`, or the name alone.
    pub fn verbalise(&self, id: u32) -> String {
        match self.category(id) {
            Some(c) if !c.is_empty() => format!("{} ({c})", self.name(id)),
            _ => self.name(id).to_owned(),
        }
    }

    /// Names of all classes in class order (reserved tokens excluded).
    pub fn class_names(&self) -> &[String] {
        &self.names[NUM_RESERVED as usize..]
    }

    /// Distinct categories in first-seen order.
    pub fn category_names(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for c in self.categories.iter().flatten() {
            if seen.insert(c.as_str()) {
                out.push(c.clone());
            }
        }
        out
    }
}

/// The normal form two behaviour names are compared in by [`align_by_name`]: lower case, common
/// Latin accents folded (`é` → `e`, `ü` → `u`, `ç` → `c`, `ñ` → `n`, …), `&` read as `and`, every
/// other non-alphanumeric character a space, runs of spaces collapsed (`"Food & Drink Shop"` →
/// `"food and drink shop"`, `"Café"` → `"cafe"`).
pub fn normalise_name(name: &str) -> String {
    let fold = |c: char| -> char {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            other => other,
        }
    };
    let mut out = String::with_capacity(name.len());
    for ch in name.to_lowercase().replace('&', " and ").chars().map(fold) {
        out.push(if ch.is_alphanumeric() { ch } else { ' ' });
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a target vocabulary's classes map onto a source vocabulary's (for transfer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alignment {
    /// Per target class, the source class with the same normalised name, if any.
    pub map: Vec<Option<usize>>,
    /// Share of the target's classes that found a source class.
    pub class_coverage: f64,
}

/// Aligns `target`'s classes with `source`'s by normalised name ([`normalise_name`]): exact
/// matches only (no fuzzy or semantic matching), so the rule is auditable. Two source classes
/// with the same normal form: the first (lower id) wins.
pub fn align_by_name(source: &Vocab, target: &Vocab) -> Alignment {
    let mut index: HashMap<String, usize> = HashMap::new();
    for c in (0..source.num_classes()).rev() {
        index.insert(normalise_name(source.class_name(c as u32)), c);
    }
    let map: Vec<Option<usize>> = (0..target.num_classes())
        .map(|c| {
            index
                .get(&normalise_name(target.class_name(c as u32)))
                .copied()
        })
        .collect();
    let hit = map.iter().filter(|m| m.is_some()).count();
    Alignment {
        class_coverage: hit as f64 / map.len().max(1) as f64,
        map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_align_after_normalisation_and_the_first_duplicate_wins() {
        let mut src = Vocab::new();
        for n in ["Coffee Shop", "Food & Drink Shop", "Bar", "bar", "Café"] {
            src.insert(n, None);
        }
        let mut dst = Vocab::new();
        for n in [
            "BAR",
            "Food and Drink  Shop",
            "Museum",
            "coffee-shop",
            "Cafe",
        ] {
            dst.insert(n, None);
        }
        let a = align_by_name(&src, &dst);
        assert_eq!(a.map, vec![Some(2), Some(1), None, Some(0), Some(4)]);
        assert!((a.class_coverage - 0.8).abs() < 1e-12);
        assert_eq!(normalise_name("Café Noël"), "cafe noel");
        assert_eq!(
            normalise_name("  Food & Drink Shop "),
            "food and drink shop"
        );
    }

    #[test]
    fn reserved_ids_and_classes() {
        let mut v = Vocab::new();
        assert_eq!(v.get("<pad>"), Some(PAD));
        assert_eq!(v.get("<mask>"), Some(MASK));
        assert_eq!(v.get("<unk>"), Some(UNK));
        let a = v.insert("Book flight", Some("Travel"));
        let b = v.insert("Chat", None);
        assert_eq!((a, b), (3, 4));
        assert_eq!(v.insert("Book flight", None), a);
        assert_eq!(v.num_classes(), 2);
        assert_eq!(token_to_class(a), Some(0));
        assert_eq!(token_to_class(PAD), None);
        assert_eq!(class_to_token(1), b);
        assert_eq!(v.verbalise(a), "Book flight (Travel)");
        assert_eq!(v.verbalise(b), "Chat");
        assert_eq!(v.get_or_unk("nope"), UNK);
        let json = serde_json::to_string(&v).unwrap();
        let back: Vocab = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.get("Chat"), Some(b));
    }

    #[test]
    fn reserved_names_are_rejected_by_insert_checked() {
        let mut v = Vocab::new();
        for n in ["<pad>", "<mask>", "<unk>"] {
            assert_eq!(v.insert_checked(n, None), Err(ReservedName(n.into())));
            assert_eq!(v.get_entry(n), None);
        }
        assert_eq!(v.insert_checked("<unknown>", None), Ok(3));
        assert_eq!(v.get_entry("<unknown>"), Some(3));
        assert_eq!(v.len(), 4);
    }
}
