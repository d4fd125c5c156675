//! Products with bf16 weights and f32 activations, accumulated in f32, the weights widened in
//! registers as they are read.
//!
//! Why: candle's CPU backend has no bf16 product; it widens both operands to f32 on every call.
//! For a decoded token that means writing an f32 copy of every weight matrix (18.6 GB for Gemma
//! 4 E4B) to multiply one row: 17 s a token on a 2-core AMD EPYC. Widening 8 values at a time
//! in registers reads each weight once, at memory speed.
//!
//! Paths follow [`crate::int8_matmul::Kernel`] (and its `MEDLIT_KERNEL` switch): decode (fewer
//! than 4 activation rows) streams one weight row at a time in AVX2 + FMA code on every x86
//! path above the portable one; prefill multiplies register tiles of weight rows × activation
//! rows, in 16 lanes on the AVX-512 path and 8 on the AVX2 ones; the portable path is plain Rust
//! in 8-lane chunks that the compiler vectorises for the target (NEON on ARM).
use half::bf16;

use crate::int8_matmul::Kernel;
use crate::shared_out::SharedOut;

/// Weight rows per task handed to a thread.
const ROWS_PER_TASK: usize = 8;
/// Work below this many multiply-adds is done on the calling thread alone.
const MIN_PARALLEL_MACS: usize = 1 << 19;

#[derive(Debug, thiserror::Error)]
pub enum Bf16Error {
    #[error("the matrix holds {got} values where {rows}×{cols} needs {want}")]
    Size {
        rows: usize,
        cols: usize,
        got: usize,
        want: usize,
    },
}

/// A `rows × cols` row-major matrix of bf16 values.
pub struct Bf16Matrix {
    rows: usize,
    cols: usize,
    w: Vec<bf16>,
}

