//! `medlit bench generate`: prefill and decode speed of the Gemma decoder against llama.cpp's
//! `llama-bench` on the same GGUF file, per thread count, in the same run.
//!
//! Thread counts are fixed per process (candle sizes its worker pool once, from
//! RAYON_NUM_THREADS), so each count is measured in a child `medlit` process; the child also
//! reports the load time and the peak RSS of a process that holds the model.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use medlit::generate::Device;
use serde::{Deserialize, Serialize};

use crate::args::BenchGenerateArgs;
use crate::peer::{peer_python, run_ok};
use clap::ValueEnum;
use medlit::cli::DTypeArg;
use medlit::commands::print_json;
use medlit::generate::hf::HfChat;
use medlit::generate::int8_matmul::{self, Kernel, KERNEL_ENV};
use medlit::generate::sampler::argmax;
use medlit::generate::GemmaGguf;

/// The llama.cpp that `llama-cpp-python` vendors; the bench builds its `llama-bench` once.
const LLAMA_CPP_PYTHON: &str = "llama-cpp-python==0.3.36";
const LLAMA_DIR: &str = "llama_cpp_python-0.3.36";

/// One side's figures at one thread count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Speed {
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
}

/// What a child process measures for medlit.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerReport {
    threads: usize,
    /// The int8 path the worker's products ran on.
    kernel: String,
    load_s: f64,
    #[serde(flatten)]
    memory: Memory,
    /// Where the model ran and in which precision (a GGUF file: cpu, its own int8 types).
    #[serde(default)]
    device: String,
    #[serde(default)]
    dtype: String,
    /// Parameters of a Hugging Face folder's text model.
    #[serde(default)]
    parameters: Option<usize>,
    #[serde(flatten)]
    speed: Speed,
}

#[derive(Debug, Serialize)]
struct Row {
    threads: usize,
    medlit: Speed,
    load_s: f64,
    #[serde(flatten)]
    memory: Memory,
    peer: Option<Speed>,
    prefill_ratio: Option<f64>,
    decode_ratio: Option<f64>,
}

