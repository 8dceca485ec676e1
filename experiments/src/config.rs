//! Loading an experiment's config: preset defaults, then a TOML file, then `--set` overrides.
//!
//! Every experiment config is a serde struct with `#[serde(deny_unknown_fields)]`, so a typo in a
//! file or an override is an error naming the key, never silently ignored.

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// An experiment config: serde, a default per preset, and a validity check.
pub trait ExperimentConfig: Serialize + DeserializeOwned {
    /// Checks ranges and consistency; the message names the offending field.
    fn check(&self) -> Result<()>;
}

/// Resolves `base` (the preset's values) with the TOML file at `file` and the `key=value`
/// overrides, in that order, then validates the result.
pub fn resolve<C: ExperimentConfig>(
    base: C,
    file: Option<&Path>,
    overrides: &[String],
) -> Result<C> {
    let mut value = toml::Table::try_from(&base).context("serialising the preset config")?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("parsing config {}", path.display()))?;
        merge(&mut value, table);
    }
    for o in overrides {
        let Some((key, raw)) = o.split_once('=') else {
            bail!("--set {o:?}: expected KEY=VALUE");
        };
        let key = key.trim();
        let parsed: toml::Value = match format!("v = {raw}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").expect("just inserted"),
            // Bare words are strings: `--set dataset=foursquare`.
            Err(_) => toml::Value::String(raw.trim().to_owned()),
        };
        let mut nested = toml::Table::new();
        let mut cursor = &mut nested;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cursor.insert((*part).to_owned(), parsed.clone());
            } else {
                cursor = cursor
                    .entry((*part).to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .expect("just inserted a table");
            }
        }
        merge(&mut value, nested);
    }
    let source = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "preset".into());
    let cfg: C = toml::Value::Table(value)
        .try_into()
        .with_context(|| format!("config from {source} and --set overrides"))?;
    cfg.check()
        .with_context(|| format!("invalid config from {source}"))?;
    Ok(cfg)
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        lr: f64,
    }
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        epochs: u32,
        name: String,
        optim: Inner,
    }
    impl ExperimentConfig for Cfg {
        fn check(&self) -> Result<()> {
            if self.epochs == 0 {
                bail!("epochs must be at least 1");
            }
            Ok(())
        }
    }
    fn base() -> Cfg {
        Cfg {
            epochs: 2,
            name: "a".into(),
            optim: Inner { lr: 0.1 },
        }
    }

    #[test]
    fn file_then_overrides() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "epochs = 5\n[optim]\nlr = 0.5\n")?;
        let c = resolve(base(), Some(&f), &["optim.lr=1e-3".into(), "name=b".into()])?;
        assert_eq!(
            c,
            Cfg {
                epochs: 5,
                name: "b".into(),
                optim: Inner { lr: 1e-3 }
            }
        );
        Ok(())
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = resolve(base(), None, &["epoch=3".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("epoch"), "{err:#}");
    }

    #[test]
    fn check_runs() {
        let err = resolve(base(), None, &["epochs=0".into()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("epochs must be at least 1"),
            "{err:#}"
        );
    }
}
