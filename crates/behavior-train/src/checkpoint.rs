//! Checkpoints: one folder per saved step, `step-00000123/` holding
//! `model.safetensors` (the trained variables: all of a model's, or only its LoRA matrices when
//! only those train), `optim.safetensors` (AdamW moments and loss state) and
//! `state.json` ([`TrainState`]: step, epoch and data-order cursor, seed, early-stopping state,
//! curves). A folder is written under a temporary name and renamed into place, and the
//! `latest` / `best` pointers are replaced with `write_atomic`, so a crash at any point leaves the
//! previous checkpoint readable.

use crate::error::io_err as io;
use crate::{Error, Result};
use behavior_data::io::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

/// One point of the training curve (at a logging step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimizer step (1-based).
    pub step: u64,
    /// Mean training loss over the steps since the previous point.
    pub loss: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Gradient norm before clipping at the last step.
    pub grad_norm: f64,
}

/// One validation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Optimizer step.
    pub step: u64,
    /// Named metrics.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// Everything besides tensors that a resumed run needs to continue bit-identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Micro-batches of the current epoch already consumed.
    pub cursor: u64,
    /// The run's seed: data order of epoch `e` and dropout of step `s` derive from it.
    pub seed: u64,
    /// Number of training sequences (a resumed run must see the same data).
    pub n_train: u64,
    /// Best value of the early-stopping metric so far.
    pub best_value: Option<f64>,
    /// Step of that best value.
    pub best_step: Option<u64>,
    /// Evaluations since the best one.
    pub evals_since_best: u64,
    /// Training curve so far.
    pub curve: Vec<CurvePoint>,
    /// Validation results so far.
    pub evals: Vec<EvalPoint>,
    /// Data-parallel ranks the run trains on (`cursor` counts global micro-batches of
    /// `batch_size × world_size` items); 1 in checkpoints written before data parallelism.
    #[serde(default = "one")]
    pub world_size: u64,
}

fn one() -> u64 {
    1
}

/// The name of the folder for `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Writes a checkpoint for `state.step` under `dir` and points `latest` at it; when `is_best`,
/// points `best` at it too. Keeps the newest `keep_last` step folders and the best one.
pub fn save(
    dir: &Path,
    params: &[(String, Tensor)],
    optim_state: &[(String, Tensor)],
    state: &TrainState,
    is_best: bool,
    keep_last: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = step_dir_name(state.step);
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    Tensor::write_safetensors(params, tmp.join("model.safetensors"))?;
    Tensor::write_safetensors(optim_state, tmp.join("optim.safetensors"))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Checkpoint(e.to_string()))?;
    write_atomic(&tmp.join("state.json"), &json)?;
    let final_dir = dir.join(&name);
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    write_atomic(&dir.join("latest"), name.as_bytes())?;
    if is_best {
        write_atomic(&dir.join("best"), name.as_bytes())?;
    }
    prune(dir, keep_last)?;
    Ok(final_dir)
}

fn pointer(dir: &Path, which: &str) -> Result<Option<String>> {
    let p = dir.join(which);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p)(e)),
    }
}

fn prune(dir: &Path, keep_last: usize) -> Result<()> {
    let best = pointer(dir, "best")?;
    let latest = pointer(dir, "latest")?;
    let mut steps: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    steps.sort();
    let keep = keep_last.max(1);
    let n = steps.len();
    for (i, s) in steps.iter().enumerate() {
        let recent = i + keep >= n;
        if recent || Some(s) == best.as_ref() || Some(s) == latest.as_ref() {
            continue;
        }
        let p = dir.join(s);
        std::fs::remove_dir_all(&p).map_err(io(&p))?;
    }
    Ok(())
}

/// The folder `latest` (or `best`) points at, if any.
pub fn find(dir: &Path, which: &str) -> Result<Option<PathBuf>> {
    Ok(pointer(dir, which)?.map(|n| dir.join(n)))
}

/// A loaded checkpoint: the weights are already copied into the var store.
#[derive(Debug)]
pub struct Loaded {
    /// Optimizer and loss state.
    pub optim_state: Vec<(String, Tensor)>,
    /// Non-tensor state.
    pub state: TrainState,
}

/// Copies the variables saved in `ckpt/model.safetensors` into the same-named variables of `vs`
/// (a checkpoint may hold a subset, e.g. LoRA matrices only). A saved name the store lacks, or a
/// shape mismatch, is an error naming both.
pub fn load_weights(ckpt: &Path, vs: &mut VarStore) -> Result<()> {
    let model = ckpt.join("model.safetensors");
    let saved = Tensor::read_safetensors(&model)
        .map_err(|e| Error::Checkpoint(format!("{}: {e}", model.display())))?;
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, src) in &saved {
            let dst = vars.get(name).ok_or_else(|| {
                Error::Checkpoint(format!(
                    "{}: holds {name}, which the model does not have",
                    model.display()
                ))
            })?;
            if dst.size() != src.size() {
                return Err(Error::Checkpoint(format!(
                    "{}: {name} has shape {:?}, the model's is {:?}",
                    model.display(),
                    src.size(),
                    dst.size()
                )));
            }
            let mut dst = dst.shallow_clone();
            dst.f_copy_(src)?;
        }
        Ok(())
    })
}

/// Loads the checkpoint folder `ckpt` into `vs` and returns the rest.
pub fn load(ckpt: &Path, vs: &mut VarStore) -> Result<Loaded> {
    load_weights(ckpt, vs)?;
    let optim = ckpt.join("optim.safetensors");
    let device = vs.device();
    let optim_state = Tensor::read_safetensors(&optim)
        .map_err(|e| Error::Checkpoint(format!("{}: {e}", optim.display())))?
        .into_iter()
        .map(|(n, t)| (n, t.to_device(device)))
        .collect();
    let sp = ckpt.join("state.json");
    let text = std::fs::read(&sp).map_err(io(&sp))?;
    let state: TrainState = serde_json::from_slice(&text)
        .map_err(|e| Error::Checkpoint(format!("{}: {e}", sp.display())))?;
    Ok(Loaded { optim_state, state })
}