/// The CPU the figures come from.
#[derive(Debug, Serialize)]
struct Cpu {
    model: String,
    /// The instruction sets the int8 kernels look for, as the CPU reports them.
    features: Vec<&'static str>,
    /// The int8 paths this CPU runs, fastest first.
    kernels: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct Report {
    cpu: Cpu,
    /// The int8 path medlit's products ran on (`MEDLIT_KERNEL` forces one); llama.cpp is built
    /// for the same instruction sets.
    kernel: String,
    model: String,
    /// Where the model ran (cpu, cuda:N) and the precision of its computation.
    device: String,
    dtype: String,
    parameters: Option<usize>,
    /// The random-weight checkpoint measured, when `--synthetic` made one.
    synthetic: Option<SyntheticReport>,
    prompt_tokens: usize,
    gen_tokens: usize,
    runs: usize,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct SyntheticReport {
    name: String,
    /// Where it was written; removed after the run unless `--keep`.
    folder: String,
    kept: bool,
    bytes: u64,
    write_s: f64,
}

pub fn run(args: &BenchGenerateArgs) -> Result<()> {
    use medlit::generate::{device, gemma4::Config, synthetic};
    // Refused before any work (a 15 GB synthetic write, a llama.cpp build): a device this build
    // cannot use, a forced path this CPU cannot run, a synthetic model this machine cannot hold.
    let dev = device::parse(&args.device)?;
    let forced = Kernel::check_env()?;
    // A synthetic checkpoint is bf16, and is measured in bf16 unless asked otherwise.
    let dtype = args
        .dtype
        .or(args.synthetic.as_ref().map(|_| DTypeArg::Bf16));
    let synthetic = match &args.synthetic {
        Some(name) if !args.worker => {
            let config = synthetic::config(name)?;
            let cfg = Config::from_value(config.clone()).map_err(anyhow::Error::msg)?;
            let compute = device::dtype_for(&dev, dtype.map(Into::into));
            device::check_fits(&cfg, compute, context_tokens(args), &dev)?;
            Some(SyntheticModel::write(name, &config, args)?)
        }
        _ => None,
    };
    let model_arg = synthetic
        .as_ref()
        .map(|s| s.dir.clone())
        .or_else(|| args.model.clone());
    let folder = model_arg.as_deref().filter(|p| HfChat::is_folder(p));
    let model = match folder {
        Some(dir) => dir.to_path_buf(),
        None => medlit::cli::setup::generator_path(model_arg.as_deref())?,
    };
    if folder.is_none() && !dev.is_cpu() {
        bail!(
            "--device {}: a GGUF file runs on the CPU's int8 kernels; --device applies to a Hugging Face folder",
            args.device
        );
    }
    if args.worker {
        let threads = args.threads.first().copied().unwrap_or(1);
        let report = match folder {
            Some(dir) => measure_folder(dir, args, &dev, threads)?,
            None => measure(&model, args, threads)?,
        };
        return print_json(&report);
    }
    let llama_bench = if args.no_peer {
        None
    } else if folder.is_some() {
        // llama-bench reads GGUF only: a safetensors folder is measured alone.
        if !args.json {
            eprintln!(
                "{}: a Hugging Face folder, which llama.cpp cannot load: medlit alone",
                model.display()
            );
        }
        None
    } else {
        Some(llama_bench(
            &args.python,
            args.json,
            forced.unwrap_or_else(Kernel::selected),
        )?)
    };
    let mut rows = Vec::new();
    let mut kernel = forced.unwrap_or_else(Kernel::selected).name().to_string();
    let mut ran = (String::new(), String::new(), None);
    for &threads in &args.threads {
        if !args.json {
            eprintln!("medlit, {threads} thread(s)…");
        }
        let ours = worker(&model, args, dtype, threads)?;
        kernel = ours.kernel.clone();
        ran = (ours.device.clone(), ours.dtype.clone(), ours.parameters);
        let peer = match &llama_bench {
            None => None,
            Some(bin) => {
                if !args.json {
                    eprintln!("llama.cpp, {threads} thread(s)…");
                }
                Some(run_llama_bench(bin, &model, args, threads)?)
            }
        };
        rows.push(Row {
            threads,
            prefill_ratio: peer
                .as_ref()
                .map(|p| ours.speed.prefill_tok_s / p.prefill_tok_s.max(1e-9)),
            decode_ratio: peer
                .as_ref()
                .map(|p| ours.speed.decode_tok_s / p.decode_tok_s.max(1e-9)),
            medlit: ours.speed,
            load_s: ours.load_s,
            memory: ours.memory,
            peer,
        });
    }
    let report = Report {
        cpu: Cpu {
            model: cpu_model(),
            features: int8_matmul::cpu_features(),
            kernels: Kernel::available().iter().map(|k| k.name()).collect(),
        },
        kernel,
        model: model.display().to_string(),
        device: ran.0,
        dtype: ran.1,
        parameters: ran.2,
        synthetic: synthetic.as_ref().map(SyntheticModel::report),
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        runs: args.runs.max(1),
        rows,
    };
    drop(synthetic);
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} — prefill {} tokens, decode {} tokens, best of {} runs",
        report.model, report.prompt_tokens, report.gen_tokens, report.runs
    );
    if let Some(s) = &report.synthetic {
        println!(
            "synthetic {} (random weights): {:.2} GB written in {:.0} s{}",
            s.name,
            s.bytes as f64 / 1e9,
            s.write_s,
            if s.kept {
                format!(", kept in {}", s.folder)
            } else {
                ", removed after the run".to_string()
            }
        );
    }
    if let Some(p) = report.parameters {
        let count = if p >= 1_000_000_000 {
            format!("{:.2} B", p as f64 / 1e9)
        } else {
            format!("{:.2} M", p as f64 / 1e6)
        };
        println!(
            "{count} parameters, computed in {} on {} (candle's matrix products; the int8 kernel below is for GGUF files)",
            report.dtype, report.device
        );
    }
    println!(
        "CPU {} ({}); int8 kernel {} (this CPU runs: {}; {}=NAME forces one)",
        report.cpu.model,
        report.cpu.features.join(" "),
        report.kernel,
        report.cpu.kernels.join(", "),
        KERNEL_ENV
    );
    println!(
        "threads  side       prefill tok/s  decode tok/s  load s  peak RSS MB  (own + file pages)"
    );
    for r in &report.rows {
        println!(
            "{:>7}  medlit     {:>13.2} {:>13.2} {:>7.2} {:>12.0}  ({:.0} + {:.0})",
            r.threads,
            r.medlit.prefill_tok_s,
            r.medlit.decode_tok_s,
            r.load_s,
            r.memory.peak_rss_mb,
            r.memory.rss_anon_mb,
            r.memory.rss_file_mb
        );
        if let (Some(p), Some(pr), Some(dr)) = (&r.peer, r.prefill_ratio, r.decode_ratio) {
            println!(
                "{:>7}  llama.cpp  {:>13.1} {:>13.1}",
                r.threads, p.prefill_tok_s, p.decode_tok_s
            );
            println!(
                "{:>7}  ratio      {:>12.2}x {:>12.2}x   (medlit / llama.cpp)",
                r.threads, pr, dr
            );
        }
    }
    Ok(())
}

