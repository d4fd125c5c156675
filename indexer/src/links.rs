//! The HNSW graph as medlit searches it: hnsw_rs builds and extends the graph, but its
//! in-memory form (a reference-counted allocation per edge) costs about 3 KB a passage, which
//! would keep all of PubMed's ~66M passages far from a 64 GB machine. After each build the
//! links are written flat, and searching maps them:
//!
//! `links-NNNNNN.bin`, little-endian:
//! - header: magic `MLNK`, version (u32), rows (u32), slots per row at layer 0 (u32), entry
//!   row (u32), top level (u32), upper-layer entries (u32);
//! - layer 0: `rows × slots` u32 row ids, `u32::MAX` for an empty slot (128 bytes a passage
//!   at m 16);
//! - upper layers, for the few rows above layer 0: row (u32), level (u32), then per layer
//!   1..=level a count (u32) and that many row ids.
//!
//! Search is the standard HNSW descent: greedy through the upper layers, then a best-first
//! search of width `ef` on layer 0, on int8 vectors; tombstoned rows are walked through but
//! never returned.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use hnsw_rs::prelude::Hnsw;

use crate::dense::{DenseError, I8Cosine};

const MAGIC: &[u8; 4] = b"MLNK";
const VERSION: u32 = 1;
const EMPTY: u32 = u32::MAX;

/// Writes the links of `graph` (rows `0..rows`, origin id = row) to `path`, fsynced.
pub fn write(graph: &Hnsw<i8, I8Cosine>, rows: usize, path: &Path) -> Result<(), DenseError> {
    let io = |e: std::io::Error| DenseError::Io {
        context: "writing",
        path: path.to_path_buf(),
        source: e,
    };
    let mut layer0: Vec<Vec<u32>> = vec![Vec::new(); rows];
    let mut upper: Vec<(u32, Vec<Vec<u32>>)> = Vec::new();
    // The entry is a row on the top level (hnsw_rs's own entry point is not public).
    let mut entry_at: Option<(u32, u32)> = None;
    for p in graph.get_point_indexation() {
        let id = p.get_origin_id();
        if id >= rows {
            continue;
        }
        let level = u32::from(p.get_point_id().0);
        let layers = p.get_neighborhood_id();
        for (l, ns) in layers.iter().enumerate() {
            let ids: Vec<u32> = ns
                .iter()
                .map(|n| n.d_id)
                .filter(|&d| d < rows)
                .map(|d| d as u32)
                .collect();
            if l == 0 {
                layer0[id] = ids;
            } else if l as u32 <= level {
                if upper.last().is_none_or(|u| u.0 != id as u32) {
                    upper.push((id as u32, Vec::new()));
                }
                if let Some(u) = upper.last_mut() {
                    u.1.push(ids);
                }
            }
        }
        if entry_at.is_none_or(|(top, _)| level > top) {
            entry_at = Some((level, id as u32));
        }
    }
    let (top, entry) = entry_at.unwrap_or((0, 0));
    let slots = layer0.iter().map(Vec::len).max().unwrap_or(0).max(1) as u32;
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    w.write_all(MAGIC).map_err(io)?;
    for v in [VERSION, rows as u32, slots, entry, top, upper.len() as u32] {
        w.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    for ns in &layer0 {
        for s in 0..slots as usize {
            w.write_all(&ns.get(s).copied().unwrap_or(EMPTY).to_le_bytes())
                .map_err(io)?;
        }
    }
    for (id, layers) in &upper {
        w.write_all(&id.to_le_bytes()).map_err(io)?;
        w.write_all(&(layers.len() as u32).to_le_bytes())
            .map_err(io)?;
        for ns in layers {
            w.write_all(&(ns.len() as u32).to_le_bytes()).map_err(io)?;
            for n in ns {
                w.write_all(&n.to_le_bytes()).map_err(io)?;
            }
        }
    }
    let f = w.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)
}

/// The links, mapped.
pub struct Links {
    map: memmap2::Mmap,
    rows: usize,
    slots: usize,
    entry: u32,
    top: u32,
    /// Upper-layer neighbours of the rows above layer 0: (row) → layers 1..=level.
    upper: HashMap<u32, Vec<Vec<u32>>>,
}

const HEADER: usize = 4 + 6 * 4;

