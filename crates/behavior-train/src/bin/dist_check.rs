//! `behavior-dist-check`: a data-parallel training check and benchmark over Open MPI.
//!
//! Every rank builds the same synthetic next-behaviour task and the same BehaveGPT (seeded), then
//! trains it with [`behavior_train::fit`] on `MpiComm` (or alone with `--single`). After every
//! step each rank compares its weights with rank 0's (broadcast) and fails on any difference;
//! rank 0 writes the final weights (`--out`) and a JSON line of throughput figures.
//!
//! ```text
//! mpirun -np 2 target/release/behavior-dist-check --steps 20 --out /tmp/w2.safetensors
//! target/release/behavior-dist-check --single --batch 32 --steps 20 --out /tmp/w1.safetensors
//! # GPUs (feature `nccl`), one per rank:
//! mpirun -np 2 scripts/mpi-gpu.sh target/release/behavior-dist-check --backend nccl --device cuda
//! ```

use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig};
use behavior_models::SeqBatch;
use behavior_train::dist::{Communicator, MpiComm, SingleProcess};
use behavior_train::{fit, EarlyStop, FitOptions, Loss, LossConfig, Mode, TrainConfig};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Data-parallel training check and benchmark (run under `mpirun -np N`, or with `--single`).
#[derive(Parser, Debug)]
#[command(name = "behavior-dist-check", version)]
struct Args {
    /// Train alone (no MPI initialisation): the one-process reference.
    #[arg(long)]
    single: bool,
    /// Optimizer steps.
    #[arg(long, default_value_t = 12)]
    steps: u64,
    /// Sequences per rank per micro-batch (the global batch is this × ranks).
    #[arg(long, default_value_t = 16)]
    batch: i64,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: u64,
    /// Training sequences in the synthetic task.
    #[arg(long, default_value_t = 256)]
    n: i64,
    /// Sequence length.
    #[arg(long, default_value_t = 8)]
    len: i64,
    /// Model size: `smoke` (d = 32), `tiny` (d = 128), `small` (d = 256) … (BehaveGPT presets).
    #[arg(long, default_value = "smoke")]
    model: String,
    /// Behaviour classes of the synthetic task.
    #[arg(long, default_value_t = 6)]
    classes: i64,
    /// Class loss: `ce` or `group-dro` (η = 0.1, cap κ = 0.5).
    #[arg(long, default_value = "ce")]
    loss: String,
    /// Dropout of the model (0 makes one- and many-rank runs comparable step for step).
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Compare every rank's weights with rank 0's after every step (a broadcast of all weights).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    check_every_step: bool,
    /// Run folder for checkpoints (written by rank 0 every step) and `metrics.jsonl`.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Continue from the run folder's latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Make rank `--die-rank` exit abruptly (no MPI_Finalize) after this step: a crash.
    #[arg(long)]
    die_at_step: Option<u64>,
    /// Which rank dies with `--die-at-step`.
    #[arg(long, default_value_t = 1)]
    die_rank: usize,
    /// Early stopping on a metric that differs between ranks (rank 0 peaks at step 4, the other
    /// ranks improve at every step) with patience 3 and restore-best: every rank must follow rank
    /// 0's decisions and end with rank 0's weights (checked after training).
    #[arg(long)]
    skewed_early_stop: bool,
    /// Final weights (rank 0, safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Intra-op threads per rank.
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// Collective backend: `mpi` (host buffers) or `nccl` (CUDA tensors; feature `nccl`).
    #[arg(long, default_value = "mpi")]
    backend: String,
    /// Where the model trains: `cpu` or `cuda` (this rank's current CUDA device).
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn task(n: i64, l: i64, k: i64) -> SeqBatch {
    tch::manual_seed(1);
    let o = (Kind::Int64, Device::Cpu);
    let behaviour = Tensor::randint(k, [n, l], o);
    let loc = Tensor::randint(3, [n, l], o);
    let target = (&behaviour + &loc).remainder(k);
    SeqBatch {
        weekday: Tensor::randint(7, [n, l], o),
        slot: Tensor::randint(4, [n, l], o),
        loc,
        behaviour,
        target,
    }
}

/// Largest absolute difference between this rank's flattened weights and rank 0's (broadcast).
fn max_diff_from_rank0(
    comm: &dyn Communicator,
    weights: &Tensor,
) -> Result<f64, behavior_train::Error> {
    let mine = Vec::<f32>::try_from(&weights.to_device(Device::Cpu))?;
    let mut root = mine.clone();
    comm.broadcast(&mut root, 0)?;
    Ok(mine
        .iter()
        .zip(&root)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max))
}

