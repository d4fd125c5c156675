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

use crate::shared_out::SharedOut;

/// Rows per tile: one 512-bit register of i32 or f32 lanes.
pub(crate) const TILE: usize = 16;
/// Values per quantisation block (Q8_0 and Q5_0 alike).
pub(crate) const BLOCK: usize = 32;
/// Bytes of one block of one tile: 16 rows × 32 values.
pub(crate) const TILE_BLOCK_BYTES: usize = TILE * BLOCK;
/// Work below this many multiply-adds per task is not worth a thread hand-off.
const MIN_TASK_MACS: usize = 1 << 18;
/// How many blocks ahead of the one being read the kernels ask for the weights. Decode streams
/// every weight once per token, and the hardware prefetcher alone keeps too few loads in
/// flight: on an AMD EPYC (Zen 5) one-thread decode measured 57 tok/s with no software
/// prefetch, 88 at 2 blocks ahead, 92–96 at 8 and 98 at 16 (the AVX2 path; `bench generate`).
const PREFETCH_BLOCKS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    #[error("a {0:?} matrix cannot be stored as int8 tiles (only Q8_0 and Q5_0)")]
    Unsupported(candle_core::quantized::GgmlDType),
    #[error("rows of {0} values are not whole 32-value blocks")]
    Width(usize),
    #[error("{KERNEL_ENV}={0}: not a kernel (portable, avx2, avxvnni, avx512vnni, amx)")]
    UnknownKernel(String),
    #[error("{KERNEL_ENV}={0}: this CPU lacks the instructions of that kernel")]
    UnsupportedKernel(&'static str),
    #[error("the matrix holds {got} bytes where {rows}×{cols} needs {want}")]
    Size {
        rows: usize,
        cols: usize,
        got: usize,
        want: usize,
    },
}

/// A `rows × cols` matrix of i8 values with one f16 scale per 32 values of a row (GGUF's
/// blocks), or one f32 scale per row (f32 weights quantised per output channel at load).
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    blocks: usize,
    /// `[tile][block][column group of 4][row in tile][4]`, each value stored as `i8 + 128` so
    /// the VNNI instruction (unsigned × signed) can take it.
    qs: Vec<u8>,
    scales: Scales,
    /// Whether the AVX2 path may round this matrix's activations to [`NARROW_RANGE`].
    narrow_on_avx2: bool,
}

enum Scales {
    /// `[tile][block][row in tile]`.
    Blocks(Vec<f16>),
    /// `[tile][row in tile]`; padding rows 0.
    Rows(Vec<f32>),
}

/// Activations quantised per 32-value block.
pub(crate) struct Quantized {
    pub(crate) q: Vec<i8>,
    pub(crate) scale: Vec<f32>,
    /// `128 × Σ q` per block: what the `+128` of the weights adds to each dot product.
    pub(crate) offset: Vec<i32>,
    /// The largest `|q|`: [`FULL_RANGE`], or [`NARROW_RANGE`] for the AVX2 tile that
    /// multiplies the stored weights directly.
    pub(crate) limit: i32,
}