impl Links {
    pub fn open(path: &Path) -> Result<Self, DenseError> {
        let invalid = |reason: String| DenseError::Invalid {
            dir: path.to_path_buf(),
            reason,
        };
        let f = File::open(path).map_err(|e| DenseError::Io {
            context: "reading",
            path: path.to_path_buf(),
            source: e,
        })?;
        // Safety: index files are never modified in place.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| DenseError::Io {
            context: "mapping",
            path: path.to_path_buf(),
            source: e,
        })?;
        if map.len() < HEADER || &map[..4] != MAGIC {
            return Err(invalid("not a medlit links file".into()));
        }
        let word = |i: usize| u32::from_le_bytes([map[i], map[i + 1], map[i + 2], map[i + 3]]);
        let (version, rows, slots, entry, top, n_upper) = (
            word(4),
            word(8) as usize,
            word(12) as usize,
            word(16),
            word(20),
            word(24) as usize,
        );
        if version != VERSION {
            return Err(invalid(format!(
                "links version {version}, expected {VERSION}"
            )));
        }
        let mut at = HEADER + rows * slots * 4;
        if map.len() < at || (rows > 0 && entry as usize >= rows) {
            return Err(invalid("truncated".into()));
        }
        let mut upper = HashMap::with_capacity(n_upper);
        let read = |at: &mut usize| -> Result<u32, DenseError> {
            if *at + 4 > map.len() {
                return Err(invalid("truncated upper layers".into()));
            }
            let v = word(*at);
            *at += 4;
            Ok(v)
        };
        for _ in 0..n_upper {
            let id = read(&mut at)?;
            let levels = read(&mut at)?;
            let mut layers = Vec::with_capacity(levels as usize);
            for _ in 0..levels {
                let n = read(&mut at)?;
                let mut ns = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let v = read(&mut at)?;
                    if v as usize >= rows {
                        return Err(invalid(format!("row {v} out of {rows}")));
                    }
                    ns.push(v);
                }
                layers.push(ns);
            }
            upper.insert(id, layers);
        }
        Ok(Self {
            map,
            rows,
            slots,
            entry,
            top,
            upper,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    fn layer0(&self, row: u32) -> impl Iterator<Item = u32> + '_ {
        let start = HEADER + row as usize * self.slots * 4;
        self.map[start..start + self.slots * 4]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .take_while(|&v| v != EMPTY)
            .filter(|&v| (v as usize) < self.rows)
    }

    /// The `k` nearest live rows by `dist` (row → distance to the query), best first.
    pub fn search(
        &self,
        k: usize,
        ef: usize,
        dist: impl Fn(u32) -> f32,
        dead: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if self.rows == 0 {
            return Vec::new();
        }
        let ef = ef.max(k);
        let mut ep = self.entry;
        let mut d_ep = dist(ep);
        for level in (1..=self.top).rev() {
            loop {
                let mut moved = false;
                let layer = self
                    .upper
                    .get(&ep)
                    .and_then(|ls| ls.get(level as usize - 1));
                for &n in layer.into_iter().flatten() {
                    let d = dist(n);
                    if d < d_ep {
                        (ep, d_ep, moved) = (n, d, true);
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        // Best-first search of width ef on layer 0. Distances are ordered through their bits:
        // they are non-negative floats, whose IEEE order is their integer order.
        let key = |d: f32| d.max(0.0).to_bits();
        let mut visited = HashSet::with_capacity(ef * 16);
        visited.insert(ep);
        let mut candidates = BinaryHeap::new();
        candidates.push(Reverse((key(d_ep), ep)));
        // The ef best live rows so far (max-heap: the worst on top).
        let mut found: BinaryHeap<(u32, u32)> = BinaryHeap::new();
        if !dead(ep) {
            found.push((key(d_ep), ep));
        }
        while let Some(Reverse((dc, c))) = candidates.pop() {
            if found.len() >= ef && found.peek().is_some_and(|&(worst, _)| dc > worst) {
                break;
            }
            for n in self.layer0(c) {
                if !visited.insert(n) {
                    continue;
                }
                let d = key(dist(n));
                let worst = found.peek().map_or(u32::MAX, |w| w.0);
                if found.len() < ef || d < worst {
                    candidates.push(Reverse((d, n)));
                    if !dead(n) {
                        found.push((d, n));
                        if found.len() > ef {
                            found.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<(u32, f32)> = found
            .into_iter()
            .map(|(d, n)| (n, f32::from_bits(d)))
            .collect();
        out.sort_by(|a, b| a.1.total_cmp(&b.1));
        out.truncate(k);
        out
    }
}
