//! The index folder on disk: `manifest.json` names the live generation (`gen-NNNNNN/`), and a
//! build writes a new generation beside it, then switches the manifest by atomic rename. A
//! crash at any point leaves either the old or the new manifest, each naming a complete index.
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::IndexError;

/// Bumped when the on-disk layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 6;
const MANIFEST: &str = "manifest.json";
/// A rebuild's progress while the old index stays live.
const STAGING: &str = "manifest.staging.json";

/// What `manifest.json` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexManifest {
    pub format_version: u32,
    pub generation: u64,
    pub created_unix: u64,
    pub medlit_version: String,
    /// The BM25 (tantivy) folder, relative to the index folder.
    pub bm25_dir: String,
    pub inputs: Vec<InputRecord>,
    pub counts: Counts,
    /// The dense half, when it was built.
    #[serde(default)]
    pub dense: Option<DenseSummary>,
    /// Size and sha256 of every file of the generation, by path relative to the index folder
    /// (what `medlit verify` checks; empty in manifests of older builds).
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, FileSum>,
    /// Files of an interrupted `medlit index` run not applied yet, in order: the index is whole
    /// but holds only the files in `inputs`; running the same command again resumes.
    #[serde(default)]
    pub pending: Vec<PendingInput>,
}

/// An input file a run still has to apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingInput {
    pub name: String,
    pub sha256: String,
}

/// Size and sha256 of one index file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSum {
    pub bytes: u64,
    pub sha256: String,
}

/// Size and sha256 of every file below `dir`, keyed by path relative to `root`.
pub fn checksums(
    root: &Path,
    dir: &Path,
) -> Result<std::collections::BTreeMap<String, FileSum>, IndexError> {
    checksums_reusing(root, dir, None)
}

/// As [`checksums`], but a file that is a hard link of a file of the `previous` generation
/// (same device and inode: files are never modified in place) takes its recorded sum instead
/// of being read again, so a commit costs what it wrote, not the size of the index.
pub fn checksums_reusing(
    root: &Path,
    dir: &Path,
    previous: Option<(&Path, &std::collections::BTreeMap<String, FileSum>)>,
) -> Result<std::collections::BTreeMap<String, FileSum>, IndexError> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(|e| IndexError::io("listing", &d, e))? {
            let path = e.map_err(|e| IndexError::io("listing", &d, e))?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let reused = previous.and_then(|(prev_dir, sums)| {
                let inner = path.strip_prefix(dir).ok()?;
                let old = prev_dir.join(inner);
                let (a, b) = (fs::metadata(&path).ok()?, fs::metadata(&old).ok()?);
                if a.dev() != b.dev() || a.ino() != b.ino() {
                    return None;
                }
                let old_rel = old
                    .strip_prefix(root)
                    .ok()?
                    .to_string_lossy()
                    .replace('\\', "/");
                sums.get(&old_rel).filter(|s| s.bytes == a.len()).cloned()
            });
            let sum = match reused {
                Some(s) => s,
                None => {
                    let (sha256, bytes) = medlit_corpus::digest::sha256_file(&path)
                        .map_err(|e| IndexError::io("checksumming", &path, e))?;
                    FileSum { bytes, sha256 }
                }
            };
            out.insert(rel, sum);
        }
    }
    Ok(out)
}

/// Where the dense half is and what made it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DenseSummary {
    /// Relative to the index folder.
    pub dir: String,
    pub model: crate::embed::ModelInfo,
    /// Passages written, tombstoned ones included.
    pub rows: u64,
    pub params: crate::dense::HnswParams,
    /// Passages whose PMID was replaced or deleted since (never returned; `medlit compact`
    /// drops them).
    #[serde(default)]
    pub dead: u64,
    /// Passages in the HNSW graph; the rest are searched exactly.
    #[serde(default)]
    pub graph_rows: u64,
    /// Graph segments over those passages (0 in indexes from before segments: read `dense.json`).
    #[serde(default)]
    pub graph_segments: u64,
}

/// One input file as it was when indexed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputRecord {
    pub path: String,
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    pub records_read: u64,
    pub articles: u64,
    pub deletions: u64,
    pub rejected: u64,
}

/// The counts of a build, as `medlit index --json` prints them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// `PubmedArticle` records read, rejected ones included.
    pub records_read: u64,
    /// Distinct PMIDs in the index.
    pub indexed: u64,
    /// Indexed PMIDs with a non-empty abstract.
    pub with_abstract: u64,
    /// Records that replaced an earlier record with the same PMID.
    pub replaced: u64,
    /// PMIDs listed in `DeleteCitation` blocks.
    pub deleted: u64,
    /// Records skipped as malformed.
    pub rejected: u64,
}

/// An index folder.
#[derive(Debug, Clone)]
pub struct IndexDir {
    root: PathBuf,
}

