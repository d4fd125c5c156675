//! Int8 products on Intel's AMX tile unit (Sapphire Rapids and later): the encoder's dense
//! layers, where thousands of token rows meet each weight matrix.
//!
//! Why another layout: AMX multiplies a 16 × 64 tile of i8 activations by a 64 × 16 tile of
//! i8 weights into 16 × 16 i32 sums in one instruction and cannot rescale inside those 64
//! values, so the 32-value blocks of [`crate::int8_matmul`] cannot use it. Here each row of
//! weights and of activations has one scale per 64 values (one tile step): each step's
//! integer sums are stored and added into f32 with the two scales. One scale per whole row
//! (which would let the tiles accumulate across steps) was measured first and lost too much
//! to BERT's outlier dimensions: cosine to ONNX Runtime mean 0.9923, worst 0.9882 on 300
//! sample passages, against the 0.995.
//!
//! The portable loop computes the same integer sums and the same fused scaling in the same
//! order, so the AMX path is tested against it to the bit.
use crate::int8_matmul::{Int8Error, Kernel};

/// Values of one tile row: 64 bytes of i8.
const K_STEP: usize = 64;
/// Rows of one tile, and output columns of one weight tile.
const TILE: usize = 16;
/// Output rows and columns of one pass: 2 × 2 accumulator tiles.
const PASS: usize = 2 * TILE;
/// Bytes of one packed weight tile (16 groups of 4 values × 16 columns).
const TILE_BYTES: usize = TILE * K_STEP;

/// A `rows × cols` matrix of i8 values with one f32 scale per 64 values of a row, packed as
/// AMX weight tiles.
pub struct TileInt8Matrix {
    rows: usize,
    cols: usize,
    /// Rows rounded up to a whole pass; padding rows are zero with scale zero.
    rows_padded: usize,
    /// `[column tile of 16 rows][k step of 64][k/4 in step][row in tile][k % 4]`: the layout
    /// AMX's `tileloadd` reads as the right-hand operand with a 64-byte stride.
    packed: Vec<i8>,
    /// `[row][k step]`.
    scale: Vec<f32>,
}

