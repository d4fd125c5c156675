//! Embeds the first N abstracts of a PubMed file and prints passages/s (for tuning).
//! Usage: embed_probe ASSETS_DIR FILE N THREADS BATCH
use medlit_indexer::embed::{Embedder, OnnxConfig, OnnxEmbedder};
use medlit_indexer::passages::split;
use medlit_indexer::pubmed::{parse_file, Record};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let assets = std::path::PathBuf::from(&a[1]);
    let n: usize = a[3].parse().unwrap();
    let threads: usize = a[4].parse().unwrap();
    let batch: usize = a[5].parse().unwrap();
    let mut e = OnnxEmbedder::load(&OnnxConfig {
        model_dir: assets.join("models/all-minilm-l6-v2-int8"),
        runtime_lib: assets.join("runtime/libonnxruntime.so.1.24.1"),
        id: "minilm".into(),
        sha256: String::new(),
        max_tokens: 256,
        threads,
        sessions: 1,
        batch_size: batch,
    })
    .unwrap();
    let f = parse_file(std::path::Path::new(&a[2])).unwrap();
    let mut texts = Vec::new();
    for r in f.records {
        if let Record::Article(art) = r {
            if art.has_abstract() {
                for p in split(&art, 254, &mut |s| e.count_tokens(s)) {
                    texts.push(p.embedding_text());
                }
            }
        }
        if texts.len() >= n {
            break;
        }
    }
    let toks: usize = texts.iter().map(|t| e.count_tokens(t).min(254)).sum();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let t = std::time::Instant::now();
    let v = e.embed(&refs).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "dim {} passages {} tokens {} secs {:.2} passages/s {:.1} tok/s {:.0}",
        e.info().dim,
        v.len(),
        toks,
        s,
        v.len() as f64 / s,
        toks as f64 / s
    );
    let mut sorted = refs.clone();
    sorted.sort_by_key(|t| e.count_tokens(t));
    let t = std::time::Instant::now();
    let v2 = e.embed(&sorted).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!("length-sorted: passages/s {:.1}", v2.len() as f64 / s);
}
