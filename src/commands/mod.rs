//! One module per subcommand, plus what they share: where data lives and which manifest to use.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use medlit_corpus::{fetch::assets_present, AssetKind, DataManifest, MedlitHome};

use crate::cli::{IndexDirArg, ManifestArg};
use crate::safety::{Policy, Screener};

pub mod ask;
pub mod bench;
pub mod compact;
pub mod demo;
pub mod eval;
pub mod export;
pub mod fetch;
pub mod index;
pub mod policy;
pub mod search;
pub mod serve;
pub mod synth;
pub mod verify;

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
    Ok(medlit_indexer::DenseOptions {
        embedder: onnx_config(
            manifest,
            args.embed_threads,
            args.embed_sessions,
            args.embed_batch,
            args.max_tokens,
        )?,
        params: medlit_indexer::dense::HnswParams {
            m: args.hnsw_m,
            ef_construction: args.ef_construction,
            ef_search: args.ef_search,
        },
    })
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

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// crash leaves the old file or the new one, never half of either.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Human-readable byte count.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The MiniLM query embedder (2 threads, one session), shared by the safety screen and dense
/// retrieval.
pub fn query_embedder() -> Result<std::sync::Arc<medlit_indexer::embed::SharedEmbedder>> {
    let cfg = onnx_config(&manifest(&ManifestArg { manifest: None })?, 2, 1, 1, 256)
        .context("the safety classifier needs the embedding model")?;
    let embedder = medlit_indexer::embed::OnnxEmbedder::load(&cfg)
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
    let embedder = match retriever.and_then(|r| r.dense.as_ref()) {
        Some(d) => d.embedder(),
        None => query_embedder()?,
    };
    Screener::new(policy, embedder).context("loading the safety classifier")
}

/// The error and its causes on one line; a cause whose text its effect already quotes (an I/O
/// error shown with its path, say) is not repeated.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line
}