/// Activations rounded to ±127 (8 bits).
pub(crate) const FULL_RANGE: i32 = 127;
/// Activations rounded to ±64, so that AVX2's `maddubs` can multiply the stored weights
/// (`w + 128`, up to 255) without the sign trick: its i16 pair sums stay within
/// 2 × 255 × 64 = 32,640, short of saturation. One instruction fewer per 32 products on the
/// integer multiply pipes (measured 1.46× faster products on a Zen 3), for 7 bits of
/// activation in place of 8.
pub(crate) const NARROW_RANGE: i32 = 64;

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
            scales: Scales::Blocks(scales),
            narrow_on_avx2: false,
        })
    }

    /// Quantises a row-major f32 matrix (`rows × cols`) as GGUF's Q8_0 does: per 32 values of a
    /// row, the scale `max |x| / 127` (stored f16) and `round(x / scale)`.
    pub fn from_f32(rows: usize, cols: usize, data: &[f32]) -> Result<Self, Int8Error> {
        check_f32_shape(rows, cols, data, BLOCK)?;
        let mut raw = Vec::with_capacity(rows * cols / BLOCK * 34);
        for block in data.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = f16::from_f32(amax / 127.0);
            let inv = if d.to_f32() > 0.0 {
                1.0 / d.to_f32()
            } else {
                0.0
            };
            raw.extend_from_slice(&d.to_le_bytes());
            raw.extend(
                block
                    .iter()
                    .map(|&v| round_even(v * inv).clamp(-127.0, 127.0) as i8 as u8),
            );
        }
        Self::from_gguf(candle_core::quantized::GgmlDType::Q8_0, rows, cols, &raw)
    }

    /// Quantises a row-major f32 matrix (`rows × cols`) per output channel: one scale per row,
    /// `max |x| / 127`, and `round(x / scale)`. ONNX Runtime's int8 export of a model quantises
    /// its weights so, and a block's products then sum in i32 scaled by the activations' block
    /// scale alone, the weights' scale applied once per output (the encoder's products: half
    /// the f32 work per block of the block-scaled form).
    pub fn from_f32_per_row(rows: usize, cols: usize, data: &[f32]) -> Result<Self, Int8Error> {
        check_f32_shape(rows, cols, data, BLOCK)?;
        let blocks = cols / BLOCK;
        let tiles = rows.div_ceil(TILE);
        let mut qs = vec![128u8; tiles * blocks * TILE_BLOCK_BYTES];
        let mut scales = vec![0f32; tiles * TILE];
        for (row, values) in data.chunks_exact(cols).enumerate() {
            let (tile, r) = (row / TILE, row % TILE);
            let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            scales[row] = d;
            for (c, &v) in values.iter().enumerate() {
                let (b, c) = (c / BLOCK, c % BLOCK);
                let q = round_even(v * inv).clamp(-127.0, 127.0) as i16;
                qs[(tile * blocks + b) * TILE_BLOCK_BYTES + (c / 4) * TILE * 4 + r * 4 + c % 4] =
                    (q + 128) as u8;
            }
        }
        Ok(Int8Matrix {
            rows,
            cols,
            blocks,
            qs,
            scales: Scales::Rows(scales),
            narrow_on_avx2: false,
        })
    }

    /// Lets the AVX2 path round this matrix's activations to ±64 ([`NARROW_RANGE`]) for
    /// products 1.4× as fast, where their owner measured 7 bits enough (the encoder's
    /// feed-forward layers). Other paths keep 8 bits; block-scaled matrices ignore it.
    pub fn with_narrow_activations_on_avx2(mut self) -> Self {
        self.narrow_on_avx2 = true;
        self
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
            let d = match &self.scales {
                Scales::Blocks(s) => s[(tile * self.blocks + b) * TILE + r].to_f32(),
                Scales::Rows(s) => s[row],
            };
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
        self.matmul_on(Kernel::selected(), x, m, out, parallel.then_some(pool));
    }

    /// As [`Int8Matrix::matmul`], on the calling thread only: for callers that run one
    /// product per thread themselves (the encoder's workers, one batch each).
    pub fn matmul_single_thread(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.matmul_on(Kernel::selected(), x, m, out, None);
    }

    /// [`Int8Matrix::matmul_single_thread`] on the path given, for tests of every path.
    #[cfg(test)]
    pub(crate) fn matmul_on_kernel(&self, kernel: Kernel, x: &[f32], m: usize, out: &mut [f32]) {
        self.matmul_on(kernel, x, m, out, None);
    }

    /// The portable loop's product of the activations as `kernel` quantises them: what that
    /// path must compute, up to the rounding of its f32 scaling.
    #[cfg(test)]
    pub(crate) fn matmul_reference_for(
        &self,
        kernel: Kernel,
        x: &[f32],
        m: usize,
        out: &mut [f32],
    ) {
        let act = self.quantize(kernel, x, m);
        let shared = SharedOut::new(out);
        for t in 0..self.rows.div_ceil(TILE) {
            self.tile_all_rows(Kernel::Portable, t, &act, m, &shared);
        }
    }

    fn matmul_on(
        &self,
        kernel: Kernel,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        pool: Option<&candle_core::utils::BarrierPool>,
    ) {
        assert_eq!(x.len(), m * self.cols, "input is not m × cols");
        assert_eq!(out.len(), m * self.rows, "output is not m × rows");
        let act = self.quantize(kernel, x, m);
        let tiles = self.rows.div_ceil(TILE);
        let shared = SharedOut::new(out);
        let pair_scales = self.pair_scales(kernel);
        let run = |range: std::ops::Range<usize>| {
            let mut t = range.start;
            while t < range.end {
                if let Some(scales) =
                    pair_scales.filter(|_| t + 1 < range.end && (t + 2) * TILE <= self.rows)
                {
                    self.tile_pair_all_rows(kernel, t, scales, &act, m, &shared);
                    t += 2;
                } else {
                    self.tile_all_rows(kernel, t, &act, m, &shared);
                    t += 1;
                }
            }
        };
        match pool {
            Some(pool) => pool.execute_chunked(tiles, run),
            None => run(0..tiles),
        }
    }

    /// Tile `t` against every activation row, four rows per pass, into `out`. (Eight rows per
    /// pass on the AVX-512 path measured 7% slower on a Zen 4: the row addresses spill.)
    fn tile_all_rows(&self, kernel: Kernel, t: usize, act: &Quantized, m: usize, out: &SharedOut) {
        let mut i = 0;
        while i < m {
            i += if i + 4 <= m {
                self.tile_pass::<4>(kernel, t, act, i, out)
            } else {
                self.tile_pass::<1>(kernel, t, act, i, out)
            };
        }
    }

    /// The row scales, when this matrix's tiles go two at a time on `kernel` (per-row scales
    /// only).
    fn pair_scales(&self, kernel: Kernel) -> Option<&[f32]> {
        match &self.scales {
            Scales::Rows(s) if crate::int8_row_scaled::pairs_on(kernel) => Some(s),
            _ => None,
        }
    }

    /// Whole tiles `t` and `t + 1` against every activation row, as [`Self::tile_all_rows`].
    fn tile_pair_all_rows(
        &self,
        kernel: Kernel,
        t: usize,
        scales: &[f32],
        act: &Quantized,
        m: usize,
        out: &SharedOut,
    ) {
        let row_scales: &[f32; 2 * TILE] = scales[t * TILE..][..2 * TILE]
            .try_into()
            .unwrap_or(&[0.0; 2 * TILE]);
        let mut i = 0;
        while i < m {
            i += if i + 4 <= m {
                self.tile_pair_pass::<4>(kernel, t, row_scales, act, i, out)
            } else {
                self.tile_pair_pass::<1>(kernel, t, row_scales, act, i, out)
            };
        }
    }

    /// Whole tiles `t` and `t + 1` (per-row scales) against activation rows
    /// `first..first + R`, written to `out`; returns `R`.
    fn tile_pair_pass<const R: usize>(
        &self,
        kernel: Kernel,
        t: usize,
        row_scales: &[f32; 2 * TILE],
        act: &Quantized,
        first: usize,
        out: &SharedOut,
    ) -> usize {
        let bytes = self.blocks * TILE_BLOCK_BYTES;
        let qs = &self.qs[t * bytes..][..2 * bytes];
        let rows: [usize; R] = std::array::from_fn(|j| first + j);
        let mut lanes = [[0f32; 2 * TILE]; R];
        crate::int8_row_scaled::tile_pair(
            kernel,
            qs,
            row_scales,
            act,
            &rows,
            self.blocks,
            &mut lanes,
        );
        for (j, l) in lanes.iter().enumerate() {
            // SAFETY: tiles `t` and `t + 1` own output columns t·TILE..(t + 2)·TILE of every
            // row (whole: Self::matmul_on pairs only tiles inside `rows`), and each tile is
            // computed by exactly one thread.
            unsafe { out.write_tile((first + j) * self.rows + t * TILE, l) };
        }
        R
    }

    /// Tile `t` against activation rows `first..first + R`, written to `out`; returns `R`.
    fn tile_pass<const R: usize>(
        &self,
        kernel: Kernel,
        t: usize,
        act: &Quantized,
        first: usize,
        out: &SharedOut,
    ) -> usize {
        let row0 = t * TILE;
        let mut lanes = [[0f32; TILE]; R];
        self.tile(kernel, t, act, first, &mut lanes);
        for (j, l) in lanes.iter().enumerate() {
            let offset = (first + j) * self.rows + row0;
            // SAFETY: tile `t` owns output columns row0..row0 + TILE of every row, and each
            // tile is computed by exactly one thread.
            unsafe {
                if row0 + TILE <= self.rows {
                    out.write_tile(offset, l)
                } else {
                    out.write(offset, &l[..self.rows - row0])
                }
            };
        }
        R
    }

    /// The activations' range on `kernel`: narrow only on the AVX2 path of a per-row matrix
    /// whose owner allowed it (the block-scaled tile keeps the sign trick and 8 bits).
    fn activation_limit(&self, kernel: Kernel) -> i32 {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx2
            && self.narrow_on_avx2
            && matches!(self.scales, Scales::Rows(_))
            && narrow_activations_allowed()
        {
            return NARROW_RANGE;
        }
        let _ = kernel;
        FULL_RANGE
    }

    /// Quantises each 32-value block of each row to i8 with its own scale (max |x| → the
    /// activation limit).
    fn quantize(&self, kernel: Kernel, x: &[f32], m: usize) -> Quantized {
        let n = m * self.blocks;
        let mut act = Quantized {
            q: vec![0; m * self.cols],
            scale: vec![0.0; n],
            offset: vec![0; n],
            limit: self.activation_limit(kernel),
        };
        #[cfg(target_arch = "x86_64")]
        match kernel {
            // SAFETY: the AVX-512 path requires AVX-512F and BW (Kernel::supported), every
            // other path but the portable one AVX2, FMA and F16C.
            Kernel::Amx | Kernel::Avx512Vnni => {
                unsafe { quantize_avx512(x, &mut act) };
                return act;
            }
            Kernel::AvxVnni | Kernel::Avx2 => {
                unsafe { quantize_avx2(x, &mut act) };
                return act;
            }
            Kernel::Portable => {}
        }
        let _ = kernel;
        quantize_blocks(x, &mut act);
        act
    }

    /// Dot products of tile `t` with activation rows `first..first + R`.
    #[inline]
    fn tile<const R: usize>(
        &self,
        kernel: Kernel,
        t: usize,
        act: &Quantized,
        first: usize,
        out: &mut [[f32; TILE]; R],
    ) {
        let qs = &self.qs[t * self.blocks * TILE_BLOCK_BYTES..][..self.blocks * TILE_BLOCK_BYTES];
        let rows: [usize; R] = std::array::from_fn(|j| first + j);
        let scales = match &self.scales {
            Scales::Blocks(s) => &s[t * self.blocks * TILE..][..self.blocks * TILE],
            Scales::Rows(s) => {
                let row_scales = s[t * TILE..][..TILE].try_into().unwrap_or(&[0.0; TILE]);
                crate::int8_row_scaled::tile(kernel, qs, row_scales, act, &rows, self.blocks, out);
                return;
            }
        };
        match kernel {
            // SAFETY (each x86 arm): `Kernel::available` lists a variant only when the CPU has
            // its features; the slices hold whole tiles and whole activation rows.
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx | Kernel::Avx512Vnni => unsafe {
                vnni512::tile(qs, scales, act, &rows, self.blocks, out)
            },
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni => unsafe { avxvnni::tile(qs, scales, act, &rows, self.blocks, out) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::tile(qs, scales, act, &rows, self.blocks, out) },
            Kernel::Portable => portable_tile(qs, scales, act, &rows, self.blocks, out),
        }
    }
}