impl IndexDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn generation_dir(&self, generation: u64) -> PathBuf {
        self.root.join(generation_name(generation))
    }

    /// The manifest, or `None` when the folder holds no index yet.
    pub fn read_manifest(&self) -> Result<Option<IndexManifest>, IndexError> {
        let path = self.root.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IndexError::io("reading index manifest", path, e)),
        };
        let invalid = |e: serde_json::Error| IndexError::Index {
            dir: self.root.clone(),
            reason: format!("{MANIFEST} is not valid: {e}"),
        };
        // The version decides how the rest is read, so it is checked on its own first.
        let raw: serde_json::Value = serde_json::from_str(&text).map_err(invalid)?;
        let version = raw.get("format_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(IndexError::Index {
                dir: self.root.clone(),
                reason: format!(
                    "index format {} is not supported by this medlit (format {FORMAT_VERSION}); rebuild it with `medlit index --replace`",
                    version.map_or("unknown".to_string(), |v| v.to_string())
                ),
            });
        }
        let m: IndexManifest = serde_json::from_value(raw).map_err(invalid)?;
        Ok(Some(m))
    }

    /// The manifest of an existing index; a clear error when there is none.
    pub fn manifest(&self) -> Result<IndexManifest, IndexError> {
        let dir = self.root.display();
        self.read_manifest()?.ok_or_else(|| IndexError::Index {
            dir: self.root.clone(),
            reason: if self.root.is_dir() {
                format!("no index here (no manifest.json); build one with `medlit index --index {dir}`, or name another folder with --index DIR")
            } else {
                format!("no such folder; build an index there with `medlit index --index {dir}`, or name another folder with --index DIR")
            },
        })
    }

    /// The generation the live manifest names, read from its text whatever its format.
    fn live_generation(&self) -> Option<u64> {
        fs::read_to_string(self.root.join(MANIFEST))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("generation").and_then(|g| g.as_u64()))
    }

    /// The generation number for a new build: one past every generation this folder has
    /// seen, whether or not its manifest is of a format this medlit reads (a rebuild is how
    /// an old index is replaced).
    pub fn next_generation(&self) -> u64 {
        let from_manifest = self.live_generation().unwrap_or(0);
        let from_dirs = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("gen-"))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .max()
            .unwrap_or(0);
        from_manifest.max(from_dirs) + 1
    }

    /// The live BM25 folder.
    pub fn bm25_dir(&self, m: &IndexManifest) -> PathBuf {
        self.root.join(&m.bm25_dir)
    }

    /// Takes the writer's lock: one build at a time per index folder.
    pub fn lock(&self) -> Result<File, IndexError> {
        fs::create_dir_all(&self.root)
            .map_err(|e| IndexError::io("creating index folder", &self.root, e))?;
        let path = self.root.join(".lock");
        let f = File::create(&path).map_err(|e| IndexError::io("creating lock", &path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(fs::TryLockError::WouldBlock) => Err(IndexError::Index {
                dir: self.root.clone(),
                reason: "another medlit process is writing this index".into(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(IndexError::io("locking", path, e)),
        }
    }

    /// Makes `m` the live manifest (write, fsync, rename, fsync the folder), then removes the
    /// generations it does not name and any staging manifest.
    pub fn commit(&self, m: &IndexManifest) -> Result<(), IndexError> {
        self.write_manifest(m, MANIFEST)?;
        let _ = fs::remove_file(self.root.join(STAGING));
        self.remove_other_generations(&[m.generation]);
        Ok(())
    }

    /// Records `m` as the staging manifest of a rebuild: the live manifest and its generation
    /// stay as they are; generations named by neither are removed.
    pub fn commit_staging(&self, m: &IndexManifest) -> Result<(), IndexError> {
        self.write_manifest(m, STAGING)?;
        let mut keep = vec![m.generation];
        keep.extend(self.live_generation());
        self.remove_other_generations(&keep);
        Ok(())
    }

    fn write_manifest(&self, m: &IndexManifest, name: &str) -> Result<(), IndexError> {
        // The generation's folders reach the disk before the manifest that names them.
        let gen_dir = self.generation_dir(m.generation);
        if gen_dir.is_dir() {
            sync_dir(&gen_dir)?;
        }
        sync_dir(&self.root)?;
        let tmp = self.root.join(format!("{name}.tmp"));
        let dest = self.root.join(name);
        let text = serde_json::to_vec_pretty(m).map_err(|e| IndexError::Index {
            dir: self.root.clone(),
            reason: format!("cannot serialise manifest: {e}"),
        })?;
        let mut f = File::create(&tmp).map_err(|e| IndexError::io("writing", &tmp, e))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(|e| IndexError::io("writing", &tmp, e))?;
        fs::rename(&tmp, &dest).map_err(|e| IndexError::io("switching manifest", &dest, e))?;
        sync_dir(&self.root)
    }

    /// Best effort: an old generation left behind wastes space but never breaks the index.
    fn remove_other_generations(&self, keep: &[u64]) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        let keep: Vec<String> = keep.iter().map(|&g| generation_name(g)).collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("gen-") && !keep.contains(&name) {
                if let Err(err) = fs::remove_dir_all(e.path()) {
                    tracing::warn!(dir = %e.path().display(), %err, "could not remove an old index generation");
                }
            }
        }
    }
}

fn generation_name(generation: u64) -> String {
    format!("gen-{generation:06}")
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IndexError::io("syncing folder", dir, e))
}
