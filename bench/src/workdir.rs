//! The folder a benchmark writes its corpora, indexes and shards in, and clears again.
//!
//! The default, `$MEDLIT_HOME/bench/NAME`, is medlit's own. A `--work` folder may be the
//! user's: it is taken only when it is new, empty, or marked by an earlier benchmark run,
//! because every benchmark replaces or deletes the folders it writes there.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The file that marks a `--work` folder as written by a benchmark.
const MARK: &str = ".medlit-bench";

/// `--work`, else `$MEDLIT_HOME/bench/NAME`, created; a `--work` folder that holds anything
/// and carries no mark is refused before any benchmark work starts.
pub(crate) fn work_dir(work: Option<&Path>, name: &str) -> Result<PathBuf> {
    let Some(work) = work else {
        let dir = medlit::cli::setup::home()?.root().join("bench").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok(dir);
    };
    let mark = work.join(MARK);
    if mark.is_file() {
        return Ok(work.to_path_buf());
    }
    if work.exists() {
        let mut entries = std::fs::read_dir(work)
            .with_context(|| format!("reading --work {}", work.display()))?;
        if let Some(first) = entries.next() {
            let first = first.with_context(|| format!("reading --work {}", work.display()))?;
            bail!(
                "--work {} already holds {:?} and no `medlit bench` run made it: benchmarks \
                 replace the folders they write there, so it is left as it is; name a new or \
                 empty folder",
                work.display(),
                first.file_name()
            );
        }
    }
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    std::fs::write(
        &mark,
        "written by `medlit bench`: the folders beside this file are its work and are \
         replaced by its next run\n",
    )
    .with_context(|| format!("writing {}", mark.display()))?;
    Ok(work.to_path_buf())
}