/// `x` rounded to the nearest integer, ties to even, for |x| < 2²²: the rounding of
/// llama.cpp's AVX2 activation quantiser, without the libm `roundf` call per value that
/// `f32::round` costs (2% of a `bench generate` profile).
#[inline(always)]
fn round_even(x: f32) -> f32 {
    use crate::activation::ROUNDER;
    (x + ROUNDER) - ROUNDER
}

const ROUNDER_BITS: i32 = 0x4B40_0000;

/// That `data` holds a `rows × cols` f32 matrix whose rows are whole blocks of `block` values.
pub(crate) fn check_f32_shape(
    rows: usize,
    cols: usize,
    data: &[f32],
    block: usize,
) -> Result<(), Int8Error> {
    if !cols.is_multiple_of(block) {
        return Err(Int8Error::Width(cols));
    }
    if data.len() != rows * cols {
        return Err(Int8Error::Size {
            rows,
            cols,
            got: data.len() * 4,
            want: rows * cols * 4,
        });
    }
    Ok(())
}

/// As [`quantize_avx512`], a block in four 256-bit registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], act: &mut Quantized) {
    use std::arch::x86_64::*;
    let signless = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let (lo, hi) = (_mm256_set1_epi32(-act.limit), _mm256_set1_epi32(act.limit));
    for (i, block) in x.chunks_exact(BLOCK).enumerate() {
        let v: [__m256; 4] = std::array::from_fn(|k| _mm256_loadu_ps(block.as_ptr().add(8 * k)));
        let abs = _mm256_max_ps(
            _mm256_max_ps(_mm256_and_ps(v[0], signless), _mm256_and_ps(v[1], signless)),
            _mm256_max_ps(_mm256_and_ps(v[2], signless), _mm256_and_ps(v[3], signless)),
        );
        let m4 = _mm_max_ps(_mm256_castps256_ps128(abs), _mm256_extractf128_ps::<1>(abs));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
        let d = amax / act.limit as f32;
        let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let q: [__m256i; 4] = std::array::from_fn(|k| {
            let r = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], inv));
            _mm256_min_epi32(_mm256_max_epi32(r, lo), hi)
        });
        let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        // i32 → i16 → i8 with saturation (values are within ±127): the packs interleave
        // 128-bit lanes, which the final permutation puts back in order.
        let w = _mm256_packs_epi32(q[0], q[1]);
        let z = _mm256_packs_epi32(q[2], q[3]);
        let bytes = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(w, z),
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
        );
        _mm256_storeu_si256(act.q.as_mut_ptr().add(i * BLOCK) as *mut __m256i, bytes);
        let s4 = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256::<1>(sum),
        );
        let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        let total = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
        let rounded = _mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d)));
        *act.scale.get_unchecked_mut(i) = _mm_cvtss_f32(rounded);
        *act.offset.get_unchecked_mut(i) = 128 * total;
    }
}