impl Bf16Matrix {
    pub fn new(rows: usize, cols: usize, w: Vec<bf16>) -> Result<Self, Bf16Error> {
        if w.len() != rows * cols {
            return Err(Bf16Error::Size {
                rows,
                cols,
                got: w.len(),
                want: rows * cols,
            });
        }
        Ok(Bf16Matrix { rows, cols, w })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out = x · selfᵀ` for `m` rows of `x` (`m × cols`, row-major); `out` is `m × rows`.
    /// Rows of weights are shared out on candle's barrier pool (the calling thread takes part).
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let pool = candle_core::utils::barrier_pool();
        let parallel = pool.n_workers() > 0 && self.rows * self.cols * m >= MIN_PARALLEL_MACS;
        self.matmul_on(Kernel::selected(), x, m, out, parallel.then_some(pool));
    }

    /// As [`Bf16Matrix::matmul`] on the path `kernel` (tests run each path the CPU has).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize, out: &mut [f32]) {
        self.matmul_on(kernel, x, m, out, None);
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
        let shared = SharedOut::new(out);
        let tasks = self.rows.div_ceil(ROWS_PER_TASK);
        let run = |range: std::ops::Range<usize>| {
            for t in range {
                let first = t * ROWS_PER_TASK;
                let end = (first + ROWS_PER_TASK).min(self.rows);
                let mut r = first;
                // Decode (one activation row) streams each weight row once, as fast as memory
                // gives it: the tiles are for prefill, where arithmetic is the limit.
                #[cfg(target_arch = "x86_64")]
                match kernel {
                    _ if m < 4 => {}
                    // SAFETY: Kernel::supported admits the AVX-512 path only with AVX-512F, and
                    // every other x86 path but the portable one only with AVX2 and FMA.
                    Kernel::Amx | Kernel::Avx512Vnni => {
                        while r + 4 <= end {
                            unsafe { self.rows_against_all_avx512::<4>(r, x, m, &shared) };
                            r += 4;
                        }
                    }
                    Kernel::AvxVnni | Kernel::Avx2 => {
                        while r + 2 <= end {
                            unsafe { self.rows_against_all_avx2::<2>(r, x, m, &shared) };
                            r += 2;
                        }
                    }
                    Kernel::Portable => {}
                }
                for r in r..end {
                    self.row_against_all(kernel, r, x, m, &shared);
                }
            }
        };
        match pool {
            Some(pool) => pool.execute_chunked(tasks, run),
            None => run(0..tasks),
        }
    }

    /// Weight row `r` against every activation row, four at a time so each widened weight
    /// vector is used four times.
    fn row_against_all(&self, kernel: Kernel, r: usize, x: &[f32], m: usize, out: &SharedOut) {
        let k = self.cols;
        let w = &self.w[r * k..(r + 1) * k];
        let mut i = 0;
        while i < m {
            let row = |j: usize| &x[(i + j) * k..][..k];
            // SAFETY (both writes): output column `r` is written by the one task owning row `r`.
            if i + 4 <= m {
                let dots = dot(kernel, w, [row(0), row(1), row(2), row(3)]);
                for (j, d) in dots.iter().enumerate() {
                    unsafe { out.write((i + j) * self.rows + r, &[*d]) };
                }
                i += 4;
            } else {
                let [d] = dot(kernel, w, [row(0)]);
                unsafe { out.write(i * self.rows + r, &[d]) };
                i += 1;
            }
        }
    }
}

/// Register tiles of `RW` weight rows × `RX` activation rows: each widened weight vector feeds
/// `RX` multiply-adds and each activation load `RW`, where one weight row at a time made every
/// multiply-add wait on a load (prefill of Gemma 4 E4B at 0.45× candle's f32 GEMM on a Zen 4).
macro_rules! tiled_rows {
    ($name:ident, $tile:ident, $feature:literal) => {
        impl Bf16Matrix {
            /// Weight rows `r..r + RW` against every activation row, four at a time.
            ///
            /// # Safety
            /// The CPU must have the function's target features; `r + RW <= rows`, and the
            /// caller's task owns output columns `r..r + RW`.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feature)]
            unsafe fn $name<const RW: usize>(
                &self,
                r: usize,
                x: &[f32],
                m: usize,
                out: &SharedOut,
            ) {
                let k = self.cols;
                let w: [&[bf16]; RW] = std::array::from_fn(|i| &self.w[(r + i) * k..][..k]);
                let mut i = 0;
                while i < m {
                    let take = if i + 4 <= m { 4 } else { 1 };
                    let row = |j: usize| &x[(i + j) * k..][..k];
                    let write = |dots: &[[f32; RW]]| {
                        for (j, d) in dots.iter().enumerate() {
                            // SAFETY: columns r..r + RW of every row belong to this task.
                            unsafe { out.write_tile((i + j) * self.rows + r, d) };
                        }
                    };
                    if take == 4 {
                        // SAFETY: the caller's features are this function's.
                        write(&unsafe { $tile::<RW, 4>(w, [row(0), row(1), row(2), row(3)]) });
                    } else {
                        write(&unsafe { $tile::<RW, 1>(w, [row(0)]) });
                    }
                    i += take;
                }
            }
        }
    };
}

tiled_rows!(rows_against_all_avx512, tile_avx512, "avx512f,avx2,fma");
tiled_rows!(rows_against_all_avx2, tile_avx2, "avx2,fma");

/// Dot products of `RW` bf16 rows with `RX` f32 rows, 16 lanes: `out[j][i] = w[i] · x[j]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_avx512<const RW: usize, const RX: usize>(
    w: [&[bf16]; RW],
    x: [&[f32]; RX],
) -> [[f32; RW]; RX] {
    use std::arch::x86_64::*;
    let k = x[0].len();
    let whole = k / 16 * 16;
    let mut acc = [[_mm512_setzero_ps(); RW]; RX];
    let mut c = 0;
    while c < whole {
        // SAFETY: c + 16 <= k, so 16 values of every row are in bounds.
        let wv: [__m512; RW] = std::array::from_fn(|i| unsafe {
            let raw = _mm256_loadu_si256(w[i].as_ptr().add(c) as *const __m256i);
            _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16))
        });
        for j in 0..RX {
            // SAFETY: as above.
            let xv = unsafe { _mm512_loadu_ps(x[j].as_ptr().add(c)) };
            for i in 0..RW {
                acc[j][i] = _mm512_fmadd_ps(wv[i], xv, acc[j][i]);
            }
        }
        c += 16;
    }
    let mut out = [[0f32; RW]; RX];
    for j in 0..RX {
        for i in 0..RW {
            let tail: f32 = (whole..k).map(|t| widen(w[i][t]) * x[j][t]).sum();
            out[j][i] = _mm512_reduce_add_ps(acc[j][i]) + tail;
        }
    }
    out
}

/// As [`tile_avx512`] in 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const RW: usize, const RX: usize>(
    w: [&[bf16]; RW],
    x: [&[f32]; RX],
) -> [[f32; RW]; RX] {
    use std::arch::x86_64::*;
    let k = x[0].len();
    let whole = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); RW]; RX];
    let mut c = 0;
    while c < whole {
        // SAFETY: c + 8 <= k, so 8 values of every row are in bounds.
        let wv: [__m256; RW] = std::array::from_fn(|i| unsafe {
            let raw = _mm_loadu_si128(w[i].as_ptr().add(c) as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16))
        });
        for j in 0..RX {
            // SAFETY: as above.
            let xv = unsafe { _mm256_loadu_ps(x[j].as_ptr().add(c)) };
            for i in 0..RW {
                acc[j][i] = _mm256_fmadd_ps(wv[i], xv, acc[j][i]);
            }
        }
        c += 8;
    }
    let mut out = [[0f32; RW]; RX];
    for j in 0..RX {
        for i in 0..RW {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[j][i]) };
            let tail: f32 = (whole..k).map(|t| widen(w[i][t]) * x[j][t]).sum();
            out[j][i] = lanes.iter().sum::<f32>() + tail;
        }
    }
    out
}