/// Runs the measurement in a child process with `threads` worker threads.
fn worker(
    model: &Path,
    args: &BenchGenerateArgs,
    dtype: Option<DTypeArg>,
    threads: usize,
) -> Result<WorkerReport> {
    let exe = std::env::current_exe().context("finding the medlit-bench executable")?;
    let mut cmd = Command::new(exe);
    cmd.env("RAYON_NUM_THREADS", threads.to_string())
        .args(["generate", "--worker", "--json"])
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--prompt-tokens")
        .arg(args.prompt_tokens.to_string())
        .arg("--gen-tokens")
        .arg(args.gen_tokens.to_string())
        .arg("--runs")
        .arg(args.runs.to_string())
        .arg("--device")
        .arg(&args.device)
        .arg("--model")
        .arg(model);
    if let Some(d) = dtype.and_then(|d| d.to_possible_value()) {
        cmd.arg("--dtype").arg(d.get_name());
    }
    let out = cmd
        .output()
        .context("running the measuring medlit process")?;
    if !out.status.success() {
        bail!(
            "measuring with {threads} thread(s) failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading the measuring process's report")
}

/// What the timing loop needs of a decoder: a fresh cache, and a forward pass.
trait Decoder {
    type Cache;
    fn fresh(&self) -> Result<Self::Cache>;
    fn step(&self, tokens: &[u32], cache: &mut Self::Cache) -> Result<Vec<f32>>;
}

impl Decoder for medlit::generate::gemma3::Gemma3 {
    type Cache = medlit::generate::gemma3::Cache;
    fn fresh(&self) -> Result<Self::Cache> {
        Ok(self.new_cache()?)
    }
    fn step(&self, tokens: &[u32], cache: &mut Self::Cache) -> Result<Vec<f32>> {
        Ok(self.forward(tokens, cache)?.to_vec1()?)
    }
}

impl Decoder for medlit::generate::gemma4::Gemma4 {
    type Cache = medlit::generate::gemma4::Cache;
    fn fresh(&self) -> Result<Self::Cache> {
        Ok(self.new_cache()?)
    }
    fn step(&self, tokens: &[u32], cache: &mut Self::Cache) -> Result<Vec<f32>> {
        Ok(self.forward(tokens, cache)?.to_vec1()?)
    }
}

/// The best prefill and decode rates over `runs`: `prompt` in chunks of `chunk`, then, as
/// llama-bench's text-generation test, `g` single-token steps from an empty cache.
fn speeds<D: Decoder>(
    model: &D,
    prompt: &[u32],
    chunk: usize,
    g: usize,
    runs: usize,
) -> Result<Speed> {
    let mut best = Speed {
        prefill_tok_s: 0.0,
        decode_tok_s: 0.0,
    };
    for _ in 0..runs.max(1) {
        let mut cache = model.fresh()?;
        let t = Instant::now();
        for c in prompt.chunks(chunk.max(1)) {
            model.step(c, &mut cache)?;
        }
        let rate = prompt.len() as f64 / t.elapsed().as_secs_f64();
        best.prefill_tok_s = best.prefill_tok_s.max(rate);
        let mut cache = model.fresh()?;
        let mut next = prompt.first().copied().unwrap_or(0);
        let t = Instant::now();
        for _ in 0..g {
            next = argmax(&model.step(&[next], &mut cache)?);
        }
        best.decode_tok_s = best.decode_tok_s.max(g as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// In this process: load, then the best prefill and decode rates over `runs`.
fn measure(model: &Path, args: &BenchGenerateArgs, threads: usize) -> Result<WorkerReport> {
    let (p, g) = (args.prompt_tokens.max(1), args.gen_tokens.max(1));
    let t = Instant::now();
    let gen = GemmaGguf::load(model, context_tokens(args), &Device::Cpu)
        .with_context(|| format!("loading {}", model.display()))?;
    let load_s = t.elapsed().as_secs_f64();
    let body = gen.tokenizer.encode(PROMPT_TEXT);
    let prompt = repeat_to(gen.tokenizer.specials.bos, &body, p);
    Ok(WorkerReport {
        threads,
        kernel: Kernel::selected().vector_level().name().to_string(),
        load_s,
        speed: speeds(&gen.model, &prompt, gen.prefill_chunk, g, args.runs)?,
        memory: Memory::now(),
        device: "cpu".into(),
        dtype: "gguf".into(),
        parameters: None,
    })
}

/// As [`measure`], for a Hugging Face (Gemma 4) folder on `--device` in `--dtype`. A folder
/// without a tokenizer (a synthetic checkpoint) is fed token ids spread over its vocabulary.
fn measure_folder(
    dir: &Path,
    args: &BenchGenerateArgs,
    dev: &Device,
    threads: usize,
) -> Result<WorkerReport> {
    use medlit::generate::device;
    use medlit::generate::gemma4::{Config, Gemma4};
    let (p, g) = (args.prompt_tokens.max(1), args.gen_tokens.max(1));
    let dtype = device::dtype_for(dev, args.dtype.map(Into::into));
    let context = context_tokens(args);
    let cfg = Config::load(&dir.join("config.json"))?;
    // Refused before loading when the machine cannot hold it.
    device::check_fits(&cfg, dtype, context, dev)?;
    let loading = || format!("loading {}", dir.display());
    let t = Instant::now();
    let (chat, bare);
    let (model, load_s, prompt): (&Gemma4, f64, Vec<u32>) = if dir.join("tokenizer.json").is_file()
    {
        chat = HfChat::load(dir, context, dtype, dev).with_context(loading)?;
        let load_s = t.elapsed().as_secs_f64();
        let body = chat.encode(PROMPT_TEXT)?;
        let bos = cfg.bos_token_id.unwrap_or(2);
        (&chat.model, load_s, repeat_to(bos, &body, p))
    } else {
        bare = Gemma4::load(dir, context, dtype, dev).with_context(loading)?;
        let load_s = t.elapsed().as_secs_f64();
        (
            &bare,
            load_s,
            medlit::generate::synthetic::prompt_ids(&cfg, p),
        )
    };
    Ok(WorkerReport {
        threads,
        kernel: Kernel::selected().vector_level().name().to_string(),
        load_s,
        speed: speeds(model, &prompt, 256, g, args.runs)?,
        // Read while the model is still held.
        memory: Memory::now(),
        device: device_name(dev),
        dtype: format!("{dtype:?}").to_lowercase(),
        parameters: Some(cfg.parameters()),
    })
}

/// The context a measuring process loads for: the longer test, and a margin.
fn context_tokens(args: &BenchGenerateArgs) -> usize {
    args.prompt_tokens.max(1).max(args.gen_tokens.max(1)) + 8
}

/// A process's memory while it holds the model, in MB, from /proc/self/status.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Memory {
    /// VmHWM: the peak resident set.
    peak_rss_mb: f64,
    /// RssAnon and RssFile now: the process's own allocations (the weights it copied out of
    /// the file), and mapped file pages (the checkpoint as read, which the kernel can drop).
    #[serde(default)]
    rss_anon_mb: f64,
    #[serde(default)]
    rss_file_mb: f64,
}

impl Memory {
    fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let mb = |field| {
            medlit::generate::device::proc_kb(&status, field).map_or(0.0, |kb| kb as f64 / 1024.0)
        };
        Memory {
            peak_rss_mb: mb("VmHWM:"),
            rss_anon_mb: mb("RssAnon:"),
            rss_file_mb: mb("RssFile:"),
        }
    }
}

fn device_name(dev: &Device) -> String {
    match dev.location() {
        medlit::generate::DeviceLocation::Cpu => "cpu".into(),
        medlit::generate::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A random-weight checkpoint written for this run, removed when dropped unless `--keep`.
struct SyntheticModel {
    name: String,
    dir: PathBuf,
    keep: bool,
    /// The folder was made by this run (not named by `--synthetic-dir`).
    own_dir: bool,
    bytes: u64,
    write_s: f64,
}

impl SyntheticModel {
    fn write(name: &str, config: &serde_json::Value, args: &BenchGenerateArgs) -> Result<Self> {
        use medlit::generate::synthetic;
        let dir = match &args.synthetic_dir {
            Some(d) => d.clone(),
            None => {
                let root = medlit::cli::setup::home()?
                    .root()
                    .join("bench")
                    .join("synthetic");
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("creating {}", root.display()))?;
                tempfile::Builder::new()
                    .prefix(&format!("{name}-"))
                    .tempdir_in(&root)
                    .with_context(|| format!("creating a folder in {}", root.display()))?
                    .keep()
            }
        };
        if !args.json {
            eprintln!(
                "writing the synthetic {name} (random weights, bf16) into {}…",
                dir.display()
            );
        }
        let t = Instant::now();
        let mut shown = 0u64;
        let quiet = args.json;
        let written = synthetic::write(
            &dir,
            config,
            synthetic::StoredDType::BF16,
            0x6d65_646c_6974,
            |done, total| {
                // A line per tenth: the write takes a minute or more at real size.
                let tenth = done * 10 / total.max(1);
                if !quiet && tenth > shown {
                    shown = tenth;
                    eprintln!(
                        "  {:>3}% of {:.1} GB ({:.0} s)",
                        tenth * 10,
                        total as f64 / 1e9,
                        t.elapsed().as_secs_f64()
                    );
                }
            },
        );
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                if args.synthetic_dir.is_none() {
                    let _ = std::fs::remove_dir(&dir);
                }
                return Err(e).with_context(|| format!("writing the synthetic {name}"));
            }
        };
        Ok(SyntheticModel {
            name: name.to_string(),
            dir,
            keep: args.keep,
            own_dir: args.synthetic_dir.is_none(),
            bytes: written.bytes,
            write_s: t.elapsed().as_secs_f64(),
        })
    }

    fn report(&self) -> SyntheticReport {
        SyntheticReport {
            name: self.name.clone(),
            folder: self.dir.display().to_string(),
            kept: self.keep,
            bytes: self.bytes,
            write_s: self.write_s,
        }
    }
}

impl Drop for SyntheticModel {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Only the two files this run wrote, and the folder only if this run made it.
        for f in ["model.safetensors", "config.json"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        if self.own_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// BOS, then `body` repeated to `n` tokens in all.
fn repeat_to(bos: u32, body: &[u32], n: usize) -> Vec<u32> {
    let mut ids = vec![bos];
    while ids.len() < n && !body.is_empty() {
        ids.extend(body.iter().take(n - ids.len()));
    }
    ids
}

const PROMPT_TEXT: &str = "Duchenne muscular dystrophy is an X-linked recessive disorder caused \
by mutations in the dystrophin gene. The absence of dystrophin at the sarcolemma leads to \
progressive degeneration of skeletal and cardiac muscle, with loss of ambulation in the second \
decade. Corticosteroids slow the decline; exon-skipping oligonucleotides restore a shortened \
but partly functional protein in a subset of patients. ";

#[derive(Deserialize)]
struct LlamaBenchRow {
    n_prompt: usize,
    n_gen: usize,
    avg_ts: f64,
    /// Each run's rate (recent llama-bench); the best of them is compared with medlit's best.
    #[serde(default)]
    samples_ts: Vec<f64>,
}

fn run_llama_bench(
    bin: &Path,
    model: &Path,
    args: &BenchGenerateArgs,
    threads: usize,
) -> Result<Speed> {
    let out = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["-p", &args.prompt_tokens.to_string()])
        .args(["-n", &args.gen_tokens.to_string()])
        .args(["-t", &threads.to_string()])
        .args(["-r", &args.runs.max(1).to_string()])
        .args(["-o", "json"])
        .output()
        .context("running llama-bench")?;
    if !out.status.success() {
        bail!(
            "llama-bench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let rows: Vec<LlamaBenchRow> =
        serde_json::from_slice(&out.stdout).context("reading llama-bench's JSON")?;
    let pick = |prefill: bool| {
        rows.iter()
            .find(|r| if prefill { r.n_prompt > 0 } else { r.n_gen > 0 })
            .map(|r| r.samples_ts.iter().copied().fold(r.avg_ts, f64::max))
            .context("llama-bench reported no such test")
    };
    Ok(Speed {
        prefill_tok_s: pick(true)?,
        decode_tok_s: pick(false)?,
    })
}

/// `llama-bench`, built once under $MEDLIT_HOME/bench/ from the llama.cpp that the
/// `llama-cpp-python` source distribution vendors (pip downloads it; cmake and ninja come from
/// pip too, into a virtual environment of their own).
/// llama-bench built for the instruction sets of `kernel`'s level (the machine's best for the
/// fastest path; AVX-512 left out for the 256-bit paths, AVX-VNNI too for AVX2, every SIMD
/// option off for the portable path), so a forced medlit path is compared with llama.cpp on
/// the same instructions. One build folder per level.
fn llama_bench(python: &str, quiet: bool, kernel: Kernel) -> Result<PathBuf> {
    llama_tool(python, quiet, kernel, "llama-bench")
}

/// llama.cpp's `llama-server`, built as `llama-bench` is (the machine's best instruction
/// set): the third-party OpenAI-compatible server the remote backend is tested against.
pub fn llama_server(python: &str, quiet: bool) -> Result<PathBuf> {
    llama_tool(python, quiet, Kernel::available()[0], "llama-server")
}

/// A llama.cpp tool (`target`: llama-bench, llama-server), built once per instruction-set level.
fn llama_tool(python: &str, quiet: bool, kernel: Kernel, target: &str) -> Result<PathBuf> {
    let root = medlit::cli::setup::home()?
        .root()
        .join("bench")
        .join("llama.cpp");
    let (kernel, best) = (kernel.vector_level(), Kernel::available()[0].vector_level());
    let build_name = if kernel == best {
        "build".to_string()
    } else {
        format!("build-{}", kernel.name())
    };
    let bin = root.join(&build_name).join("bin").join(target);
    if bin.is_file() {
        return Ok(bin);
    }
    if !quiet {
        eprintln!(
            "building llama.cpp's {target} once into {} (several minutes)…",
            root.display()
        );
    }
    let py = peer_python(python, "llama-build-venv", &["cmake", "ninja"], "ninja")?;
    let venv_bin = py
        .parent()
        .context("the build environment has no bin folder")?;
    let src = root.join("src");
    let tree = src.join(LLAMA_DIR).join("vendor").join("llama.cpp");
    if !tree.join("CMakeLists.txt").is_file() {
        std::fs::create_dir_all(&src).context("creating the llama.cpp source folder")?;
        run_ok(
            Command::new(&py)
                .args(["-m", "pip", "download", "-q", "--disable-pip-version-check"])
                // Only this package as source: with `:all:`, pip would also build the build
                // backend's own requirements (cmake itself) from source to read the metadata.
                .args([
                    "--no-deps",
                    "--no-binary",
                    "llama-cpp-python",
                    LLAMA_CPP_PYTHON,
                    "-d",
                ])
                .arg(&src),
            "downloading the llama-cpp-python source distribution with pip",
        )?;
        let archive = src.join(format!("{LLAMA_DIR}.tar.gz"));
        run_ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&src),
            "unpacking the llama-cpp-python source distribution",
        )?;
    }
    let build = root.join(&build_name);
    run_ok(
        Command::new(venv_bin.join("cmake"))
            .arg("-S")
            .arg(&tree)
            .arg("-B")
            .arg(&build)
            .args(["-G", "Ninja"])
            .arg(format!(
                "-DCMAKE_MAKE_PROGRAM={}",
                venv_bin.join("ninja").display()
            ))
            .args([
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_CURL=OFF",
                "-DGGML_NATIVE=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_SERVER=ON",
            ])
            .args(cpu_options(kernel)),
        "configuring llama.cpp with cmake",
    )?;
    run_ok(
        Command::new(venv_bin.join("ninja"))
            .arg("-C")
            .arg(&build)
            .arg(target),
        &format!("building {target} with ninja"),
    )?;
    if !bin.is_file() {
        bail!("the llama.cpp build finished without {}", bin.display());
    }
    Ok(bin)
}

/// llama.cpp's CPU instruction-set options for what this CPU reports at `kernel`'s level, AMX excepted. Not
/// `GGML_NATIVE`: under a hypervisor a CPU may report AMX without letting a process use it
/// (on this project's machine llama.cpp built natively dies with SIGILL in its AMX kernels).
fn cpu_options(kernel: Kernel) -> Vec<String> {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut flags: std::collections::HashSet<&str> = flags
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let (kernel, best) = (kernel.vector_level(), Kernel::available()[0].vector_level());
    if kernel != best {
        // The instruction sets above the forced path's level are left out.
        let keep: &[&str] = match kernel.name() {
            "avxvnni" => &["avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni"],
            "avx2" => &["avx", "avx2", "fma", "f16c", "bmi2"],
            _ => &[],
        };
        flags.retain(|f| keep.contains(f));
    }
    [
        ("avx", "GGML_AVX"),
        ("avx2", "GGML_AVX2"),
        ("fma", "GGML_FMA"),
        ("f16c", "GGML_F16C"),
        ("bmi2", "GGML_BMI2"),
        ("avx_vnni", "GGML_AVX_VNNI"),
        ("avx512f", "GGML_AVX512"),
        ("avx512vbmi", "GGML_AVX512_VBMI"),
        ("avx512_vnni", "GGML_AVX512_VNNI"),
        ("avx512_bf16", "GGML_AVX512_BF16"),
    ]
    .iter()
    .map(|(flag, option)| {
        let on = if flags.contains(flag) { "ON" } else { "OFF" };
        format!("-D{option}={on}")
    })
    .collect()
}

/// The CPU's model name (`/proc/cpuinfo`), or the architecture where there is none.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
