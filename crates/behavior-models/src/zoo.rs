//! Building a sequence model from a config that an experiment nests in its own: [`ModelSpec`]
//! names the architecture and carries that model's own serde config; the fields that depend on
//! the data (number of behaviours, locations, slots, the window length, the reserved-id offset)
//! are filled from a [`DataShape`] when the model is built, so a config file never has to repeat
//! them (their values in the file are ignored and documented as such).

use crate::behavegpt::{BehaveGpt, BehaveGptConfig};
use crate::gru4rec::{Gru4Rec, Gru4RecConfig};
use crate::layers::SequenceModel;
use crate::sasrec::{SasRec, SasRecConfig};
use crate::Result;
use serde::{Deserialize, Serialize};
use tch::nn;

/// What the data fixes about a model: vocabulary sizes and the window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataShape {
    /// Behaviour classes `K`.
    pub n_behaviours: i64,
    /// Location tokens (including the reserved ids).
    pub n_locations: i64,
    /// Time slots per day.
    pub n_slots: i64,
    /// Window length `L`.
    pub max_len: i64,
    /// Offset of the first real token id (the number of reserved ids).
    pub input_offset: i64,
}

/// A neural sequence model and its config (data-dependent fields are overwritten by
/// [`ModelSpec::build`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// BehaveGPT (arXiv 2505.17631).
    Behavegpt(BehaveGptConfig),
    /// SASRec (Kang & McAuley 2018).
    Sasrec(SasRecConfig),
    /// GRU4Rec (Hidasi et al. 2016).
    Gru4rec(Gru4RecConfig),
}

impl ModelSpec {
    /// The config with its data-dependent fields set from `shape`.
    pub fn fitted(&self, shape: &DataShape) -> ModelSpec {
        match self.clone() {
            Self::Behavegpt(mut c) => {
                c.n_behaviours = shape.n_behaviours;
                c.n_locations = shape.n_locations;
                c.n_slots = shape.n_slots;
                c.max_len = shape.max_len;
                c.input_offset = shape.input_offset;
                Self::Behavegpt(c)
            }
            Self::Sasrec(mut c) => {
                c.n_behaviours = shape.n_behaviours;
                c.max_len = shape.max_len;
                c.input_offset = shape.input_offset;
                Self::Sasrec(c)
            }
            Self::Gru4rec(mut c) => {
                c.n_behaviours = shape.n_behaviours;
                c.input_offset = shape.input_offset;
                Self::Gru4rec(c)
            }
        }
    }

    /// Checks the config as it would be built for `shape` (the error names the field).
    pub fn check(&self, shape: &DataShape) -> Result<()> {
        match self.fitted(shape) {
            Self::Behavegpt(c) => c.check(),
            Self::Sasrec(c) => c.check(),
            Self::Gru4rec(c) => c.check(),
        }
    }

    /// Creates the model's variables under `p` (in a sub-path named after the kind: `behavegpt`,
    /// `sasrec`, `gru4rec`) for data of `shape`.
    pub fn build(&self, p: &nn::Path, shape: &DataShape) -> Result<Box<dyn SequenceModel>> {
        Ok(match self.fitted(shape) {
            Self::Behavegpt(c) => Box::new(BehaveGpt::new(&(p / "behavegpt"), &c)?),
            Self::Sasrec(c) => Box::new(SasRec::new(&(p / "sasrec"), &c)?),
            Self::Gru4rec(c) => Box::new(Gru4Rec::new(&(p / "gru4rec"), &c)?),
        })
    }
}
