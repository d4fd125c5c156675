//! Int8 matrix products for the GGUF's Q8_0 and Q5_0 matrices on the CPU: every 640-wide
//! projection and the tied 262,144-row output matrix, which alone is 40% of decode time.
//!
//! Why our own kernel: candle multiplies these types row by row, converting two f16 scales per
//! 32-weight block, and its tiled VNNI kernels take only rows that are a multiple of 256 wide
//! (ours are 640). Here the weights are rearranged once, at load, into tiles of 16 rows, so one
//! AVX-512 VNNI instruction multiplies 4 columns of 16 rows, and the 16 block scales of a tile
//! convert to f32 in one instruction. Activations are quantised to i8 per 32-value block, as
//! llama.cpp does for these types. Q5_0 values (−16..15) fit i8 exactly: the conversion loses
//! nothing. The bytes read per weight stay those of Q8_0 (1 + 2/32), so decode, which is bound
//! by memory bandwidth, reads no more than the GGUF holds.
use half::f16;

/// Rows per tile: one 512-bit register of i32 or f32 lanes.
const TILE: usize = 16;
/// Values per quantisation block (Q8_0 and Q5_0 alike).
const BLOCK: usize = 32;
/// Bytes of one block of one tile: 16 rows × 32 values.
const TILE_BLOCK_BYTES: usize = TILE * BLOCK;
/// Work below this many multiply-adds per task is not worth a thread hand-off.
const MIN_TASK_MACS: usize = 1 << 18;

#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    #[error("a {0:?} matrix cannot be stored as int8 tiles (only Q8_0 and Q5_0)")]
    Unsupported(candle_core::quantized::GgmlDType),
    #[error("rows of {0} values are not whole 32-value blocks")]
    Width(usize),
    #[error("the matrix holds {got} bytes where {rows}×{cols} needs {want}")]
    Size {
        rows: usize,
        cols: usize,
        got: usize,
        want: usize,
    },
}

/// A `rows × cols` matrix of i8 values with one f16 scale per 32 values of a row.
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    blocks: usize,
    /// `[tile][block][column group of 4][row in tile][4]`, each value stored as `i8 + 128` so
    /// the VNNI instruction (unsigned × signed) can take it.
    qs: Vec<u8>,
    /// `[tile][block][row in tile]`.
    scales: Vec<f16>,
}

/// The output matrix, written by several threads at disjoint positions.
struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: threads only write through `write`, whose contract keeps their positions disjoint.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// No other thread may write `offset..offset + values.len()` concurrently.
    unsafe fn write(&self, offset: usize, values: &[f32]) {
        assert!(offset + values.len() <= self.len, "write past the output");
        // SAFETY: in bounds (checked above) and not aliased (the caller's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), self.ptr.add(offset), values.len())
        };
    }
}

/// Activations quantised per 32-value block.
struct Quantized {
    q: Vec<i8>,
    scale: Vec<f32>,
    /// `128 × Σ q` per block: what the `+128` of the weights adds to each dot product.
    offset: Vec<i32>,
}

