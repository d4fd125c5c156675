use std::path::PathBuf;

/// Errors of ingestion and index building. Each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{file}: {reason}")]
    BadFile { file: PathBuf, reason: String },

    #[error("{file}: XML error at byte {offset}: {reason}")]
    Xml {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error("{context}: {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("index {dir}: {reason}")]
    Index { dir: PathBuf, reason: String },

    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

impl IndexError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        IndexError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