/// One block's 32 values in two registers, written with intrinsics: the loops of
/// `quantize_blocks` compiled for AVX-512 ran at a third of a value per cycle (the scale's f16
/// rounding through `half` and the lane reductions), 19% of the encoder's products. Same
/// numbers: the conversion rounds to nearest, ties to even (the default rounding mode), as
/// the portable loop's `+1.5·2²³` does.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn quantize_avx512(x: &[f32], act: &mut Quantized) {
    use std::arch::x86_64::*;
    let signless = _mm512_set1_epi32(0x7fff_ffff);
    let (lo, hi) = (_mm512_set1_epi32(-act.limit), _mm512_set1_epi32(act.limit));
    for (i, block) in x.chunks_exact(BLOCK).enumerate() {
        let a = _mm512_loadu_ps(block.as_ptr());
        let b = _mm512_loadu_ps(block.as_ptr().add(16));
        let abs = _mm512_max_ps(
            _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), signless)),
            _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(b), signless)),
        );
        let amax = _mm512_reduce_max_ps(abs);
        let d = amax / act.limit as f32;
        let inv = _mm512_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let qa = _mm512_min_epi32(
            _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(a, inv)), lo),
            hi,
        );
        let qb = _mm512_min_epi32(
            _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(b, inv)), lo),
            hi,
        );
        let out = act.q.as_mut_ptr().add(i * BLOCK);
        _mm_storeu_si128(out as *mut __m128i, _mm512_cvtepi32_epi8(qa));
        _mm_storeu_si128(out.add(16) as *mut __m128i, _mm512_cvtepi32_epi8(qb));
        let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
        // Stored rounded to f16, as in the portable loop.
        let rounded = _mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d)));
        *act.scale.get_unchecked_mut(i) = _mm_cvtss_f32(rounded);
        *act.offset.get_unchecked_mut(i) = 128 * sum;
    }
}

/// The blocks of `x` quantised into `act`, written in 8 independent lanes so that it
/// vectorises (a running max or sum in one chain does not): per block the scale
/// `max |x| / limit`, the values rounded, and the offset term of the weights' `+128`.
#[inline(always)]
fn quantize_blocks(x: &[f32], act: &mut Quantized) {
    for (i, block) in x.chunks_exact(BLOCK).enumerate() {
        let mut lanes = [0f32; 8];
        for chunk in block.chunks_exact(8) {
            for (l, v) in lanes.iter_mut().zip(chunk) {
                *l = l.max(v.abs());
            }
        }
        let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
        let d = amax / act.limit as f32;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let q = &mut act.q[i * BLOCK..][..BLOCK];
        let mut sums = [0i32; 8];
        for (qc, vc) in q.chunks_exact_mut(8).zip(block.chunks_exact(8)) {
            for ((qv, &v), s) in qc.iter_mut().zip(vc).zip(sums.iter_mut()) {
                // The rounded value read straight from the bits of `v·inv + 1.5·2²³` (a float
                // to int conversion does not vectorise here); clamped, so NaN or ∞ input gives
                // a bounded value, not undefined behaviour.
                let r = ((v * inv + crate::activation::ROUNDER).to_bits() as i32)
                    .wrapping_sub(ROUNDER_BITS)
                    .clamp(-act.limit, act.limit);
                *s += r;
                *qv = r as i8;
            }
        }
        // Stored rounded to f16, as llama.cpp's Q8_0 activations are (the GGUF's numbers
        // were tuned against that product).
        act.scale[i] = f16::from_f32(d).to_f32();
        act.offset[i] = 128 * sums.iter().sum::<i32>();
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

/// The code paths of the tile product. One tile layout serves them all; each path computes
/// the same integer dot products, so they differ only in the rounding of the f32 scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Intel's AMX tile unit (Sapphire Rapids and later) for the encoder's products
    /// ([`crate::amx_matmul`]); the block-scaled products here, the decoder's, and everything
    /// else run the AVX-512 VNNI path, which every AMX CPU has.
    #[cfg(target_arch = "x86_64")]
    Amx,
    /// 512-bit VNNI: one instruction multiplies 4 columns of 16 rows (Intel since Ice Lake,
    /// AMD Zen 4).
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// 256-bit VNNI (Intel Alder Lake and later without AVX-512).
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// AVX2 + FMA: `maddubs`/`madd` pairs, as llama.cpp's AVX2 dot products (every x86 CPU of
    /// the last decade: laptops, AMD before Zen 4).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Plain Rust in fixed 64-lane chunks that the compiler vectorises for the target (NEON on
    /// ARM, SSE2 on old x86); also the reference of the tests.
    Portable,
}

/// `MEDLIT_KERNEL` names a path to force (tests and benchmarks run every path the machine has).
pub const KERNEL_ENV: &str = "MEDLIT_KERNEL";

/// `MEDLIT_AVX2_ACTIVATION_BITS=8` keeps eight-bit activations in every AVX2 product (and the
/// sign trick's slower step), so both forms can be measured on one machine; unset or `7`,
/// matrices that allow it ([`Int8Matrix::with_narrow_activations_on_avx2`]) take seven.
pub const AVX2_BITS_ENV: &str = "MEDLIT_AVX2_ACTIVATION_BITS";

/// Whether [`AVX2_BITS_ENV`] leaves narrow activations on; read once per process. A value
/// other than 7 or 8 is logged and treated as unset, as a bad `MEDLIT_KERNEL` is.
pub fn narrow_activations_allowed() -> bool {
    use std::sync::OnceLock;
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        parse_avx2_bits(std::env::var(AVX2_BITS_ENV).ok().as_deref()).unwrap_or_else(|bad| {
            tracing::warn!("{AVX2_BITS_ENV}={bad}: not 7 or 8; using seven where allowed");
            true
        })
    })
}