/// Rank 0's value of `x`, on every rank.
fn rank0(comm: &dyn Communicator, x: f32) -> Result<f32, behavior_train::Error> {
    let mut b = [x];
    comm.broadcast(&mut b, 0)?;
    Ok(b[0])
}

fn flat(vs: &VarStore) -> Result<Tensor, tch::TchError> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let parts: Vec<Tensor> = vars.iter().map(|(_, t)| t.detach().reshape([-1])).collect();
    Tensor::f_cat(&parts, 0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tch::set_num_threads(args.threads);
    let device = match args.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => return Err(format!("--device: {other:?} is not cpu or cuda").into()),
    };
    let comm: Arc<dyn Communicator> = match (args.single, args.backend.as_str()) {
        (true, _) => Arc::new(SingleProcess),
        (false, "mpi") => Arc::new(MpiComm::init()?),
        #[cfg(feature = "nccl")]
        (false, "nccl") => Arc::new(behavior_train::dist::NcclComm::init(MpiComm::init()?)?),
        (false, other) => {
            return Err(format!(
                "--backend: {other:?} is not available (mpi; nccl with the nccl feature)"
            )
            .into())
        }
    };
    let (rank, world) = (comm.rank(), comm.world_size());
    let data = task(args.n, args.len, args.classes).to_device(device);
    tch::manual_seed(0);
    let mut vs = VarStore::new(device);
    let cfg = BehaveGptConfig {
        dropout: args.dropout,
        max_len: args.len,
        ..BehaveGptConfig::preset(&args.model, args.classes, 3, 4)?
    };
    let model = BehaveGpt::new(&vs.root(), &cfg)?;
    let loss_cfg = match args.loss.as_str() {
        "ce" => LossConfig::Ce,
        "group-dro" => LossConfig::GroupDro {
            eta: 0.1,
            kappa: Some(0.5),
        },
        other => return Err(format!("--loss: unknown loss {other:?} (ce, group-dro)").into()),
    };
    let counts: Vec<f64> = (0..args.classes).map(|c| 10.0 + 5.0 * c as f64).collect();
    let mut objective = Loss::new(&loss_cfg, &counts, device)?;
    let tcfg = TrainConfig {
        max_steps: args.steps,
        batch_size: args.batch,
        grad_accum: args.grad_accum,
        lr: 3e-3,
        warmup_steps: 2,
        log_every: 1,
        eval_every: if args.check_every_step || args.die_at_step.is_some() || args.skewed_early_stop
        {
            1
        } else {
            0
        },
        restore_best: args.skewed_early_stop,
        early_stop: args.skewed_early_stop.then(|| EarlyStop {
            metric: "skewed".into(),
            mode: Mode::Max,
            patience: 3,
        }),
        checkpoint_every: if args.dir.is_some() { 1 } else { 0 },
        keep_last: 2,
        seed: 5,
        bf16: false,
        ..Default::default()
    };
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let weights_of = || -> Result<Tensor, tch::TchError> {
        let parts: Vec<Tensor> = names
            .iter()
            .map(|n| vars[*n].detach().reshape([-1]))
            .collect();
        Tensor::f_cat(&parts, 0)
    };
    let mut max_diff = 0f64;
    let mut checks = 0u64;
    let mut step = 0u64;
    let comm_eval = comm.clone();
    let mut on_eval = |_: &BehaveGpt| -> behavior_train::Result<BTreeMap<String, f64>> {
        step += 1;
        if let Some(k) = args.die_at_step {
            if step == k && rank == args.die_rank {
                eprintln!("rank {rank}: dying after step {k} (--die-at-step)");
                std::process::exit(3);
            }
        }
        let mut m = BTreeMap::new();
        if args.skewed_early_stop {
            let v = if rank == 0 {
                -(step as f64 - 4.0).abs()
            } else {
                step as f64
            };
            m.insert("skewed".into(), v);
        }
        if args.check_every_step && world > 1 {
            let d = max_diff_from_rank0(&*comm_eval, &weights_of()?)?;
            checks += 1;
            max_diff = max_diff.max(d);
            if d != 0.0 {
                return Err(behavior_train::Error::Config(format!(
                    "rank {rank}: weights differ from rank 0's by {d} after a step"
                )));
            }
            m.insert("weight_diff".into(), d);
        }
        Ok(m)
    };
    let opts = FitOptions {
        dir: args.dir.clone(),
        resume: args.resume,
        stop_after: None,
        progress: false,
        label: format!("rank {rank}/{world}"),
        comm: Some(comm.clone()),
    };
    let s = fit(
        &tcfg,
        &model,
        &mut vs,
        &data,
        &mut objective,
        &mut on_eval,
        &opts,
    )?;
    let step_s: f64 = s.step_seconds.iter().sum();
    let samples = (s.step_seconds.len() as u64 * args.batch as u64 * args.grad_accum) as f64;
    // every rank's throughput share, summed: global samples per second
    let mut figures = [
        samples as f32 / step_s.max(1e-9) as f32,
        s.comm_seconds as f32,
        step_s as f32,
    ];
    comm.all_reduce_sum(&mut figures)?;
    let w = world as f32;
    // After training (restore-best included) every rank must hold rank 0's weights and agree on
    // the step count and the best step.
    let final_diff = max_diff_from_rank0(&*comm, &weights_of()?)?;
    let best_step = s.best.map(|(_, st)| st as f32).unwrap_or(-1.0);
    let mut agree = [
        final_diff as f32,
        (s.steps as f32 - rank0(&*comm, s.steps as f32)?).abs(),
        (best_step - rank0(&*comm, best_step)?).abs(),
    ];
    comm.all_reduce_sum(&mut agree)?;
    if rank == 0 {
        if let Some(out) = &args.out {
            let named: Vec<(String, Tensor)> = names
                .iter()
                .map(|n| ((*n).clone(), vars[*n].detach().to_device(Device::Cpu)))
                .collect();
            Tensor::write_safetensors(&named, out)?;
        }
        let line = serde_json::json!({
            "world_size": world,
            "backend": if args.single { "single" } else { args.backend.as_str() },
            "device": args.device,
            "steps": s.steps,
            "steps_this_call": s.step_seconds.len(),
            "batch_per_rank": args.batch,
            "grad_accum": args.grad_accum,
            "model": args.model,
            "parameters": flat(&vs)?.numel(),
            "samples_per_s": figures[0],
            "allreduce_share": figures[1] / figures[2].max(1e-9),
            "step_seconds_mean": figures[2] / w / s.step_seconds.len().max(1) as f32,
            "weight_checks": checks,
            "max_weight_diff": max_diff,
            "final_weight_diff_sum": agree[0],
            "steps_disagreement": agree[1],
            "best_step_disagreement": agree[2],
            "early_stopped": s.early_stopped,
            "best_step": s.best.map(|(_, st)| st),
            "final_loss": s.curve.last().map(|c| c.loss),
            "class_weights": s.class_weights,
        });
        println!("{line}");
    }
    Ok(())
}
