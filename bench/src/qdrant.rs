//! `medlit bench qdrant`: `medlit export qdrant`'s output loaded into Qdrant's own engine
//! (qdrant-edge, in-process, through its Python bindings) and queried with the request bodies
//! medlit sends a Qdrant server, against medlit's own retrieval on the same questions:
//! - dense: Qdrant's top-10 passages (its HNSW, and an exact scan) against medlit's exact top 10;
//! - sparse: the BM25 vectors under Qdrant's `idf` modifier, ranking passages (an article at
//!   its best passage), against medlit's BM25 over whole articles: source first, and agreement;
//! - hybrid: Qdrant's weighted RRF over both lists against medlit's hybrid.
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use medlit_corpus::datasets::read_qa;
use medlit_indexer::qdrant::{point_id, query_body, QueryShape};
use serde::{Deserialize, Serialize};

use crate::args::BenchQdrantArgs;
use crate::peer::{peer_json, peer_python, run_ok};
use medlit::cli::setup::open_retriever;
use medlit::commands::print_json;
use medlit::eval::retrieval::percentile;
use medlit::retrieve::hybrid::Mode;

pub const SHIM: &str = include_str!("../peers/qdrant_edge_shim.py");
pub const QDRANT_EDGE: &str = "qdrant-edge-py==0.9.0";

/// Passages asked of Qdrant for an article ranking (articles have several passages).
const PASSAGES: usize = 100;

#[derive(Debug, Serialize)]
struct DenseAgreement {
    /// Questions whose Qdrant top-10 passages are medlit's exact top 10 (as a set).
    equal_top10: f64,
    /// Mean share of medlit's exact top 10 in Qdrant's.
    overlap_at_10: f64,
}

#[derive(Debug, Serialize)]
struct RankAgreement {
    /// Questions whose source article medlit ranks first.
    medlit_source_first: f64,
    /// The same for Qdrant (articles ordered by their best passage).
    qdrant_source_first: f64,
    /// Questions where both put the same article first.
    same_first: f64,
    /// Questions where both put the source first, or both do not.
    source_first_agree: f64,
    medlit_source_in_10: f64,
    qdrant_source_in_10: f64,
}

#[derive(Debug, Serialize)]
struct DatasetReport {
    dataset: String,
    questions: usize,
    dense_hnsw: DenseAgreement,
    dense_exact: DenseAgreement,
    sparse_vs_bm25: RankAgreement,
    hybrid: RankAgreement,
    qdrant_ms_p50: f64,
}

#[derive(Debug, Serialize)]
struct QdrantBench {
    index: String,
    points: u64,
    load_seconds: Option<f64>,
    engine: &'static str,
    datasets: Vec<DatasetReport>,
}

#[derive(Deserialize)]
struct Loaded {
    points: u64,
    seconds: f64,
}

#[derive(Deserialize)]
struct Answer {
    points: Vec<Scored>,
    ms: f64,
}

#[derive(Deserialize)]
struct Scored {
    id: u64,
}

/// A Python with Qdrant's engine, and the shim written beside the work folder.
pub fn shim(python: &str, work: &Path) -> Result<(PathBuf, PathBuf)> {
    let py = peer_python(python, "qdrant-edge-0.9.0", &[QDRANT_EDGE], "qdrant_edge")?;
    let script = work.join("qdrant_edge_shim.py");
    std::fs::write(&script, SHIM).context("writing the qdrant-edge shim")?;
    Ok((py, script))
}

