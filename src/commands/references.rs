//! `--export FORMAT FILE` of `search` and `ask`: the records of a list of PMIDs written for a
//! reference manager, checked before the work starts and written whole or not at all.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::write_atomically;
use crate::cli::ExportRefsArgs;
use crate::reference::{self, Format};
use crate::retrieve::bm25::Bm25Searcher;

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct ExportTarget {
    pub format: Format,
    pub path: PathBuf,
}

impl ExportTarget {
    /// The target the flags name, if any; a bad format, or a file that exists without
    /// `--overwrite`, is an error now rather than after a search or an answer.
    pub fn from_args(args: &ExportRefsArgs) -> Result<Option<Self>> {
        let Some(v) = &args.export else {
            return Ok(None);
        };
        let [format, path] = v.as_slice() else {
            bail!("--export takes a format and a file: --export ris refs.ris");
        };
        let format = match format.parse::<Format>() {
            Ok(f) if Format::EXPORTS.contains(&f) => f,
            _ => bail!(
                "--export: {format:?} is not an export format: ris, bibtex, csl-json or medline"
            ),
        };
        let path = PathBuf::from(path);
        if path.is_dir() {
            bail!("--export: {} is a folder, not a file", path.display());
        }
        // Checked now: the temporary file the export is written through goes beside it.
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent.filter(|d| !d.is_dir()) {
            bail!("--export: the folder {} does not exist", dir.display());
        }
        if path.exists() && !args.overwrite {
            bail!(
                "--export: {} exists; pass --overwrite to replace it",
                path.display()
            );
        }
        Ok(Some(ExportTarget { format, path }))
    }

    /// Writes the records of a list of results, in rank order, and says so on stderr.
    pub fn write_hits(&self, bm25: &Bm25Searcher, hits: &[crate::retrieve::Hit]) -> Result<()> {
        let pmids: Vec<u64> = hits.iter().map(|h| h.pmid).collect();
        let n = self.write(bm25, &pmids)?;
        eprintln!(
            "exported {n} references ({}) to {}",
            self.format.name(),
            self.path.display()
        );
        Ok(())
    }

    /// Writes the records of `pmids` (in order, each once); returns how many were written.
    pub fn write(&self, bm25: &Bm25Searcher, pmids: &[u64]) -> Result<usize> {
        let mut seen = std::collections::HashSet::new();
        let mut articles = Vec::new();
        for &pmid in pmids {
            if !seen.insert(pmid) {
                continue;
            }
            if let Some(r) = bm25
                .record(pmid)
                .with_context(|| format!("reading PMID {pmid} for the export"))?
            {
                articles.push(r.article);
            }
        }
        let text = reference::write_records(self.format, &articles);
        write_atomically(&self.path, text.as_bytes())
            .with_context(|| format!("writing the export {}", self.path.display()))?;
        Ok(articles.len())
    }
}
