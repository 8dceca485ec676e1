//! A Llama-family LLM on libtorch: load, tokenize, LoRA, score candidates, generate.
//!
//! This is the language-model substrate of BehaviorLM (arXiv 2505.17682, LLM tuned to predict
//! the next behaviour) and PITuning (a pretrained LM adapted to intent prediction); see
//! `shared/docs/papers.md` §8.2 and §8.4.
//!
//! * [`LlamaForCausalLM`] and its sub-layers ([`RmsNorm`], [`Rotary`], [`Attention`], [`Mlp`],
//!   [`DecoderLayer`], [`LlamaModel`]) cover Llama 2/3, Mistral, Qwen2/2.5 and SmolLM/SmolLM2, with
//!   grouped-query attention through `scaled_dot_product_attention(enable_gqa)`, a [`KvCache`],
//!   padded batches and a forward on input embeddings.
//! * [`Llm::load`] reads a Hugging Face directory (`config.json`, safetensors, `tokenizer.json`);
//!   [`import_gguf`] turns a llama.cpp GGUF file into such a directory.
//! * [`LoraConfig`] adds adapters; [`save_adapter`] / [`load_adapter`] use PEFT's layout.
//! * [`sft_loss`] trains on answer tokens only; [`score_candidates`] gives the log-likelihood of
//!   K candidate answers reusing one prompt encoding; [`generate`] decodes greedily or by
//!   sampling, optionally constrained to a candidate set.
//!
//! ```
//! use behavior_models::llm::{LlamaConfig, LlamaForCausalLM};
//! use tch::{nn, Device, Kind, Tensor};
//!
//! let cfg = LlamaConfig::tiny();
//! let vs = nn::VarStore::new(Device::Cpu);
//! let model = LlamaForCausalLM::new(&vs.root(), &cfg, None);
//! let ids = Tensor::from_slice(&[1i64, 5, 7, 9]).view([1, 4]);
//! let logits = model.forward(&ids, None, None, false).unwrap();
//! assert_eq!(logits.size(), vec![1, 4, cfg.vocab_size]);
//! ```

mod config;
mod generate;
mod gguf;
mod lora;
mod model;
mod packed;
mod policy;
mod readout;
mod score;
mod sft;
mod tokenizer;
mod weights;

pub use config::{LlamaConfig, RopeScaling, TokenIds};
pub use generate::{
    generate, generate_scored, sample_rows, CandidateTrie, GenerationConfig, Sample,
};
pub use gguf::{import_gguf, ImportSummary};
pub use lora::{load_adapter, read_adapter_config, save_adapter, Lora, LoraConfig, LORA_MODULES};
pub use model::{
    Attention, DecoderLayer, KvCache, LlamaForCausalLM, LlamaModel, Mlp, Proj, RmsNorm, Rotary,
};
pub use packed::{AnswerSpan, LogTokens, PackStats, PackedExample};
pub use policy::{completion_logprobs, CompletionLogprobs};
pub use readout::{CandidateRows, GreedyGeneration, LlmReadout, Norm, ReadoutConfig, ReadoutStats};
pub use score::{score_candidates, score_candidates_naive, CandidateScore};
pub use sft::{
    answer_logits, collate, collate_packed, sft_loss, sft_loss_weighted, token_budget_batches,
    SftBatch, SftExample, IGNORE_INDEX,
};
pub use tokenizer::{chatml, ChatMessage, LlmTokenizer, SMOLLM2_SYSTEM};
pub use weights::{
    bootstrap_model_dir, cache_dir, load_weights, load_weights_where, read_safetensors,
    write_safetensors, Llm, LoadOptions, SafetensorsFile,
};