/// `R` dot products of one bf16 row with `R` f32 rows.
fn dot<const R: usize>(kernel: Kernel, w: &[bf16], x: [&[f32]; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Portable {
        // SAFETY: every x86 path but the portable one requires AVX2 and FMA (Kernel::supported).
        return unsafe { dot_avx2(w, x) };
    }
    let _ = kernel;
    dot_portable(w, x)
}

fn widen(b: bf16) -> f32 {
    f32::from_bits((b.to_bits() as u32) << 16)
}

fn dot_portable<const R: usize>(w: &[bf16], x: [&[f32]; R]) -> [f32; R] {
    const L: usize = 8;
    let k = w.len();
    let mut acc = [[0f32; L]; R];
    let whole = k / L * L;
    for c in (0..whole).step_by(L) {
        let wv: [f32; L] = std::array::from_fn(|l| widen(w[c + l]));
        for (a, xr) in acc.iter_mut().zip(x.iter()) {
            for l in 0..L {
                a[l] += wv[l] * xr[c + l];
            }
        }
    }
    let mut out = [0f32; R];
    for (j, a) in acc.iter().enumerate() {
        let mut s: f32 = a.iter().sum();
        for c in whole..k {
            s += widen(w[c]) * x[j][c];
        }
        out[j] = s;
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2<const R: usize>(w: &[bf16], x: [&[f32]; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let k = w.len();
    let whole = k / 8 * 8;
    let wp = w.as_ptr() as *const u16;
    // Two accumulators a row: one FMA's latency is hidden behind the other's.
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    // SAFETY (`widened`, `step`): callers keep c + 8 <= k, so 8 u16 (16 bytes) of `w` and
    // 8 f32 of each `x` row are in bounds.
    let widened = |c: usize| unsafe {
        let raw = _mm_loadu_si128(wp.add(c) as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16))
    };
    let mut c = 0;
    while c + 16 <= whole {
        let (w0, w1) = (widened(c), widened(c + 8));
        for j in 0..R {
            // SAFETY: as above.
            unsafe {
                let xp = x[j].as_ptr().add(c);
                acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp), acc[j][0]);
                acc[j][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp.add(8)), acc[j][1]);
            }
        }
        c += 16;
    }
    if c < whole {
        let w0 = widened(c);
        for j in 0..R {
            // SAFETY: as above.
            unsafe {
                acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[j].as_ptr().add(c)), acc[j][0]);
            }
        }
    }
    let mut out = [0f32; R];
    for j in 0..R {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc[j][0], acc[j][1])) };
        let mut s: f32 = lanes.iter().sum();
        for t in whole..k {
            s += widen(w[t]) * x[j][t];
        }
        out[j] = s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        crate::test_noise::noise(n, seed, 0.5)
    }

    /// Each path on this CPU equals the f64 reference of the same widened weights, for widths
    /// with and without a tail and for 1 to 9 activation rows.
    #[test]
    fn every_path_matches_the_widened_reference() {
        for (rows, cols) in [(3, 8), (17, 37), (33, 256), (8, 1029)] {
            let w: Vec<bf16> = noise(rows * cols, 1)
                .into_iter()
                .map(bf16::from_f32)
                .collect();
            let mat = Bf16Matrix::new(rows, cols, w.clone()).unwrap();
            for m in [1, 2, 4, 5, 9] {
                let x = noise(m * cols, 2);
                let mut want = vec![0f64; m * rows];
                for i in 0..m {
                    for r in 0..rows {
                        want[i * rows + r] = (0..cols)
                            .map(|c| w[r * cols + c].to_f32() as f64 * x[i * cols + c] as f64)
                            .sum();
                    }
                }
                for kernel in Kernel::available() {
                    let mut got = vec![f32::NAN; m * rows];
                    mat.matmul_with(kernel, &x, m, &mut got);
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{} {rows}x{cols} m={m}: {g} vs {w}",
                            kernel.name()
                        );
                    }
                }
                // The pooled product equals the single-thread one.
                let (mut a, mut b) = (vec![0f32; m * rows], vec![0f32; m * rows]);
                mat.matmul(&x, m, &mut a);
                mat.matmul_with(Kernel::selected(), &x, m, &mut b);
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn a_matrix_of_the_wrong_size_is_refused() {
        assert!(matches!(
            Bf16Matrix::new(2, 3, vec![bf16::ZERO; 5]),
            Err(Bf16Error::Size { want: 6, .. })
        ));
    }
}
