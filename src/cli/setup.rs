//! The one place that turns flags into the engine's parts: where data lives, which manifest,
//! the retriever and its search mode, the generator, the safety screen, the answer defaults,
//! and [`Pipeline`], all of them together for the commands that answer questions (`ask`,
//! `serve`, `eval qa`, `demo`).
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use medlit_corpus::{fetch::assets_present, AssetKind, DataManifest, MedlitHome};
use medlit_indexer::embed::EncoderConfig;
use medlit_indexer::minilm::Int8Config;
use medlit_indexer::minilm_candle::CandleConfig;

use super::{AnswerStyle, FusionArgs, GenerateArgs, IndexDirArg, ManifestArg, SearchModeArg};
use crate::answer::{Choices, Defaults};
use crate::cite::Thresholds;
use crate::generate::hf::HfChat;
use crate::generate::sampler::Sampling;
use crate::generate::{GemmaGguf, Generator};
use crate::retrieve::bm25::Bm25Searcher;
use crate::retrieve::dense::DenseSearcher;
use crate::retrieve::hybrid::{Fusion, Mode, Retriever};
use crate::safety::{Policy, Screener};

/// Everything a question needs, loaded once: the retriever and its search mode, the generator,
/// the safety screen and the answer defaults for that generator.
pub struct Pipeline {
    pub retriever: Retriever,
    pub mode: Mode,
    pub generator: Box<dyn Generator + Send>,
    pub screener: Screener,
    pub defaults: Defaults,
}

impl Pipeline {
    /// The setup sequence every answering command shares: threads, index, retriever, mode, a
    /// template check before seconds go into loading models, generator, defaults, screener.
    pub fn open(
        index: &IndexDirArg,
        mode: SearchModeArg,
        fusion: &FusionArgs,
        generate: &GenerateArgs,
        k: Option<usize>,
    ) -> Result<Self> {
        set_threads(generate.threads);
        let dir = index_dir(index)?;
        let (retriever, mode) = retriever(&dir, mode, fusion)?;
        Self::over(retriever, mode, generate, k)
    }

    /// As [`Pipeline::open`], over a retriever already open.
    pub fn over(
        retriever: Retriever,
        mode: Mode,
        generate: &GenerateArgs,
        k: Option<usize>,
    ) -> Result<Self> {
        if let Some(p) = &generate.prompt {
            crate::prompt::Template::load(p)?;
        }
        let generator = load_generator(generate)?;
        let defaults = defaults(generate, k, generator.prefers_extraction())?;
        let screener = screener(generate.safety_policy.as_deref(), Some(&retriever))?;
        Ok(Pipeline {
            retriever,
            mode,
            generator,
            screener,
            defaults,
        })
    }
}

/// The binary `name` beside the running one (medlit and medlit-bench run each other);
/// `missing` says, when it is not there, what it is for.
pub fn sibling_exe(name: &str, missing: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding the running executable")?;
    let exe = me.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!(
            "{} does not exist: {missing}; build it with `cargo build --release` (it builds both binaries)",
            exe.display()
        );
    }
    Ok(exe)
}

/// Sends the retriever's candidate searches to Qdrant when `--retrieval qdrant` says so.
/// The question is still embedded here: that needs the local index's dense half (its model).
pub fn use_retrieval(retriever: &mut Retriever, args: &crate::cli::RetrievalArgs) -> Result<()> {
    if args.retrieval == crate::cli::RetrievalArg::Local {
        return Ok(());
    }
    let url = args
        .qdrant_url
        .as_deref()
        .context("--retrieval qdrant needs --qdrant-url")?;
    if retriever.dense.is_none() {
        bail!(
            "--retrieval qdrant embeds the question with the index's model, but this index is keyword-only; use the hybrid index the collection was exported from"
        );
    }
    retriever.remote = Some(crate::retrieve::qdrant::QdrantRemote::new(
        url,
        &args.qdrant_collection,
        std::time::Duration::from_secs(args.qdrant_timeout.max(1)),
    )?);
    Ok(())
}

