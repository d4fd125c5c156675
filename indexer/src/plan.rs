//! Which input files a run applies, and on top of which committed state: a fresh build starts
//! from nothing, a resumed build from the interrupted run's last commit, an update from the
//! live index (skipping files already applied and refusing files out of order).
use crate::build::{BuildMode, BuildOptions};
use crate::layout::{IndexDir, IndexManifest};
use crate::IndexError;

pub(crate) struct Plan {
    pub base: Option<IndexManifest>,
    /// Indexes into the inputs, in the order they are applied.
    pub todo: Vec<usize>,
    pub skipped: Vec<String>,
    pub resumed_after: Option<usize>,
    /// Whether commits record the files still to apply (builds do, so they can be resumed;
    /// updates do not need to: re-running one skips what it applied).
    pub keep_pending: bool,
    /// Whether the files before the last are committed to the staging manifest, so the live
    /// index stays until the new one is complete (a rebuild over an existing index).
    pub staged: bool,
}

/// The inputs of an index, for a message: "a.xml.gz, b.xml.gz" (the first few).
fn input_names(m: &IndexManifest) -> String {
    let names: Vec<&str> = m.inputs.iter().map(|i| i.name.as_str()).collect();
    match names.len() {
        0 => "no files".into(),
        n if n <= 3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

/// `sums`: per input, its file name, sha256 and size.
pub(crate) fn plan(
    dir: &IndexDir,
    opts: &BuildOptions,
    sums: &[(String, String, u64)],
) -> Result<Plan, IndexError> {
    let refuse = |reason: String| IndexError::Index {
        dir: dir.root().to_path_buf(),
        reason,
    };
    let all = || (0..sums.len()).collect::<Vec<_>>();
    let choices = "pass --update to add these files to it, or --replace to rebuild it from them alone (the current index stays searchable until the new one is complete)";
    match opts.mode {
        BuildMode::Rebuild => {
            let live = dir.root().join("manifest.json").exists();
            Ok(Plan {
                staged: live,
                ..fresh(all())
            })
        }
        BuildMode::Build => {
            let cur = match dir.read_manifest() {
                Ok(None) => return Ok(fresh(all())),
                Ok(Some(m)) => m,
                // An unreadable or older-format manifest is not replaced by a slip either.
                Err(e) => {
                    return Err(refuse(format!(
                        "the folder holds an index this run cannot read ({e}); pass --replace to rebuild it from these files (the old one stays until the new one is complete)"
                    )))
                }
            };
            let done = cur.inputs.len();
            let same_inputs = |n: usize| {
                cur.inputs
                    .iter()
                    .zip(sums)
                    .take(n)
                    .all(|(i, s)| i.name == s.0 && i.sha256 == s.1)
            };
            if cur.pending.is_empty()
                && done == sums.len()
                && same_inputs(done)
                && same_dense(&cur, opts)
            {
                // Built from exactly these files already: nothing to do (--restart rebuilds).
                return Ok(Plan {
                    skipped: sums.iter().map(|s| s.0.clone()).collect(),
                    base: Some(cur),
                    todo: Vec::new(),
                    resumed_after: None,
                    keep_pending: true,
                    staged: false,
                });
            }
            // An interrupted run of these files, or a complete index of their first files
            // (more files named after them): go on from its last commit, losing nothing.
            let resumable = done < sums.len() && same_inputs(done) && same_dense(&cur, opts);
            if !resumable && !same_dense(&cur, opts) && done == sums.len() && same_inputs(done) {
                let (has, wants) = match (&cur.dense, &opts.dense) {
                    (None, Some(_)) => ("without a dense half", "with one"),
                    (Some(_), None) => ("with a dense half", "without it"),
                    _ => ("with another embedding model", "with this one"),
                };
                return Err(refuse(format!(
                    "the folder holds an index of {} citations from these files, built {has}; pass --replace to rebuild it {wants} (the current index stays searchable until the new one is complete)",
                    cur.counts.indexed
                )));
            }
            if !resumable {
                let what = if cur.pending.is_empty() {
                    "an index"
                } else {
                    "an unfinished index"
                };
                return Err(refuse(format!(
                    "the folder holds {what} of {} citations built from {}; building it from other files would replace it: {choices}",
                    cur.counts.indexed,
                    input_names(&cur)
                )));
            }
            tracing::info!(
                applied = done,
                left = sums.len() - done,
                "resuming an interrupted build"
            );
            Ok(Plan {
                base: Some(cur),
                todo: (done..sums.len()).collect(),
                skipped: Vec::new(),
                resumed_after: Some(done),
                keep_pending: true,
                staged: false,
            })
        }
        BuildMode::Update { force } => {
            let cur = dir.manifest()?;
            match (&cur.dense, &opts.dense) {
                (Some(_), None) => {
                    return Err(refuse(
                        "the index has a dense part: an update must embed the new passages too"
                            .into(),
                    ))
                }
                // A keyword-only index gains its dense half: the first file applied embeds
                // what is already live, as well as its own articles.
                (None, Some(_)) => {}
                _ if !same_dense(&cur, opts) => {
                    return Err(refuse(
                        "the index's dense part was built with another embedding model: rebuild it"
                            .into(),
                    ))
                }
                _ => {}
            }
            if let (Some(next), false) = (cur.pending.first(), force) {
                return Err(refuse(format!(
                    "the index is incomplete: the `medlit index` run that built it stopped before {} ({} files left); run it again to finish (or pass --force)",
                    next.name,
                    cur.pending.len()
                )));
            }
            let mut todo = Vec::new();
            let mut skipped = Vec::new();
            let mut newest: Option<(PubmedFileKey, String)> = cur
                .inputs
                .iter()
                .filter_map(|i| PubmedFileKey::of(&i.name).map(|k| (k, i.name.clone())))
                .max();
            let mut seen: Vec<(&str, &str)> = cur
                .inputs
                .iter()
                .map(|i| (i.name.as_str(), i.sha256.as_str()))
                .collect();
            for (i, (name, sha, _)) in sums.iter().enumerate() {
                if seen.contains(&(name.as_str(), sha.as_str())) {
                    skipped.push(name.clone());
                    continue;
                }
                if let (Some((_, old)), false) =
                    (seen.iter().find(|(n, _)| *n == name.as_str()), force)
                {
                    return Err(refuse(format!(
                        "{name} was applied before with sha256 {old}, and this file's is {sha}: a changed file is refused (pass --force to apply it anyway)"
                    )));
                }
                match (PubmedFileKey::of(name), &newest) {
                    (Some(k), Some((nk, nname))) if k < *nk && !force => {
                        return Err(refuse(format!(
                            "{name} is older than {nname}, which is already applied: update files must be applied in order (pass --force to apply it anyway)"
                        )));
                    }
                    (Some(k), _) => {
                        if newest.as_ref().is_none_or(|(nk, _)| k > *nk) {
                            newest = Some((k, name.clone()));
                        }
                    }
                    (None, _) => tracing::warn!(
                        file = %name,
                        "not a PubMed file name (pubmedYYnNNNN): its order cannot be checked"
                    ),
                }
                seen.push((name, sha));
                todo.push(i);
            }
            Ok(Plan {
                base: Some(cur),
                todo,
                skipped,
                resumed_after: None,
                keep_pending: false,
                staged: false,
            })
        }
    }
}

fn fresh(todo: Vec<usize>) -> Plan {
    Plan {
        base: None,
        todo,
        skipped: Vec::new(),
        resumed_after: None,
        keep_pending: true,
        staged: false,
    }
}

/// Whether the index's dense half (or its absence) is what `opts` asks for.
fn same_dense(m: &IndexManifest, opts: &BuildOptions) -> bool {
    match (&m.dense, &opts.dense) {
        (None, None) => true,
        (Some(d), Some(o)) => d.model.sha256 == o.embedder.sha256(),
        _ => false,
    }
}

/// The order of NLM's files: `pubmed25n1275.xml.gz` is release year 25, file 1275. Baseline
/// and update files share one numbering within a release; a later release's baseline comes
/// after all of an earlier release's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PubmedFileKey {
    pub year: u32,
    pub number: u32,
}

impl PubmedFileKey {
    pub fn of(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("pubmed")?;
        let (year, rest) = rest.split_once('n')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if year.len() != 2 || digits.is_empty() || !rest[digits.len()..].starts_with(".xml") {
            return None;
        }
        Some(Self {
            year: year.parse().ok()?,
            number: digits.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubmed_file_names_order_by_release_then_number() {
        let k = |n| PubmedFileKey::of(n).unwrap();
        assert_eq!(
            k("pubmed25n1275.xml.gz"),
            PubmedFileKey {
                year: 25,
                number: 1275
            }
        );
        assert!(k("pubmed20n0014.xml.gz") < k("pubmed21n1298.xml.gz"));
        assert!(k("pubmed25n0999.xml") < k("pubmed25n1000.xml.gz"));
        assert!(k("pubmed24n1300.xml.gz") < k("pubmed25n0001.xml.gz"));
        for bad in [
            "update.xml.gz",
            "pubmed25.xml",
            "pubmed2025n1.xml",
            "pubmed25nx.xml",
        ] {
            assert_eq!(PubmedFileKey::of(bad), None, "{bad}");
        }
    }
}