/// `Ok(narrow allowed)` for unset, empty, `7` or `8`; `Err(value)` for anything else.
fn parse_avx2_bits(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None | Some("") | Some("7") => Ok(true),
        Some("8") => Ok(false),
        Some(other) => Err(other.to_string()),
    }
}

impl Kernel {
    /// Every path, fastest first.
    pub fn all() -> Vec<Kernel> {
        vec![
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni,
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2,
            Kernel::Portable,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => "amx",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => "avx512vnni",
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni => "avxvnni",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// The path of the vector instructions this path runs everything but the encoder's
    /// products on: AVX-512 VNNI for AMX, itself otherwise.
    pub fn vector_level(self) -> Kernel {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => Kernel::Avx512Vnni,
            other => other,
        }
    }

    /// Whether this is the AMX path (false on every target without one).
    pub fn is_amx(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self == Kernel::Amx
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            let vnni512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni");
            match self {
                Kernel::Amx => vnni512 && crate::amx_matmul::amx_usable(),
                Kernel::Avx512Vnni => vnni512,
                Kernel::AvxVnni => avx2 && has!("avxvnni"),
                Kernel::Avx2 => avx2,
                Kernel::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            matches!(self, Kernel::Portable)
        }
    }

    /// The paths this CPU can run, fastest first.
    pub fn available() -> Vec<Kernel> {
        Self::all().into_iter().filter(|k| k.supported()).collect()
    }

    /// The path named `name` (as `MEDLIT_KERNEL` takes it), if this CPU can run it.
    pub fn parse(name: &str) -> Result<Kernel, Int8Error> {
        let k = Self::all()
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| Int8Error::UnknownKernel(name.to_string()))?;
        if k.supported() {
            Ok(k)
        } else {
            Err(Int8Error::UnsupportedKernel(k.name()))
        }
    }

    /// The path the products use: `MEDLIT_KERNEL` when it names one this CPU runs, else the
    /// fastest this CPU has. Decided once per process; [`Kernel::check_env`] says beforehand
    /// whether the variable is usable.
    pub fn selected() -> Kernel {
        use std::sync::OnceLock;
        static SELECTED: OnceLock<Kernel> = OnceLock::new();
        *SELECTED.get_or_init(|| match Self::check_env() {
            Ok(Some(k)) => k,
            Ok(None) => Self::automatic(),
            Err(e) => {
                tracing::warn!("{e}; using the fastest path this CPU has");
                Self::automatic()
            }
        })
    }

    /// The path taken when none is asked for: the fastest this CPU runs, except AMX, which
    /// runs only when asked for (`MEDLIT_KERNEL=amx`) until its speed has been measured on an
    /// AMX machine against the AVX-512 VNNI path (README, "bench embed").
    pub fn automatic() -> Kernel {
        Self::available()
            .into_iter()
            .find(|k| !k.is_amx())
            .unwrap_or(Kernel::Portable)
    }