/// The index in `dir` opened for searching, and the search mode `arg` means for it.
pub fn retriever(dir: &Path, arg: SearchModeArg, fusion: &FusionArgs) -> Result<(Retriever, Mode)> {
    let r = open_retriever(dir, arg != SearchModeArg::Bm25, fusion)?;
    let mode = mode_of(&r, arg);
    Ok((r, mode))
}

/// The answer defaults the generation flags name, for a generator that does or does not
/// prefer span answers (`--answer auto`).
pub fn defaults(
    args: &GenerateArgs,
    k: Option<usize>,
    prefers_extraction: bool,
) -> Result<Defaults> {
    let extract = match args.answer {
        AnswerStyle::Auto => prefers_extraction,
        AnswerStyle::Span => true,
        AnswerStyle::Free => false,
    };
    Ok(Defaults::new(
        extract,
        &Choices {
            template: args.prompt.as_deref(),
            evidence_order: args.evidence_order.map(Into::into),
            max_tokens: args.max_tokens,
            k,
            sampling: Sampling {
                temperature: args.temperature,
                top_p: args.top_p,
                seed: args.seed,
            },
            thresholds: Thresholds {
                min_coverage: args
                    .min_coverage
                    .unwrap_or(Thresholds::DEFAULT_MIN_COVERAGE),
                min_similarity: args
                    .min_similarity
                    .unwrap_or(Thresholds::DEFAULT_MIN_SIMILARITY),
                ..Thresholds::default()
            },
            answerability: answerability_model(args)?,
            span: span_choice(args)?,
        },
    )?)
}

/// The span choice: the ranker named or the built-in one, or the model's greedy span.
fn span_choice(args: &GenerateArgs) -> Result<crate::answer::SpanChoice> {
    use crate::span_rank::Ranker;
    if args.span_choice == super::common::SpanChoiceArg::Greedy {
        return Ok(crate::answer::SpanChoice::Greedy);
    }
    let ranker = match &args.span_ranker {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the span ranker {}", path.display()))?;
            Ranker::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Ranker::builtin().context("the built-in span ranker")?,
    };
    Ok(crate::answer::SpanChoice::Candidates {
        n: crate::span_rank::CANDIDATES,
        ranker: Some(ranker),
    })
}

/// The answerability model: the file named, the built-in one, or none when a coverage rule
/// was asked for.
fn answerability_model(args: &GenerateArgs) -> Result<Option<crate::answerable::Model>> {
    if args.min_coverage.is_some() || args.min_similarity.is_some() {
        return Ok(None);
    }
    let model = match &args.answerability_model {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the answerability model {}", path.display()))?;
            crate::answerable::Model::parse(&text)
                .with_context(|| format!("in {}", path.display()))?
        }
        None => crate::answerable::Model::builtin().context("the built-in answerability model")?,
    };
    Ok(Some(model))
}

pub fn home() -> Result<MedlitHome> {
    MedlitHome::from_env().context("locating MEDLIT_HOME")
}

pub fn manifest(arg: &ManifestArg) -> Result<DataManifest> {
    match &arg.manifest {
        Some(p) => DataManifest::load(p).with_context(|| format!("loading {}", p.display())),
        None => DataManifest::embedded().context("loading the built-in data manifest"),
    }
}

pub fn index_dir(arg: &IndexDirArg) -> Result<PathBuf> {
    match &arg.index {
        Some(d) => Ok(d.clone()),
        None => Ok(home()?.index()),
    }
}

/// The fetched corpus files in manifest order; an error that says how to fetch them if absent.
pub fn corpus_files(manifest: &DataManifest) -> Result<Vec<PathBuf>> {
    let assets = home()?.assets();
    if !assets_present(manifest, &assets, &[AssetKind::Corpus]) {
        bail!(
            "the corpus is not fetched (looked in {}); run `medlit fetch --only corpus` first, or name the files to index",
            assets.display()
        );
    }
    Ok(manifest
        .corpus_files()
        .into_iter()
        .map(|f| assets.join(&f.dest))
        .collect())
}

