//! Loads the fetched Gemma GGUF and answers one prompt greedily, printing timings.
//! `cargo run --release -p medlit-generate --example gemma_probe -- [PROMPT] [THREADS]`
use std::io::Write;
use std::time::Instant;

use medlit_generate::sampler::Sampling;
use medlit_generate::{GemmaGguf, GenOptions, Generator};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let prompt = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let home = medlit_corpus::home::MedlitHome::from_env()?;
    let path = home.root().join("assets/models/gemma-3-270m-q4_k_m.gguf");
    let t = Instant::now();
    let mut g = GemmaGguf::load(&path, 2048, &medlit_generate::Device::Cpu)?;
    eprintln!("load {:.2} s", t.elapsed().as_secs_f64());
    let ids = g.chat_prompt(&prompt);
    eprintln!("prompt ids {:?}", &ids[..ids.len().min(40)]);
    let opts = GenOptions {
        max_tokens: 64,
        sampling: Sampling::default(),
    };
    let r = g.chat(&prompt, &opts, &mut |s| {
        print!("{s}");
        std::io::stdout().flush().ok();
        true
    })?;
    println!();
    eprintln!(
        "prompt {} tok, prefill {:.1} tok/s; {} tok, decode {:.1} tok/s; stop {}",
        r.prompt_tokens,
        r.prompt_tokens as f64 / r.prefill_ms * 1000.0,
        r.tokens,
        r.tokens as f64 / r.decode_ms * 1000.0,
        r.stop
    );
    Ok(())
}
