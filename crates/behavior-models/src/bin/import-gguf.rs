//! Imports a llama.cpp GGUF file into a Hugging Face model directory
//! (`config.json`, `model.safetensors` with dequantised f32 weights, `tokenizer.json`).
//!
//! `cargo run -p behavior-models --bin import-gguf -- <file.gguf> <out-dir>`

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Import a GGUF file (llama / qwen2 architecture, byte-level BPE vocabulary) into a Hugging Face
/// directory readable by `behavior_models::llm::Llm::load`.
#[derive(Parser, Debug)]
#[command(name = "import-gguf", version)]
struct Args {
    /// The GGUF file to read (e.g. SmolLM2-135M-Instruct.Q4_1.gguf).
    gguf: PathBuf,
    /// Output directory; created if missing. Receives config.json, model.safetensors, tokenizer.json.
    out_dir: PathBuf,
    /// Overwrite an existing import in OUT_DIR (by default an existing config.json is an error).
    #[arg(long)]
    force: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.out_dir.join("config.json").exists() && !args.force {
        anyhow::bail!(
            "{} already holds an import (config.json); pass --force to overwrite",
            args.out_dir.display()
        );
    }
    let s = behavior_models::llm::import_gguf(&args.gguf, &args.out_dir)
        .with_context(|| format!("importing {}", args.gguf.display()))?;
    println!(
        "imported {} -> {}: {} tensors {:?}, {} layers, hidden {}, vocab {} ({} merges, {} special tokens), tied embeddings: {}",
        args.gguf.display(),
        args.out_dir.display(),
        s.n_tensors,
        s.tensor_types,
        s.config.num_hidden_layers,
        s.config.hidden_size,
        s.vocab_size,
        s.n_merges,
        s.n_special,
        s.config.tie_word_embeddings
    );
    Ok(())
}