/// The embedder and HNSW settings for a dense build, with asset paths from the manifest.
pub fn dense_options(
    manifest: &DataManifest,
    args: &crate::cli::EmbedArgs,
) -> Result<medlit_indexer::DenseOptions> {
    let device = crate::generate::device::parse(&args.embed_device)
        .with_context(|| format!("--embed-device {}", args.embed_device))?;
    let encoder = match (device.is_cpu(), args.encoder) {
        (true, e) => e.resolve(),
        (false, crate::cli::EncoderArg::Auto | crate::cli::EncoderArg::F32) => {
            crate::cli::EncoderArg::F32
        }
        (false, other) => bail!(
            "--embed-device {} runs the f32 encoder; --encoder {} runs on the CPU only (drop --encoder, or say --encoder f32)",
            args.embed_device,
            format!("{other:?}").to_lowercase()
        ),
    };
    let embedder = match encoder {
        crate::cli::EncoderArg::F32 => EncoderConfig::Candle(candle_config(
            manifest,
            args.embed_batch
                .unwrap_or(if device.is_cpu() { 16 } else { 128 }),
            args.max_tokens,
            device,
        )?),
        crate::cli::EncoderArg::Int8 | crate::cli::EncoderArg::Auto => {
            EncoderConfig::Int8(int8_config(
                manifest,
                args.embed_threads,
                args.embed_batch.unwrap_or(16),
                args.max_tokens,
            )?)
        }
        crate::cli::EncoderArg::Onnx => EncoderConfig::Onnx(onnx_config(
            manifest,
            args.embed_threads,
            args.embed_sessions,
            args.embed_batch.unwrap_or(1),
            args.max_tokens,
        )?),
    };
    Ok(medlit_indexer::DenseOptions {
        embedder,
        params: medlit_indexer::dense::HnswParams {
            m: args.hnsw_m,
            ef_construction: args.ef_construction,
            ef_search: args.ef_search,
            segment_rows: usize::try_from(args.segment_rows).unwrap_or(usize::MAX),
        },
    })
}

/// The id an index built by medlit's int8 encoder records (with the weights' sha256).
pub const INT8_ENCODER_ID: &str = "all-minilm-l6-v2/medlit-int8";

/// Where the fetched f32 MiniLM weights and tokenizer are, for medlit's int8 encoder.
pub fn int8_config(
    manifest: &DataManifest,
    threads: usize,
    batch_size: usize,
    max_tokens: usize,
) -> Result<Int8Config> {
    let kinds = [AssetKind::EncoderWeights, AssetKind::Tokenizer];
    let assets = home()?.assets();
    if !assets_present(manifest, &assets, &kinds) {
        bail!(
            "the encoder's weights are not fetched (looked in {}); run `medlit fetch --only encoder-weights --only tokenizer`",
            assets.display()
        );
    }
    let file = manifest
        .of_kind(AssetKind::EncoderWeights)
        .flat_map(|a| a.files.iter())
        .next()
        .context("the manifest lists no encoder weights")?;
    let path = assets.join(&file.dest);
    Ok(Int8Config {
        model_dir: path
            .parent()
            .context("encoder weights path has no folder")?
            .to_path_buf(),
        id: INT8_ENCODER_ID.to_string(),
        sha256: file.sha256.clone(),
        max_tokens,
        threads,
        batch_size,
        precision: Default::default(),
    })
}

/// The id an index built by the f32 candle encoder (CPU or GPU) records.
pub const F32_ENCODER_ID: &str = "all-minilm-l6-v2/medlit-f32";

/// The f32 encoder on candle: the same weights and tokenizer as the int8 one, on `device`.
pub fn candle_config(
    manifest: &DataManifest,
    batch_size: usize,
    max_tokens: usize,
    device: crate::generate::Device,
) -> Result<CandleConfig> {
    let int8 = int8_config(manifest, 1, batch_size, max_tokens)?;
    Ok(CandleConfig {
        model_dir: int8.model_dir,
        id: F32_ENCODER_ID.to_string(),
        sha256: int8.sha256,
        max_tokens,
        batch_size,
        device,
    })
}

/// Every encoder this build can load, for `max_tokens` and `threads`: an index is opened with
/// the one it records (one a GPU built is queried with the same f32 encoder on the CPU).
pub fn encoders(manifest: &DataManifest, threads: usize, max_tokens: usize) -> Vec<EncoderConfig> {
    let mut out = Vec::new();
    if let Ok(c) = int8_config(manifest, threads, 16, max_tokens) {
        out.push(EncoderConfig::Int8(c));
    }
    if let Ok(c) = candle_config(manifest, 16, max_tokens, crate::generate::Device::Cpu) {
        out.push(EncoderConfig::Candle(c));
    }
    if let Ok(c) = onnx_config(manifest, threads, 1, 1, max_tokens) {
        out.push(EncoderConfig::Onnx(c));
    }
    out
}