/// Exports the index (unless done for this generation) and loads it into a qdrant-edge shard;
/// returns the shard's folder, its points, and the load time when it was loaded now.
pub fn load_shard(
    index: &Path,
    work: &Path,
    py: &Path,
    script: &Path,
) -> Result<(PathBuf, u64, Option<f64>)> {
    let generation = medlit_indexer::IndexDir::new(index).manifest()?.generation;
    let export = work.join(format!("export-gen{generation:06}"));
    let shard = work.join(format!("shard-gen{generation:06}"));
    let done = shard.join("medlit-points");
    if done.exists() {
        let points = std::fs::read_to_string(&done)?.trim().parse()?;
        return Ok((shard, points, None));
    }
    if !export.join("collection.json").exists() {
        let _ = std::fs::remove_dir_all(&export);
        run_ok(
            Command::new(crate::medlit_exe()?)
                .args(["export", "qdrant", "--json", "--out"])
                .arg(&export)
                .arg("--index")
                .arg(index),
            "medlit export qdrant",
        )?;
    }
    let _ = std::fs::remove_dir_all(&shard);
    let loaded: Loaded = peer_json(
        Command::new(py)
            .arg(script)
            .arg("load")
            .arg(&export)
            .arg(&shard),
    )?;
    std::fs::write(&done, loaded.points.to_string())?;
    Ok((shard, loaded.points, Some(loaded.seconds)))
}

pub fn run(args: &BenchQdrantArgs) -> Result<()> {
    let dir = medlit::cli::setup::index_dir(&args.index)?;
    let retriever = open_retriever(&dir, true, &args.fusion)?;
    let Some(dense) = retriever.dense.as_ref() else {
        bail!(
            "{} has no dense half: Qdrant's collection needs it (medlit index without --bm25-only)",
            dir.display()
        );
    };
    let work = crate::workdir::work_dir(args.work.as_deref(), "qdrant")?;
    let (py, script) = shim(&args.python, &work)?;
    let (shard, points, load_seconds) = load_shard(&dir, &work, &py, &script)?;

    let depth = args.fusion.depth * 2;
    let hybrid = QueryShape::Hybrid {
        depth,
        rrf_k: args.fusion.rrf_k.round().max(1.0) as u32,
        dense_weight: args.fusion.dense_weight,
    };
    let shapes = [
        (QueryShape::Dense { exact: false }, 10),
        (QueryShape::Dense { exact: true }, 10),
        (QueryShape::Sparse, PASSAGES),
        (hybrid, PASSAGES),
    ];
    let mut datasets = Vec::new();
    for path in &args.dataset {
        let items = read_qa(path).with_context(|| format!("reading {}", path.display()))?;
        let bodies = work.join("bodies.jsonl");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&bodies)?);
        let mut exact_sets = Vec::with_capacity(items.len());
        let mut bm25_lists = Vec::with_capacity(items.len());
        let mut hybrid_lists = Vec::with_capacity(items.len());
        for item in &items {
            let v = dense.embedder().embed_one(&item.question)?;
            let terms = retriever.bm25.analyse(&item.question);
            let exact: HashSet<u64> = dense
                .index()
                .exact(&v, 10)
                .into_iter()
                .filter_map(|(row, _)| dense.index().row(row))
                .map(|r| point_id(r.pmid, r.passage_no))
                .collect();
            exact_sets.push(exact);
            bm25_lists.push(retriever.rank(&item.question, 10, Mode::Bm25)?);
            hybrid_lists.push(retriever.rank(&item.question, 10, Mode::Hybrid)?);
            for (shape, limit) in shapes {
                serde_json::to_writer(&mut w, &query_body(&v, &terms, shape, limit, &[]))?;
                writeln!(w)?;
            }
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let out = work.join("answers.jsonl");
        let _: serde_json::Value = peer_json(
            Command::new(&py)
                .arg(&script)
                .arg("query")
                .arg(&shard)
                .arg(&bodies)
                .arg(&out),
        )?;
        let answers: Vec<Answer> = std::fs::read_to_string(&out)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .context("reading the shim's answers")?;
        if answers.len() != items.len() * shapes.len() {
            bail!(
                "the shim answered {} queries of {}",
                answers.len(),
                items.len() * shapes.len()
            );
        }
        let mut ms: Vec<f64> = answers.iter().map(|a| a.ms).collect();
        ms.sort_by(f64::total_cmp);
        let per = |shape: usize| answers.iter().skip(shape).step_by(shapes.len());
        let sources: Vec<u64> = items
            .iter()
            .map(|i| i.pmid.parse::<u64>().unwrap_or(0))
            .collect();
        let dense_agreement = |shape: usize| {
            let (mut equal, mut overlap) = (0usize, 0.0);
            for (a, exact) in per(shape).zip(&exact_sets) {
                let got: HashSet<u64> = a.points.iter().map(|p| p.id).collect();
                equal += usize::from(got == *exact);
                overlap += exact.intersection(&got).count() as f64 / exact.len().max(1) as f64;
            }
            DenseAgreement {
                equal_top10: equal as f64 / items.len().max(1) as f64,
                overlap_at_10: overlap / items.len().max(1) as f64,
            }
        };
        let rank_agreement = |shape: usize, medlit: &[Vec<u64>]| {
            let n = items.len().max(1) as f64;
            let mut c = [0usize; 6];
            for (i, a) in per(shape).enumerate() {
                let theirs = articles(&a.points);
                let mine = &medlit[i];
                let src = sources[i];
                let (m1, q1) = (mine.first() == Some(&src), theirs.first() == Some(&src));
                c[0] += usize::from(m1);
                c[1] += usize::from(q1);
                c[2] += usize::from(!mine.is_empty() && mine.first() == theirs.first());
                c[3] += usize::from(m1 == q1);
                c[4] += usize::from(mine.contains(&src));
                c[5] += usize::from(theirs.iter().take(10).any(|&p| p == src));
            }
            RankAgreement {
                medlit_source_first: c[0] as f64 / n,
                qdrant_source_first: c[1] as f64 / n,
                same_first: c[2] as f64 / n,
                source_first_agree: c[3] as f64 / n,
                medlit_source_in_10: c[4] as f64 / n,
                qdrant_source_in_10: c[5] as f64 / n,
            }
        };
        datasets.push(DatasetReport {
            dataset: path.display().to_string(),
            questions: items.len(),
            dense_hnsw: dense_agreement(0),
            dense_exact: dense_agreement(1),
            sparse_vs_bm25: rank_agreement(2, &bm25_lists),
            hybrid: rank_agreement(3, &hybrid_lists),
            qdrant_ms_p50: percentile(&ms, 0.5),
        });
    }
    let report = QdrantBench {
        index: dir.display().to_string(),
        points,
        load_seconds,
        engine: QDRANT_EDGE,
        datasets,
    };
    if args.json {
        return print_json(&report);
    }
    print_text(&report);
    Ok(())
}