    /// `MEDLIT_KERNEL` read and checked: none set, a path this CPU runs, or why not.
    pub fn check_env() -> Result<Option<Kernel>, Int8Error> {
        match std::env::var(KERNEL_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// The CPU features the kernels look for, as this CPU reports them (for benchmark reports).
pub fn cpu_features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let mut out = Vec::new();
        for (name, on) in [
            ("sse4.2", has!("sse4.2")),
            ("avx", has!("avx")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avxvnni", has!("avxvnni")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vnni", has!("avx512vnni")),
            ("amx_int8", crate::amx_matmul::amx_usable()),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut out = vec!["neon"];
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            out.push("dotprod");
        }
        out
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

/// The same arithmetic in plain Rust, written for the compiler to vectorise on any target
/// ([`portable_block_dot`] per block, no offset needed). Also the reference the other paths
/// are tested against.
fn portable_tile<const R: usize>(
    qs: &[u8],
    scales: &[f16],
    act: &Quantized,
    rows: &[usize; R],
    blocks: usize,
    out: &mut [[f32; TILE]; R],
) {
    let cols = blocks * BLOCK;
    // Converted once for the `R` rows: without F16C each conversion is a dozen instructions,
    // more than the block's multiply-adds.
    let scales: Vec<f32> = scales.iter().map(|s| s.to_f32()).collect();
    for (o, &i) in out.iter_mut().zip(rows) {
        let mut acc = [0f32; TILE];
        for b in 0..blocks {
            let isum = portable_block_dot(
                &qs[b * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES],
                &act.q[i * cols + b * BLOCK..][..BLOCK],
            );
            let xd = act.scale[i * blocks + b];
            for (r, (a, s)) in acc.iter_mut().zip(isum).enumerate() {
                *a += s as f32 * (scales[b * TILE + r] * xd);
            }
        }
        *o = acc;
    }
}

/// One block of a tile against one block of activations, in i32 per row of the tile: the 64
/// bytes of a column group are 64 lanes (row `k / 4`, column `k % 4`) multiplied by the
/// group's 4 activations repeated, the weights' `+128` taken off per value. Two groups at a
/// time in i16 lanes (every target multiplies i16; SSE2 has no i32 multiply): each product is
/// within 128 × 127, two of them within i16.
#[inline(always)]
pub(crate) fn portable_block_dot(w: &[u8], x: &[i8]) -> [i32; TILE] {
    const LANES: usize = TILE * 4;
    let mut lanes = [0i32; LANES];
    for (wp, xp) in w.chunks_exact(2 * LANES).zip(x.chunks_exact(8)) {
        let mut pair = [0i16; LANES];
        for (wg, xg) in wp.chunks_exact(LANES).zip(xp.chunks_exact(4)) {
            let x4 = [xg[0], xg[1], xg[2], xg[3]].map(i16::from);
            for (p4, w4) in pair.chunks_exact_mut(4).zip(wg.chunks_exact(4)) {
                for c in 0..4 {
                    p4[c] += (i16::from(w4[c]) - 128) * x4[c];
                }
            }
        }
        for (l, p) in lanes.iter_mut().zip(pair) {
            *l += i32::from(p);
        }
    }
    std::array::from_fn(|r| lanes[4 * r..4 * r + 4].iter().sum())
}

/// One column group's products added to `sum` on AVX2 without VNNI, from 32 stored weight
/// bytes and the broadcast activations. Stored as w + 128: flipping the top bit gives w as
/// i8. `maddubs` takes an unsigned and a signed operand, so |w| × (x with w's sign): its i16
/// pair sums stay within 2 × 128 × 127, short of saturation. (A macro: a helper function
/// without the callers' target features might not inline its intrinsics.)
#[cfg(target_arch = "x86_64")]
macro_rules! avx2_group_dot {
    ($sum:expr, $w:expr, $x:expr) => {{
        let wv = _mm256_xor_si256($w, _mm256_set1_epi8(-128));
        let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8($x, wv));
        _mm256_add_epi32($sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }};
}
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2_group_dot;

/// The one-activation-row (decode) loop of the 256-bit paths, which differ only in how a
/// column group's products are summed (`$step`, from the running sum, 32 stored weight
/// bytes and the broadcast activations) and whether the `+128` of the stored weights is
/// taken off afterwards (`$offset`). Both halves of the tile go in one pass, so each column
/// group's activations are broadcast once and the two halves' chains run side by side.
#[cfg(target_arch = "x86_64")]
macro_rules! one_row_256 {
    ($features:literal, |$sum:ident, $w:ident, $x:ident| $step:block, $offset:literal) => {
        /// # Safety
        /// As [`tile`].
        #[target_feature(enable = $features)]
        unsafe fn one_row(
            qs: &[u8],
            scales: &[f16],
            act: &Quantized,
            row: usize,
            blocks: usize,
            out: &mut [f32; TILE],
        ) {
            let cols = blocks * BLOCK;
            let mut acc = [_mm256_setzero_ps(); 2];
            for b in 0..blocks {
                let mut isum = [_mm256_setzero_si256(); 2];
                let w = qs.as_ptr().add(b * TILE_BLOCK_BYTES);
                let x = act.q.as_ptr().add(row * cols + b * BLOCK);
                let ahead = w.wrapping_add(PREFETCH_BLOCKS * TILE_BLOCK_BYTES);
                for line in 0..TILE_BLOCK_BYTES / 64 {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line * 64) as *const i8);
                }
                for g in 0..BLOCK / 4 {
                    let $x =
                        _mm256_set1_epi32(std::ptr::read_unaligned(x.add(g * 4) as *const i32));
                    for (h, s) in isum.iter_mut().enumerate() {
                        let $w = _mm256_loadu_si256(w.add(g * TILE * 4 + h * 32) as *const __m256i);
                        let $sum = *s;
                        *s = $step;
                    }
                }
                let k = row * blocks + b;
                let xd = _mm256_set1_ps(act.scale[k]);
                for (h, (a, s)) in acc.iter_mut().zip(isum).enumerate() {
                    let s = if $offset {
                        _mm256_sub_epi32(s, _mm256_set1_epi32(act.offset[k]))
                    } else {
                        s
                    };
                    let ws = _mm256_cvtph_ps(_mm_loadu_si128(
                        scales.as_ptr().add(b * TILE + h * 8) as *const __m128i,
                    ));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(ws, xd), *a);
                }
            }
            _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
        }
    };
}

/// 256-bit paths: a tile's 16 rows are two halves of 8 (the low and high 32 bytes of each
/// 64-byte column group), each run over the whole row of blocks in turn so that the `R`
/// accumulator chains and the half's registers fit the 16 ymm registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Quantized, BLOCK, PREFETCH_BLOCKS, TILE, TILE_BLOCK_BYTES};
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `qs`/`scales` hold `blocks` blocks of one tile
    /// and `act` holds every row named in `rows`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn tile<const R: usize>(
        qs: &[u8],
        scales: &[f16],
        act: &Quantized,
        rows: &[usize; R],
        blocks: usize,
        out: &mut [[f32; TILE]; R],
    ) {
        let cols = blocks * BLOCK;
        let flip = _mm256_set1_epi8(-128);
        let ones = _mm256_set1_epi16(1);
        if R == 1 {
            return one_row(qs, scales, act, rows[0], blocks, &mut out[0]);
        }
        for half in 0..2 {
            let mut acc = [_mm256_setzero_ps(); R];
            for b in 0..blocks {
                let mut isum = [_mm256_setzero_si256(); R];
                let w = qs.as_ptr().add(b * TILE_BLOCK_BYTES + half * 32);
                for g in 0..BLOCK / 4 {
                    // Stored as w + 128: flipping the top bit gives w as i8. maddubs takes an
                    // unsigned and a signed operand, so |w| × (x with w's sign): its i16 pair
                    // sums stay within 2 × 128 × 127, short of saturation.
                    let wv = _mm256_xor_si256(
                        _mm256_loadu_si256(w.add(g * TILE * 4) as *const __m256i),
                        flip,
                    );
                    let aw = _mm256_abs_epi8(wv);
                    for j in 0..R {
                        let x = act.q.as_ptr().add(rows[j] * cols + b * BLOCK + g * 4);
                        let xv = _mm256_set1_epi32(std::ptr::read_unaligned(x as *const i32));
                        let pairs = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
                        isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(pairs, ones));
                    }
                }
                let ws = _mm256_cvtph_ps(_mm_loadu_si128(
                    scales.as_ptr().add(b * TILE + half * 8) as *const __m128i
                ));
                for j in 0..R {
                    let d = _mm256_mul_ps(ws, _mm256_set1_ps(act.scale[rows[j] * blocks + b]));
                    acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), d, acc[j]);
                }
            }
            for j in 0..R {
                _mm256_storeu_ps(out[j].as_mut_ptr().add(half * 8), acc[j]);
            }
        }
    }
    one_row_256!(
        "avx2,fma,f16c",
        |sum, w, x| { avx2_group_dot!(sum, w, x) },
        false
    );
}