/// Where the fetched embedding model, tokenizer and ONNX Runtime are.
pub fn onnx_config(
    manifest: &DataManifest,
    threads: usize,
    sessions: usize,
    batch_size: usize,
    max_tokens: usize,
) -> Result<medlit_indexer::embed::OnnxConfig> {
    let kinds = [
        AssetKind::EmbeddingModel,
        AssetKind::Tokenizer,
        AssetKind::Runtime,
    ];
    let assets = home()?.assets();
    if !assets_present(manifest, &assets, &kinds) {
        bail!(
            "the embedding model is not fetched (looked in {}); run `medlit fetch --only embedding-model --only tokenizer --only runtime`",
            assets.display()
        );
    }
    let first = |kind| {
        manifest
            .of_kind(kind)
            .flat_map(|a| a.files.iter().map(move |f| (a, f)))
            .next()
    };
    let (model_asset, model_file) =
        first(AssetKind::EmbeddingModel).context("the manifest lists no embedding model")?;
    let (_, runtime_file) =
        first(AssetKind::Runtime).context("the manifest lists no ONNX Runtime library")?;
    let model_path = assets.join(&model_file.dest);
    Ok(medlit_indexer::embed::OnnxConfig {
        model_dir: model_path
            .parent()
            .context("embedding model path has no folder")?
            .to_path_buf(),
        runtime_lib: assets.join(&runtime_file.dest),
        id: model_asset.name.clone(),
        sha256: model_file.sha256.clone(),
        max_tokens,
        threads,
        sessions,
        batch_size,
    })
}

