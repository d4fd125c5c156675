use std::path::{Path, PathBuf};

use crate::CorpusError;

/// The folder that holds medlit's assets and default index.
#[derive(Debug, Clone)]
pub struct MedlitHome {
    root: PathBuf,
}

impl MedlitHome {
    /// `MEDLIT_HOME` if set and not empty, else `<platform data dir>/medlit`.
    pub fn from_env() -> Result<Self, CorpusError> {
        match std::env::var_os("MEDLIT_HOME") {
            Some(v) if !v.is_empty() => Ok(Self::at(PathBuf::from(v))),
            _ => dirs::data_dir()
                .map(|d| Self::at(d.join("medlit")))
                .ok_or(CorpusError::NoHome),
        }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where fetched assets are placed (`dest` paths of the manifest are relative to it).
    pub fn assets(&self) -> PathBuf {
        self.root.join("assets")
    }

    /// The default index folder.
    pub fn index(&self) -> PathBuf {
        self.root.join("index")
    }
}