#[cfg(target_arch = "x86_64")]
mod avxvnni {
    use super::{Quantized, BLOCK, PREFETCH_BLOCKS, TILE, TILE_BLOCK_BYTES};
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX2, FMA, F16C and AVX-VNNI; `qs`/`scales` hold `blocks` blocks of
    /// one tile and `act` holds every row named in `rows`.
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    pub(super) unsafe fn tile<const R: usize>(
        qs: &[u8],
        scales: &[f16],
        act: &Quantized,
        rows: &[usize; R],
        blocks: usize,
        out: &mut [[f32; TILE]; R],
    ) {
        if R == 1 {
            return one_row(qs, scales, act, rows[0], blocks, &mut out[0]);
        }
        let cols = blocks * BLOCK;
        for half in 0..2 {
            let mut acc = [_mm256_setzero_ps(); R];
            for b in 0..blocks {
                let mut isum = [_mm256_setzero_si256(); R];
                let w = qs.as_ptr().add(b * TILE_BLOCK_BYTES + half * 32);
                if half == 0 {
                    let base = qs
                        .as_ptr()
                        .wrapping_add((b + PREFETCH_BLOCKS) * TILE_BLOCK_BYTES);
                    for line in 0..TILE_BLOCK_BYTES / 64 {
                        _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(line * 64) as *const i8);
                    }
                }
                for g in 0..BLOCK / 4 {
                    let wv = _mm256_loadu_si256(w.add(g * TILE * 4) as *const __m256i);
                    for j in 0..R {
                        let x = act.q.as_ptr().add(rows[j] * cols + b * BLOCK + g * 4);
                        let xv = _mm256_set1_epi32(std::ptr::read_unaligned(x as *const i32));
                        isum[j] = _mm256_dpbusd_avx_epi32(isum[j], wv, xv);
                    }
                }
                let ws = _mm256_cvtph_ps(_mm_loadu_si128(
                    scales.as_ptr().add(b * TILE + half * 8) as *const __m128i
                ));
                for j in 0..R {
                    let k = rows[j] * blocks + b;
                    let s = _mm256_sub_epi32(isum[j], _mm256_set1_epi32(act.offset[k]));
                    let d = _mm256_mul_ps(ws, _mm256_set1_ps(act.scale[k]));
                    acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[j]);
                }
            }
            for j in 0..R {
                _mm256_storeu_ps(out[j].as_mut_ptr().add(half * 8), acc[j]);
            }
        }
    }

    one_row_256!(
        "avx2,fma,f16c,avxvnni",
        |sum, w, x| { _mm256_dpbusd_avx_epi32(sum, w, x) },
        true
    );
}