impl Int8Matrix {
    /// Rearranges a GGUF matrix (`rows × cols`, raw blocks as the file stores them).
    pub fn from_gguf(
        dtype: candle_core::quantized::GgmlDType,
        rows: usize,
        cols: usize,
        data: &[u8],
    ) -> Result<Self, Int8Error> {
        use candle_core::quantized::GgmlDType;
        if !cols.is_multiple_of(BLOCK) {
            return Err(Int8Error::Width(cols));
        }
        let blocks = cols / BLOCK;
        let block_bytes = match dtype {
            GgmlDType::Q8_0 => 34,
            GgmlDType::Q5_0 => 22,
            other => return Err(Int8Error::Unsupported(other)),
        };
        let want = rows * blocks * block_bytes;
        if data.len() != want {
            return Err(Int8Error::Size {
                rows,
                cols,
                got: data.len(),
                want,
            });
        }
        let tiles = rows.div_ceil(TILE);
        // Padding rows (when rows is not a multiple of 16) keep value 0 (stored 128) and scale 0.
        let mut qs = vec![128u8; tiles * blocks * TILE_BLOCK_BYTES];
        let mut scales = vec![f16::ZERO; tiles * blocks * TILE];
        let mut values = [0i8; BLOCK];
        for row in 0..rows {
            let (tile, r) = (row / TILE, row % TILE);
            for b in 0..blocks {
                let raw = &data[(row * blocks + b) * block_bytes..][..block_bytes];
                let d = f16::from_le_bytes([raw[0], raw[1]]);
                match dtype {
                    GgmlDType::Q8_0 => {
                        for (v, &byte) in values.iter_mut().zip(&raw[2..]) {
                            *v = byte as i8;
                        }
                    }
                    _ => decode_q5_0(&raw[2..], &mut values),
                }
                let base = (tile * blocks + b) * TILE_BLOCK_BYTES;
                for (c, &v) in values.iter().enumerate() {
                    qs[base + (c / 4) * TILE * 4 + r * 4 + c % 4] = (v as i16 + 128) as u8;
                }
                scales[(tile * blocks + b) * TILE + r] = d;
            }
        }
        Ok(Int8Matrix {
            rows,
            cols,
            blocks,
            qs,
            scales,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `row` as f32 (the embedding lookup of a tied output matrix).
    pub fn row(&self, row: usize, out: &mut [f32]) {
        let (tile, r) = (row / TILE, row % TILE);
        for b in 0..self.blocks {
            let base = (tile * self.blocks + b) * TILE_BLOCK_BYTES;
            let d = self.scales[(tile * self.blocks + b) * TILE + r].to_f32();
            for c in 0..BLOCK {
                let v = self.qs[base + (c / 4) * TILE * 4 + r * 4 + c % 4] as i32 - 128;
                out[b * BLOCK + c] = v as f32 * d;
            }
        }
    }

    /// `out = x · selfᵀ` for `m` rows of `x` (`m × cols`, row-major); `out` is `m × rows`.
    ///
    /// Tiles are shared out on candle's barrier pool, the one its own quantized products use:
    /// the calling thread takes part, and no second pool spins for the same two cores.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let pool = candle_core::utils::barrier_pool();
        let parallel = pool.n_workers() > 0 && self.rows * self.cols * m >= 2 * MIN_TASK_MACS;
        self.matmul_on(x, m, out, parallel.then_some(pool));
    }

    fn matmul_on(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        pool: Option<&candle_core::utils::BarrierPool>,
    ) {
        assert_eq!(x.len(), m * self.cols, "input is not m × cols");
        assert_eq!(out.len(), m * self.rows, "output is not m × rows");
        let act = self.quantize(x, m);
        let kernel = Kernel::detect();
        let tiles = self.rows.div_ceil(TILE);
        let shared = SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        };
        let run = |range: std::ops::Range<usize>| {
            for t in range {
                self.tile_all_rows(kernel, t, &act, m, &shared);
            }
        };
        match pool {
            Some(pool) => pool.execute_chunked(tiles, run),
            None => run(0..tiles),
        }
    }

    /// Tile `t` against every activation row, four rows per pass, into `out`.
    fn tile_all_rows(&self, kernel: Kernel, t: usize, act: &Quantized, m: usize, out: &SharedOut) {
        let row0 = t * TILE;
        let width = TILE.min(self.rows - row0);
        let mut i = 0;
        while i < m {
            let mut four = [[0f32; TILE]; 4];
            let mut one = [[0f32; TILE]; 1];
            let lanes: &[[f32; TILE]] = if i + 4 <= m {
                self.tile(kernel, t, act, i, &mut four);
                &four
            } else {
                self.tile(kernel, t, act, i, &mut one);
                &one
            };
            for (j, l) in lanes.iter().enumerate() {
                // SAFETY: tile `t` owns output columns row0..row0 + width of every row, and
                // each tile is computed by exactly one thread.
                unsafe { out.write((i + j) * self.rows + row0, &l[..width]) };
            }
            i += lanes.len();
        }
    }

    /// Quantises each 32-value block of each row to i8 with its own scale (max |x| → 127).
    fn quantize(&self, x: &[f32], m: usize) -> Quantized {
        let n = m * self.blocks;
        let mut act = Quantized {
            q: vec![0; m * self.cols],
            scale: vec![0.0; n],
            offset: vec![0; n],
        };
        for (i, block) in x.chunks_exact(BLOCK).enumerate() {
            let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (q, &v) in act.q[i * BLOCK..][..BLOCK].iter_mut().zip(block) {
                let r = (v * inv).round() as i8;
                sum += r as i32;
                *q = r;
            }
            // Stored rounded to f16, as llama.cpp's Q8_0 activations are (the GGUF's numbers
            // were tuned against that product).
            act.scale[i] = f16::from_f32(d).to_f32();
            act.offset[i] = 128 * sum;
        }
        act
    }

    /// Dot products of tile `t` with activation rows `first..first + R`.
    fn tile<const R: usize>(
        &self,
        kernel: Kernel,
        t: usize,
        act: &Quantized,
        first: usize,
        out: &mut [[f32; TILE]; R],
    ) {
        let qs = &self.qs[t * self.blocks * TILE_BLOCK_BYTES..][..self.blocks * TILE_BLOCK_BYTES];
        let scales = &self.scales[t * self.blocks * TILE..][..self.blocks * TILE];
        let rows: [usize; R] = std::array::from_fn(|j| first + j);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::detect` chose this variant only when the CPU has these features;
            // the slices hold whole tiles and whole activation rows.
            Kernel::Vnni512 => unsafe { vnni512::tile(qs, scales, act, &rows, self.blocks, out) },
            Kernel::Portable => portable_tile(qs, scales, act, &rows, self.blocks, out),
        }
    }
}

/// Unpacks one Q5_0 block (after its scale): 4 bytes of high bits, 16 bytes of low nibbles.
fn decode_q5_0(raw: &[u8], values: &mut [i8; BLOCK]) {
    let high = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let low = &raw[4..20];
    for j in 0..BLOCK / 2 {
        let h0 = ((high >> j) & 1) as u8;
        let h1 = ((high >> (j + 16)) & 1) as u8;
        values[j] = ((low[j] & 0x0f) | (h0 << 4)) as i8 - 16;
        values[j + BLOCK / 2] = ((low[j] >> 4) | (h1 << 4)) as i8 - 16;
    }
}

#[derive(Debug, Clone, Copy)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Vnni512,
    Portable,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static VNNI: OnceLock<bool> = OnceLock::new();
            let vnni = *VNNI.get_or_init(|| {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            });
            if vnni {
                return Kernel::Vnni512;
            }
        }
        Kernel::Portable
    }
}

/// The same arithmetic in plain Rust, for CPUs without AVX-512 VNNI (and as the reference the
/// tests compare the fast kernel with).
fn portable_tile<const R: usize>(
    qs: &[u8],
    scales: &[f16],
    act: &Quantized,
    rows: &[usize; R],
    blocks: usize,
    out: &mut [[f32; TILE]; R],
) {
    let cols = blocks * BLOCK;
    for (o, &i) in out.iter_mut().zip(rows) {
        let mut acc = [0f32; TILE];
        for b in 0..blocks {
            let mut isum = [0i32; TILE];
            let w = &qs[b * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES];
            let x = &act.q[i * cols + b * BLOCK..][..BLOCK];
            for g in 0..BLOCK / 4 {
                for (r, s) in isum.iter_mut().enumerate() {
                    for c in 0..4 {
                        *s += w[g * TILE * 4 + r * 4 + c] as i32 * x[g * 4 + c] as i32;
                    }
                }
            }
            let xd = act.scale[i * blocks + b];
            let off = act.offset[i * blocks + b];
            for (r, a) in acc.iter_mut().enumerate() {
                *a += (isum[r] - off) as f32 * (scales[b * TILE + r].to_f32() * xd);
            }
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni512 {
    use super::{Quantized, BLOCK, TILE, TILE_BLOCK_BYTES};
    use half::f16;
    use std::arch::x86_64::*;

    /// One tile against `R` activation rows: each weight load feeds `R` multiply-adds, and the
    /// `R` accumulator chains hide the instruction's latency.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 VNNI; `qs`/`scales` hold `blocks` blocks of one
    /// tile and `act` holds every row named in `rows`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize>(
        qs: &[u8],
        scales: &[f16],
        act: &Quantized,
        rows: &[usize; R],
        blocks: usize,
        out: &mut [[f32; TILE]; R],
    ) {
        let cols = blocks * BLOCK;
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            let mut isum = [_mm512_setzero_si512(); R];
            let w = qs.as_ptr().add(b * TILE_BLOCK_BYTES);
            for g in 0..BLOCK / 4 {
                let wv = _mm512_loadu_si512(w.add(g * TILE * 4) as *const _);
                for j in 0..R {
                    let x = act.q.as_ptr().add(rows[j] * cols + b * BLOCK + g * 4);
                    let xv = _mm512_set1_epi32(std::ptr::read_unaligned(x as *const i32));
                    isum[j] = _mm512_dpbusd_epi32(isum[j], wv, xv);
                }
            }
            let ws = _mm512_cvtph_ps(_mm256_loadu_si256(
                scales.as_ptr().add(b * TILE) as *const __m256i
            ));
            for j in 0..R {
                let k = rows[j] * blocks + b;
                let s = _mm512_sub_epi32(isum[j], _mm512_set1_epi32(act.offset[k]));
                let d = _mm512_mul_ps(ws, _mm512_set1_ps(act.scale[k]));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[j]);
            }
        }
        for j in 0..R {
            _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    /// A Q8_0 matrix of `rows × cols` with varied values and scales, as raw GGUF blocks.
    fn q8_0_bytes(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let mut raw = Vec::new();
        let mut dense = Vec::new();
        for r in 0..rows {
            for b in 0..cols / BLOCK {
                let d = f16::from_f32(0.01 + 0.001 * ((r * 7 + b * 3) % 11) as f32);
                raw.extend_from_slice(&d.to_le_bytes());
                for c in 0..BLOCK {
                    let v = (((r * 31 + b * 17 + c * 13) % 255) as i32 - 127) as i8;
                    raw.push(v as u8);
                    dense.push(v as f32 * d.to_f32());
                }
            }
        }
        (raw, dense)
    }

    /// The exact product, and for each value the most that quantising `x` (half a step of
    /// its block's max/127) can move it.
    fn reference(
        dense: &[f32],
        rows: usize,
        cols: usize,
        x: &[f32],
        m: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut out = vec![0f32; m * rows];
        let mut bound = vec![0f32; m * rows];
        for i in 0..m {
            let xi = &x[i * cols..][..cols];
            for r in 0..rows {
                let w = &dense[r * cols..][..cols];
                out[i * rows + r] = w.iter().zip(xi).map(|(a, b)| a * b).sum();
                bound[i * rows + r] = (0..cols)
                    .map(|c| {
                        let block = &xi[c / BLOCK * BLOCK..][..BLOCK];
                        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
                        w[c].abs() * amax / 254.0
                    })
                    .sum();
            }
        }
        (out, bound)
    }

    #[test]
    fn matches_dense_product_for_one_and_many_rows() {
        // 37 rows: two whole tiles and a padded one.
        let (rows, cols) = (37, 96);
        let (raw, dense) = q8_0_bytes(rows, cols);
        let w = Int8Matrix::from_gguf(GgmlDType::Q8_0, rows, cols, &raw).unwrap();
        for m in [1usize, 3, 4, 9] {
            let x: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let (want, bound) = reference(&dense, rows, cols, &x, m);
            let mut got = vec![0f32; m * rows];
            w.matmul(&x, m, &mut got);
            for ((g, e), b) in got.iter().zip(&want).zip(&bound) {
                assert!(
                    (g - e).abs() <= b * 1.01 + 1e-4,
                    "{g} vs {e}, bound {b} (m {m})"
                );
            }
        }
    }

    #[test]
    fn fast_kernel_equals_portable_kernel() {
        let (rows, cols) = (64, 640);
        let (raw, _) = q8_0_bytes(rows, cols);
        let w = Int8Matrix::from_gguf(GgmlDType::Q8_0, rows, cols, &raw).unwrap();
        let x: Vec<f32> = (0..4 * cols)
            .map(|i| ((i * 7 % 23) as f32) - 11.0)
            .collect();
        let act = w.quantize(&x, 4);
        for t in 0..rows / TILE {
            let mut fast = [[0f32; TILE]; 4];
            let mut slow = [[0f32; TILE]; 4];
            w.tile(Kernel::detect(), t, &act, 0, &mut fast);
            w.tile(Kernel::Portable, t, &act, 0, &mut slow);
            for (f, s) in fast.iter().flatten().zip(slow.iter().flatten()) {
                assert!((f - s).abs() <= 1e-3 * s.abs().max(1.0), "{f} vs {s}");
            }
        }
    }

    #[test]
    fn sharing_tiles_over_the_pool_gives_the_same_numbers() {
        let (rows, cols) = (4096, 640);
        let (raw, _) = q8_0_bytes(rows, cols);
        let w = Int8Matrix::from_gguf(GgmlDType::Q8_0, rows, cols, &raw).unwrap();
        let pool = candle_core::utils::barrier_pool();
        for m in [1usize, 6] {
            let x: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 11 % 19) as f32) - 9.0)
                .collect();
            let mut alone = vec![0f32; m * rows];
            let mut shared = vec![f32::NAN; m * rows];
            w.matmul_on(&x, m, &mut alone, None);
            w.matmul_on(&x, m, &mut shared, Some(pool));
            assert_eq!(alone, shared, "m {m}");
        }
    }

    #[test]
    fn q5_0_blocks_decode_as_candle_dequantizes_them() {
        use candle_core::quantized::QTensor;
        use candle_core::{Device, Tensor};
        let (rows, cols) = (16, 64);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 29 % 61) as f32 - 30.0) / 7.0)
            .collect();
        let dense = Tensor::from_vec(x, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&dense, GgmlDType::Q5_0).unwrap();
        let want: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let w = Int8Matrix::from_gguf(GgmlDType::Q5_0, rows, cols, &q.data().unwrap()).unwrap();
        let mut got = vec![0f32; cols];
        for r in 0..rows {
            w.row(r, &mut got);
            assert_eq!(got, want[r * cols..][..cols], "row {r}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_hold() {
        assert!(matches!(
            Int8Matrix::from_gguf(GgmlDType::Q8_0, 2, 40, &[0; 100]),
            Err(Int8Error::Width(40))
        ));
        assert!(matches!(
            Int8Matrix::from_gguf(GgmlDType::Q8_0, 2, 32, &[0; 60]),
            Err(Int8Error::Size { .. })
        ));
        assert!(matches!(
            Int8Matrix::from_gguf(GgmlDType::Q4K, 2, 256, &[0; 10]),
            Err(Int8Error::Unsupported(_))
        ));
    }
}