impl TileInt8Matrix {
    /// Quantises a row-major f32 matrix per 64 values of a row: scale `max |x| / 127`, values
    /// rounded to nearest. `cols` must be a multiple of 64 (the encoder's are 384 and 1,536).
    pub fn from_f32(rows: usize, cols: usize, data: &[f32]) -> Result<Self, Int8Error> {
        crate::int8_matmul::check_f32_shape(rows, cols, data, K_STEP)?;
        let rows_padded = rows.div_ceil(PASS) * PASS;
        let steps = cols / K_STEP;
        let mut packed = vec![0i8; rows_padded * cols];
        let mut scale = vec![0f32; rows_padded * steps];
        for (n, row) in data.chunks_exact(cols).enumerate() {
            let (tile, r) = (n / TILE, n % TILE);
            for (step, block) in row.chunks_exact(K_STEP).enumerate() {
                let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                scale[n * steps + step] = d;
                for (kk, &v) in block.iter().enumerate() {
                    let at =
                        (tile * steps + step) * TILE_BYTES + (kk / 4) * TILE * 4 + r * 4 + kk % 4;
                    packed[at] = (v * inv).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
        Ok(TileInt8Matrix {
            rows,
            cols,
            rows_padded,
            packed,
            scale,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out = x · selfᵀ` for `m` rows of `x` (`m × cols`, row-major) on the calling thread;
    /// `out` is `m × rows`. On the AMX tile unit when `kernel` is [`Kernel::Amx`], else the
    /// portable loop (the same numbers).
    pub fn matmul_single_thread(&self, kernel: Kernel, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "input is not m × cols");
        assert_eq!(out.len(), m * self.rows, "output is not m × rows");
        let act = quantize_rows(x, m, self.cols);
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Amx {
            // SAFETY: Kernel::Amx is admitted only when the CPU has AMX-INT8 and AVX-512 and
            // the kernel granted this process the tile data state (Kernel::supported).
            unsafe { amx::product(self, &act, m, out) };
            return;
        }
        let _ = kernel;
        self.portable(&act, m, out);
    }

    /// The reference: the same i32 sums per step and the same fused scaling, in plain Rust.
    fn portable(&self, act: &BlockQuantized, m: usize, out: &mut [f32]) {
        let steps = self.cols / K_STEP;
        let mut column = vec![0i8; self.cols];
        for n in 0..self.rows {
            let (tile, r) = (n / TILE, n % TILE);
            for (k, c) in column.iter_mut().enumerate() {
                let (step, kk) = (k / K_STEP, k % K_STEP);
                *c = self.packed
                    [(tile * steps + step) * TILE_BYTES + (kk / 4) * TILE * 4 + r * 4 + kk % 4];
            }
            for i in 0..m {
                let x = &act.q[i * self.cols..][..self.cols];
                let mut acc = 0f32;
                for (s, (xb, wb)) in x
                    .chunks_exact(K_STEP)
                    .zip(column.chunks_exact(K_STEP))
                    .enumerate()
                {
                    let sum: i32 = xb
                        .iter()
                        .zip(wb)
                        .map(|(&a, &b)| i32::from(a) * i32::from(b))
                        .sum();
                    let scale = act.scale[i * steps + s] * self.scale[n * steps + s];
                    acc = (sum as f32).mul_add(scale, acc);
                }
                out[i * self.rows + n] = acc;
            }
        }
    }
}

/// Activations quantised per 64 values of a row (`scale` is `[row][k step]`), rows padded
/// with zeros to a whole pass.
struct BlockQuantized {
    q: Vec<i8>,
    scale: Vec<f32>,
}

fn quantize_rows(x: &[f32], m: usize, cols: usize) -> BlockQuantized {
    let padded = m.div_ceil(PASS) * PASS;
    let mut act = BlockQuantized {
        q: vec![0; padded * cols],
        scale: vec![0.0; padded * (cols / K_STEP)],
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { quantize_avx512(x, &mut act) };
        return act;
    }
    quantize_each_row(x, &mut act);
    act
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn quantize_avx512(x: &[f32], act: &mut BlockQuantized) {
    quantize_each_row(x, act)
}

/// Per 64 values of a row: the scale `max |x| / 127` and the values rounded to nearest (ties
/// to even, read from the bits of `v·inv + 1.5·2²³`, which vectorises where a float-to-int
/// conversion does not), in 16 independent lanes.
#[inline(always)]
fn quantize_each_row(x: &[f32], act: &mut BlockQuantized) {
    const ROUNDER_BITS: i32 = 0x4B40_0000;
    for (b, (block, q)) in x
        .chunks_exact(K_STEP)
        .zip(act.q.chunks_exact_mut(K_STEP))
        .enumerate()
    {
        let mut lanes = [0f32; 16];
        for chunk in block.chunks_exact(16) {
            for (l, v) in lanes.iter_mut().zip(chunk) {
                *l = l.max(v.abs());
            }
        }
        let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        act.scale[b] = d;
        for (q, &v) in q.iter_mut().zip(block) {
            *q = ((v * inv + crate::activation::ROUNDER).to_bits() as i32)
                .wrapping_sub(ROUNDER_BITS)
                .clamp(-127, 127) as i8;
        }
    }
}

/// Whether this process may use the AMX tile unit: the CPU reports AMX-TILE and AMX-INT8, and
/// Linux grants the tile data state on request (without the grant the first tile instruction
/// is a SIGILL). Asked once per process.
pub(crate) fn amx_usable() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        use std::sync::OnceLock;
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            use std::arch::x86_64::__cpuid_count;
            let leaf7 = __cpuid_count(7, 0);
            let (tile, int8) = ((leaf7.edx >> 24) & 1 == 1, (leaf7.edx >> 25) & 1 == 1);
            if !(tile && int8) {
                return false;
            }
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: arch_prctl with these arguments only asks the kernel for permission
            // to use the tile data state; it touches no memory of ours.
            let granted = unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                )
            } == 0;
            if !granted {
                tracing::debug!("the kernel refused the AMX tile state");
            }
            granted
        })
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod amx {
    use super::{BlockQuantized, TileInt8Matrix, K_STEP, PASS, TILE, TILE_BYTES};
    use std::arch::asm;

    /// `ldtilecfg`'s 64-byte operand: palette 1, and for each of the 8 tiles its bytes per row
    /// and rows.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    /// Every activation row pass against every weight pass, one k step at a time: tiles 0–3
    /// hold the step's 2 × 2 sums, 4–5 two activation tiles, 6–7 two weight tiles; one
    /// `tdpbssd` is 16 × 16 × 64 multiply-adds. Each step's sums are stored and added into
    /// f32 with that step's scales, as the portable loop does.
    ///
    /// # Safety
    /// The CPU must have AMX-TILE, AMX-INT8 and AVX-512F, with the tile state granted
    /// ([`super::amx_usable`]); `act` holds `m` rows padded to a whole pass.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn product(
        w: &TileInt8Matrix,
        act: &BlockQuantized,
        m: usize,
        out: &mut [f32],
    ) {
        let cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
            rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let cols = w.cols;
        let steps = cols / K_STEP;
        let mut sums = [0i32; 4 * TILE * TILE];
        let mut acc = [0f32; PASS * PASS];
        // SAFETY: the configuration is a valid palette-1 layout of 8 tiles of 16 × 64 bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack, readonly)) };
        for mb in (0..m).step_by(PASS) {
            let a0 = act.q.as_ptr().wrapping_add(mb * cols);
            let a1 = a0.wrapping_add(TILE * cols);
            for nb in (0..w.rows_padded).step_by(PASS) {
                let b0 = w
                    .packed
                    .as_ptr()
                    .wrapping_add(nb / TILE * steps * TILE_BYTES);
                let b1 = b0.wrapping_add(steps * TILE_BYTES);
                acc.fill(0.0);
                for s in 0..steps {
                    let c = sums.as_mut_ptr();
                    // SAFETY: every tile read lies inside `act.q` (rows mb..mb + 32 of a
                    // buffer padded to whole passes, 64 bytes at column s·64 with stride
                    // `cols`) or inside `packed` (whole 1 KB tiles of this pass's two column
                    // tiles); the stores fill `sums`, four 16 × 16 i32 tiles.
                    unsafe {
                        asm!(
                            "tilezero tmm0",
                            "tilezero tmm1",
                            "tilezero tmm2",
                            "tilezero tmm3",
                            "tileloadd tmm4, [{a0} + {stride}]",
                            "tileloadd tmm5, [{a1} + {stride}]",
                            "tileloadd tmm6, [{b0} + {b_stride}]",
                            "tileloadd tmm7, [{b1} + {b_stride}]",
                            "tdpbssd tmm0, tmm4, tmm6",
                            "tdpbssd tmm1, tmm4, tmm7",
                            "tdpbssd tmm2, tmm5, tmm6",
                            "tdpbssd tmm3, tmm5, tmm7",
                            "tilestored [{c0} + {c_stride}], tmm0",
                            "tilestored [{c1} + {c_stride}], tmm1",
                            "tilestored [{c2} + {c_stride}], tmm2",
                            "tilestored [{c3} + {c_stride}], tmm3",
                            a0 = in(reg) a0.add(s * K_STEP),
                            a1 = in(reg) a1.add(s * K_STEP),
                            b0 = in(reg) b0.add(s * TILE_BYTES),
                            b1 = in(reg) b1.add(s * TILE_BYTES),
                            stride = in(reg) cols,
                            b_stride = in(reg) K_STEP,
                            c0 = in(reg) c,
                            c1 = in(reg) c.add(TILE * TILE),
                            c2 = in(reg) c.add(2 * TILE * TILE),
                            c3 = in(reg) c.add(3 * TILE * TILE),
                            c_stride = in(reg) TILE * 4,
                            options(nostack)
                        );
                    }
                    add_step(w, act, &sums, &mut acc, mb, nb, s, steps);
                }
                let n_valid = (w.rows - nb.min(w.rows)).min(PASS);
                for r in 0..PASS.min(m - mb) {
                    out[(mb + r) * w.rows + nb..][..n_valid]
                        .copy_from_slice(&acc[r * PASS..][..n_valid]);
                }
            }
        }
        // SAFETY: releases the tile state this function configured.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// One step's 32 × 32 sums (tiles in order rows 0–15 × cols 0–15, × cols 16–31, rows
    /// 16–31 × cols 0–15, × cols 16–31) added into `acc` (row-major 32 × 32) with the step's
    /// activation and weight scales.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn add_step(
        w: &TileInt8Matrix,
        act: &BlockQuantized,
        sums: &[i32; 4 * TILE * TILE],
        acc: &mut [f32; PASS * PASS],
        mb: usize,
        nb: usize,
        s: usize,
        steps: usize,
    ) {
        let mut ws = [0f32; PASS];
        for (c, v) in ws.iter_mut().enumerate() {
            *v = w.scale[(nb + c) * steps + s];
        }
        for r in 0..PASS {
            let xs = act.scale[(mb + r) * steps + s];
            let (half, rr) = (r / TILE, r % TILE);
            let row = &mut acc[r * PASS..][..PASS];
            for (c, a) in row.iter_mut().enumerate() {
                let tile = half * 2 + c / TILE;
                let sum = sums[tile * TILE * TILE + rr * TILE + c % TILE];
                *a = (sum as f32).mul_add(xs * ws[c], *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        crate::test_noise::noise(n, seed, 1.0)
    }

    #[test]
    fn products_are_within_the_rounding_of_per_block_scales() {
        let (rows, cols, m) = (70, 128, 37);
        let w = pseudo_random(rows * cols, 1);
        let x = pseudo_random(m * cols, 2);
        let mat = TileInt8Matrix::from_f32(rows, cols, &w).unwrap();
        let mut out = vec![0f32; m * rows];
        mat.matmul_single_thread(Kernel::Portable, &x, m, &mut out);
        for i in 0..m {
            for n in 0..rows {
                let exact: f32 = (0..cols).map(|k| x[i * cols + k] * w[n * cols + k]).sum();
                // Each side rounds by at most half a step of 1/127 of its block's maximum (≤ 1).
                let bound = cols as f32 * (1.0 / 127.0) * 1.05;
                assert!(
                    (out[i * rows + n] - exact).abs() < bound,
                    "({i},{n}): {} vs {exact}",
                    out[i * rows + n]
                );
            }
        }
    }

    #[test]
    fn the_amx_path_equals_the_portable_one_to_the_bit() {
        if !Kernel::Amx.supported() {
            eprintln!("this CPU has no usable AMX: only the portable path is checked here");
            return;
        }
        // Ragged on both sides: rows and m not whole passes, several k steps.
        for (rows, cols, m) in [
            (1152, 384, 57),
            (384, 1536, 33),
            (40, 64, 1),
            (33, 192, 100),
        ] {
            let w = pseudo_random(rows * cols, rows as u64);
            let x = pseudo_random(m * cols, m as u64);
            let mat = TileInt8Matrix::from_f32(rows, cols, &w).unwrap();
            let mut a = vec![0f32; m * rows];
            let mut b = vec![1f32; m * rows];
            mat.matmul_single_thread(Kernel::Portable, &x, m, &mut a);
            mat.matmul_single_thread(Kernel::Amx, &x, m, &mut b);
            assert_eq!(a, b, "{rows}×{cols}, m {m}");
        }
    }

    #[test]
    fn widths_that_are_not_whole_tile_rows_are_refused() {
        assert!(matches!(
            TileInt8Matrix::from_f32(2, 96, &[0.0; 192]),
            Err(Int8Error::Width(96))
        ));
        assert!(matches!(
            TileInt8Matrix::from_f32(2, 64, &[0.0; 100]),
            Err(Int8Error::Size { .. })
        ));
    }
}