#[cfg(target_arch = "x86_64")]
mod vnni512 {
    use super::{Quantized, BLOCK, PREFETCH_BLOCKS, TILE, TILE_BLOCK_BYTES};
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
            let ahead = qs
                .as_ptr()
                .wrapping_add((b + PREFETCH_BLOCKS) * TILE_BLOCK_BYTES);
            for line in 0..TILE_BLOCK_BYTES / 64 {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line * 64) as *const i8);
            }
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

    #[test]
    fn the_avx2_bits_switch_takes_seven_or_eight_and_names_anything_else() {
        assert_eq!(parse_avx2_bits(None), Ok(true));
        assert_eq!(parse_avx2_bits(Some(" 7 ")), Ok(true));
        assert_eq!(parse_avx2_bits(Some("")), Ok(true));
        assert_eq!(parse_avx2_bits(Some("8")), Ok(false));
        assert_eq!(parse_avx2_bits(Some("eight")), Err("eight".to_string()));
        assert_eq!(parse_avx2_bits(Some("16")), Err("16".to_string()));
    }

    #[test]
    fn an_f32_matrix_quantised_at_load_multiplies_within_its_rounding() {
        let (rows, cols, m) = (40, 96, 3);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 60.0)
            .collect();
        let x: Vec<f32> = (0..m * cols)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 9.0)
            .collect();
        let q = Int8Matrix::from_f32(rows, cols, &w).unwrap();
        let mut out = vec![0f32; m * rows];
        q.matmul_single_thread(&x, m, &mut out);
        for i in 0..m {
            for r in 0..rows {
                let (xr, wr) = (&x[i * cols..][..cols], &w[r * cols..][..cols]);
                let exact: f32 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
                // Each value is off by at most half its block's step (max |v| / 127 / 2).
                let mut bound = 0f32;
                for (xb, wb) in xr.chunks(BLOCK).zip(wr.chunks(BLOCK)) {
                    let step = |v: &[f32]| v.iter().fold(0f32, |a, b| a.max(b.abs())) / 127.0;
                    let (dx, dw) = (step(xb) * 0.5, step(wb) * 0.5 * 1.001);
                    for (a, b) in xb.iter().zip(wb) {
                        bound += a.abs() * dw + b.abs() * dx + dx * dw;
                    }
                }
                let got = out[i * rows + r];
                assert!(
                    (got - exact).abs() <= bound,
                    "{got} vs {exact}, bound {bound}"
                );
            }
        }
        assert!(matches!(
            Int8Matrix::from_f32(2, 33, &[0.0; 66]),
            Err(Int8Error::Width(33))
        ));
        assert!(Int8Matrix::from_f32(2, 32, &[0.0; 63]).is_err());
    }

    #[test]
    fn every_path_quantises_activations_as_the_portable_loop_does() {
        let cols = 4 * BLOCK;
        let w = Int8Matrix::from_f32(16, cols, &vec![0.5; 16 * cols]).unwrap();
        let mut x = crate::test_noise::noise(6 * cols, 5, 3.0);
        // Ties at the rounding (127 · k/2 over a block whose max is 127), an outlier, a zero
        // block and a block of one negative extreme.
        for (c, v) in x[..BLOCK].iter_mut().enumerate() {
            *v = if c == 0 {
                127.0
            } else {
                (c as f32 - 16.0) + 0.5
            };
        }
        x[BLOCK + 3] = -900.0;
        x[2 * BLOCK..3 * BLOCK].fill(0.0);
        x[3 * BLOCK..4 * BLOCK].fill(-1e-3);
        let want = w.quantize(Kernel::Portable, &x, 6);
        for kernel in Kernel::available() {
            let got = w.quantize(kernel, &x, 6);
            assert_eq!(got.q, want.q, "{}", kernel.name());
            assert_eq!(got.scale, want.scale, "{}", kernel.name());
            assert_eq!(got.offset, want.offset, "{}", kernel.name());
        }
    }

    #[test]
    fn activation_rounding_is_to_nearest_with_ties_to_even() {
        for (x, want) in [
            (0.4, 0.0),
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-2.5, -2.0),
            (-2.6, -3.0),
            (126.7, 127.0),
            (-127.0, -127.0),
        ] {
            assert_eq!(round_even(x), want, "{x}");
        }
        // The quantiser's integer read from the bits agrees with it.
        for i in -2540..=2540 {
            let x = i as f32 / 20.0;
            let bits =
                ((x + crate::activation::ROUNDER).to_bits() as i32).wrapping_sub(ROUNDER_BITS);
            assert_eq!(bits, round_even(x) as i32, "{x}");
        }
    }

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
            for kernel in Kernel::available() {
                let mut got = vec![0f32; m * rows];
                w.matmul_on(kernel, &x, m, &mut got, None);
                for ((g, e), b) in got.iter().zip(&want).zip(&bound) {
                    assert!(
                        (g - e).abs() <= b * 1.01 + 1e-4,
                        "{g} vs {e}, bound {b} (m {m}, {})",
                        kernel.name()
                    );
                }
            }
        }
    }

    /// Every path this CPU runs equals the portable one: the integer dot products are the
    /// same, so only the f32 scaling's rounding may differ (within 1e-5 of the tile's largest
    /// output), on the extreme values too (weights of 127 and −128, activations of ±127).
    #[test]
    fn every_path_equals_the_portable_one() {
        let (rows, cols) = (64, 640);
        let (mut raw, _) = q8_0_bytes(rows, cols);
        // Extremes in the first row of blocks: all −128 then all 127.
        for (i, v) in raw[2..34].iter_mut().enumerate() {
            *v = if i < 16 { 0x80 } else { 0x7f };
        }
        let w = Int8Matrix::from_gguf(GgmlDType::Q8_0, rows, cols, &raw).unwrap();
        let mut x: Vec<f32> = (0..4 * cols)
            .map(|i| ((i * 7 % 23) as f32) - 11.0)
            .collect();
        x[..BLOCK]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = if i % 2 == 0 { 127.0 } else { -127.0 });
        let act = w.quantize(Kernel::Portable, &x, 4);
        let available = Kernel::available();
        assert!(available.contains(&Kernel::Portable));
        for kernel in available {
            for t in 0..rows / TILE {
                let mut fast = [[0f32; TILE]; 4];
                let mut slow = [[0f32; TILE]; 4];
                let mut one = [[0f32; TILE]; 1];
                w.tile(kernel, t, &act, 0, &mut fast);
                w.tile(Kernel::Portable, t, &act, 0, &mut slow);
                w.tile(kernel, t, &act, 2, &mut one);
                let largest = slow.iter().flatten().fold(1f32, |a, v| a.max(v.abs()));
                for (f, s) in fast.iter().flatten().zip(slow.iter().flatten()) {
                    assert!(
                        (f - s).abs() <= 1e-5 * largest,
                        "{f} vs {s} ({}, largest {largest})",
                        kernel.name()
                    );
                }
                assert_eq!(one[0], fast[2], "one row alone as in a group of four");
            }
        }
    }

    #[test]
    fn a_forced_path_is_named_and_checked() {
        assert_eq!(Kernel::parse("portable").unwrap(), Kernel::Portable);
        assert!(matches!(
            Kernel::parse("sse9"),
            Err(Int8Error::UnknownKernel(_))
        ));
        for k in Kernel::all() {
            assert_eq!(
                Kernel::parse(k.name()).is_ok(),
                k.supported(),
                "{}",
                k.name()
            );
        }
        let e = Kernel::parse("sse9").unwrap_err().to_string();
        assert!(e.contains("MEDLIT_KERNEL") && e.contains("avx2"), "{e}");
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
            let k = Kernel::selected();
            w.matmul_on(k, &x, m, &mut alone, None);
            w.matmul_on(k, &x, m, &mut shared, Some(pool));
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