/// PMIDs in the order of their best passage.
fn articles(points: &[Scored]) -> Vec<u64> {
    let mut seen = HashSet::new();
    points
        .iter()
        .map(|p| p.id >> 16)
        .filter(|&pmid| seen.insert(pmid))
        .collect()
}

fn print_text(r: &QdrantBench) {
    println!(
        "{} points loaded into {}{}",
        r.points,
        r.engine,
        r.load_seconds
            .map_or(String::new(), |s| format!(" in {s:.0} s"))
    );
    for d in &r.datasets {
        println!("{} ({} questions)", d.dataset, d.questions);
        for (name, a) in [("hnsw", &d.dense_hnsw), ("exact", &d.dense_exact)] {
            println!(
                "  dense top-10 vs medlit exact, Qdrant {name:<5}: equal {:.3}, overlap {:.3}",
                a.equal_top10, a.overlap_at_10
            );
        }
        for (name, a) in [("sparse vs bm25", &d.sparse_vs_bm25), ("hybrid", &d.hybrid)] {
            println!(
                "  {name:<15} source first: medlit {:.3}, Qdrant {:.3}; same first {:.3}; agree {:.3}; source in 10: medlit {:.3}, Qdrant {:.3}",
                a.medlit_source_first,
                a.qdrant_source_first,
                a.same_first,
                a.source_first_agree,
                a.medlit_source_in_10,
                a.qdrant_source_in_10
            );
        }
        println!("  Qdrant query p50 {:.2} ms", d.qdrant_ms_p50);
    }
}