/// The generator model file: `--model PATH`, else the fetched default of the manifest.
pub fn generator_path(arg: Option<&std::path::Path>) -> Result<PathBuf> {
    if let Some(p) = arg {
        if !p.is_file() {
            bail!("model file {} does not exist", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let manifest = DataManifest::embedded().context("loading the built-in data manifest")?;
    let assets = home()?.assets();
    if !assets_present(&manifest, &assets, &[AssetKind::Generator]) {
        bail!(
            "the answer model is not fetched (looked in {}); run `medlit fetch --only generator`",
            assets.display()
        );
    }
    let file = manifest
        .of_kind(AssetKind::Generator)
        .flat_map(|a| a.files.iter())
        .next()
        .context("the manifest lists no generator model")?;
    Ok(assets.join(&file.dest))
}

/// The MiniLM query embedder (medlit's int8 encoder, one thread: a question is a few dozen
/// tokens), shared by the safety screen and dense retrieval.
pub fn query_embedder() -> Result<std::sync::Arc<medlit_indexer::embed::SharedEmbedder>> {
    let cfg = int8_config(&manifest(&ManifestArg::default())?, 1, 1, 256)
        .context("the safety classifier needs the embedding model")?;
    let embedder = medlit_indexer::minilm::MiniLmInt8::load(&cfg)
        .context("loading the embedding model for the safety classifier")?;
    Ok(std::sync::Arc::new(
        medlit_indexer::embed::SharedEmbedder::new(Box::new(embedder)),
    ))
}

/// The policy: `--safety-policy FILE`, else the built-in one.
pub fn policy(path: Option<&std::path::Path>) -> Result<Policy> {
    Ok(match path {
        Some(p) => Policy::load(p)?,
        None => Policy::builtin()?,
    })
}

/// The safety screen: the policy (built in, or a file) and its classifier, over the query
/// embedder of `retriever`'s dense half when it has one (one model, each question embedded
/// once), else a query embedder of its own.
pub fn screener(
    policy_file: Option<&std::path::Path>,
    retriever: Option<&crate::retrieve::hybrid::Retriever>,
) -> Result<Screener> {
    let policy = policy(policy_file)?;
    // One model for both when the index's encoder is the one the classifier was trained on
    // (an index built by another encoder keeps its own for retrieval).
    let embedder = match retriever.and_then(|r| r.dense.as_ref()) {
        Some(d) if d.embedder().info().sha256 == policy.classifier.embedding_sha256 => d.embedder(),
        _ => query_embedder()?,
    };
    Screener::new(policy, embedder).context("loading the safety classifier")
}

/// Opens the index for searching; the dense half only when `need_dense` and present.
pub fn open_retriever(
    dir: &std::path::Path,
    need_dense: bool,
    fusion: &FusionArgs,
) -> Result<Retriever> {
    let bm25 = Bm25Searcher::open(dir)
        .with_context(|| format!("opening the index in {}", dir.display()))?;
    let dense = if need_dense && bm25.manifest().dense.is_some() {
        let candidates = encoders(
            &manifest(&ManifestArg::default())?,
            fusion.query_threads,
            256,
        );
        let mut d = DenseSearcher::open(dir, &candidates).context("opening the dense index")?;
        d.set_search_ef(fusion.search_ef);
        Some(d)
    } else {
        None
    };
    Ok(Retriever {
        bm25,
        dense,
        fusion: Fusion {
            rrf_k: fusion.rrf_k,
            depth: fusion.depth,
            dense_weight: fusion.dense_weight,
        },
        remote: None,
    })
}

/// Sets the CPU threads of generation (candle reads RAYON_NUM_THREADS; rayon's pool too).
pub fn set_threads(n: Option<usize>) {
    let n = n
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    // Before any thread exists: set_var is only unsound with concurrent readers.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// The generator the arguments name: a remote server (`--llm-endpoint`), a GGUF file, or the
/// fetched default model.
pub fn load_generator(args: &GenerateArgs) -> Result<Box<dyn Generator + Send>> {
    if let Some(endpoint) = &args.llm_endpoint {
        let model = args
            .llm_model
            .as_deref()
            .context("--llm-model names the model on the server")?;
        let remote = crate::generate::remote::RemoteChat::new(
            endpoint,
            model,
            args.llm_context,
            std::time::Duration::from_secs(args.llm_timeout.max(1)),
        );
        return Ok(Box::new(if args.llm_no_stream {
            remote.whole_replies()
        } else {
            remote
        }));
    }
    let device = crate::generate::device::parse(&args.device)?;
    if let Some(dir) = args.model.as_deref().filter(|p| HfChat::is_folder(p)) {
        return Ok(Box::new(load_folder(dir, args, &device)?));
    }
    Ok(Box::new(load_gguf(args, &device)?))
}

/// Loads a Hugging Face model folder, after saying what it will take and checking it fits.
pub fn load_folder(
    dir: &std::path::Path,
    args: &GenerateArgs,
    device: &crate::generate::Device,
) -> Result<HfChat> {
    let cfg = crate::generate::gemma4::Config::load(&dir.join("config.json"))?;
    let dtype = crate::generate::device::dtype_for(device, args.dtype.map(Into::into));
    let context = args.context.clamp(1, cfg.max_position_embeddings);
    let plan = crate::generate::device::check_fits(&cfg, dtype, context, device)?;
    eprintln!("{plan}");
    let t = Instant::now();
    let g = HfChat::load(dir, context, dtype, device)
        .with_context(|| format!("loading the model folder {}", dir.display()))?;
    tracing::info!(
        "loaded {} in {:.2} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(g)
}

/// Loads the GGUF model the arguments name (the fetched default when none).
pub fn load_gguf(args: &GenerateArgs, device: &crate::generate::Device) -> Result<GemmaGguf> {
    let path = generator_path(args.model.as_deref())?;
    let t = Instant::now();
    let g = GemmaGguf::load(&path, args.context, device)
        .with_context(|| format!("loading the model {}", path.display()))?;
    tracing::info!(
        "loaded {} in {:.2} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(g)
}

pub fn mode_of(retriever: &Retriever, arg: SearchModeArg) -> Mode {
    match arg {
        SearchModeArg::Auto => retriever.default_mode(),
        SearchModeArg::Bm25 => Mode::Bm25,
        SearchModeArg::Dense => Mode::Dense,
        SearchModeArg::Hybrid => Mode::Hybrid,
    }
}
