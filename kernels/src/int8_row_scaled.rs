//! The tile products of an [`Int8Matrix`](crate::int8_matmul::Int8Matrix) whose weights have
//! one scale per row: each 32-value block's i32 sums scaled by the activations' block scale
//! only, the row scales applied once per output at the end. The block-scaled form pays a
//! scale load, an f16 conversion and a product of the two scales per block besides; in the
//! encoder, whose products are all of this form, that work was as large as the multiply-adds.
//!
//! Same tile layout, activation quantiser and paths as the block-scaled kernels.
use crate::int8_matmul::{
    portable_block_dot, Kernel, Quantized, BLOCK, NARROW_RANGE, TILE, TILE_BLOCK_BYTES,
};

/// `out[j][r] = scale(r) · Σ_b scale(row_j, b) · Σ_c w[r][b, c] · q(row_j)[b, c]` for the tile's 16 rows
/// `r` and activation rows `rows`.
#[inline]
pub(crate) fn tile<const R: usize>(
    kernel: Kernel,
    qs: &[u8],
    row_scales: &[f32; TILE],
    act: &Quantized,
    rows: &[usize; R],
    blocks: usize,
    out: &mut [[f32; TILE]; R],
) {
    assert!(qs.len() >= blocks * TILE_BLOCK_BYTES, "a whole tile");
    let cols = blocks * BLOCK;
    assert!(
        rows.iter().all(|&i| (i + 1) * cols <= act.q.len()),
        "whole activation rows"
    );
    match kernel {
        // SAFETY (each x86 arm): `Kernel::available` lists a variant only when the CPU has its
        // features; the slices hold a whole tile and whole activation rows (asserted above).
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx | Kernel::Avx512Vnni => unsafe {
            vnni512::tile(qs, row_scales, act, rows, blocks, out)
        },
        #[cfg(target_arch = "x86_64")]
        Kernel::AvxVnni => unsafe { avxvnni::tile(qs, row_scales, act, rows, blocks, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if act.limit <= NARROW_RANGE => unsafe {
            avx2_narrow::tile(qs, row_scales, act, rows, blocks, out)
        },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2::tile(qs, row_scales, act, rows, blocks, out) },
        Kernel::Portable => portable_tile(qs, row_scales, act, rows, blocks, out),
    }
}

/// Whether `kernel` multiplies two adjacent tiles in one pass ([`tile_pair`]).
pub(crate) fn pairs_on(kernel: Kernel) -> bool {
    #[cfg(target_arch = "x86_64")]
    if matches!(kernel, Kernel::Amx | Kernel::Avx512Vnni) {
        return true;
    }
    let _ = kernel;
    false
}

/// [`tile`] of two adjacent tiles at once (`qs` holds both, one after the other; `out` gets
/// the first tile's 16 outputs then the second's). With one tile per pass, every `dpbusd`
/// needs its own broadcast of four activation bytes, so a block of four activation rows
/// issues 40 loads for 32 multiply-adds: on a CPU that runs two 512-bit `dpbusd` per cycle
/// (Zen 5) the loads, not the multiply-adds, set the pace. Two tiles share each broadcast and
/// each activation block's offset and scale: 24 loads for 64 multiply-adds.
#[inline]
pub(crate) fn tile_pair<const R: usize>(
    kernel: Kernel,
    qs: &[u8],
    row_scales: &[f32; 2 * TILE],
    act: &Quantized,
    rows: &[usize; R],
    blocks: usize,
    out: &mut [[f32; 2 * TILE]; R],
) {
    let bytes = blocks * TILE_BLOCK_BYTES;
    assert!(qs.len() >= 2 * bytes, "two whole tiles");
    let cols = blocks * BLOCK;
    assert!(
        rows.iter().all(|&i| (i + 1) * cols <= act.q.len()),
        "whole activation rows"
    );
    #[cfg(target_arch = "x86_64")]
    if matches!(kernel, Kernel::Amx | Kernel::Avx512Vnni) {
        // SAFETY: `Kernel::available` lists the path only when the CPU has AVX-512F and VNNI;
        // `qs` holds two whole tiles and `act` every row named (asserted above).
        unsafe { vnni512::tile_pair(qs, row_scales, act, rows, blocks, out) };
        return;
    }
    // Every other path: one tile, then the other.
    for half in 0..2 {
        let mut lanes = [[0f32; TILE]; R];
        let scales: &[f32; TILE] = row_scales[half * TILE..][..TILE]
            .try_into()
            .unwrap_or(&[0.0; TILE]);
        tile(
            kernel,
            &qs[half * bytes..][..bytes],
            scales,
            act,
            rows,
            blocks,
            &mut lanes,
        );
        for (o, l) in out.iter_mut().zip(&lanes) {
            o[half * TILE..][..TILE].copy_from_slice(l);
        }
    }
}

/// Plain Rust for any target, and the reference the other paths are tested against (the
/// block dot products are the block-scaled loop's, which need no offset).
fn portable_tile<const R: usize>(
    qs: &[u8],
    row_scales: &[f32; TILE],
    act: &Quantized,
    rows: &[usize; R],
    blocks: usize,
    out: &mut [[f32; TILE]; R],
) {
    let cols = blocks * BLOCK;
    for (o, &i) in out.iter_mut().zip(rows) {
        let mut acc = [0f32; TILE];
        for b in 0..blocks {
            let isum = portable_block_dot(
                &qs[b * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES],
                &act.q[i * cols + b * BLOCK..][..BLOCK],
            );
            let xd = act.scale[i * blocks + b];
            for (a, s) in acc.iter_mut().zip(isum) {
                *a += s as f32 * xd;
            }
        }
        for (o, (a, d)) in o.iter_mut().zip(acc.iter().zip(row_scales)) {
            *o = a * d;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni512 {
    use super::{Quantized, BLOCK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// One weight load feeds `R` multiply-adds; per block and row, the `+128` offset off,
    /// one conversion and one multiply-add with the broadcast scale. No software prefetch:
    /// a tile (16 rows of the encoder's 384 or 1,536 values) stays in the first-level cache
    /// while every activation row passes it.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 VNNI; `qs` holds `blocks` blocks of one tile
    /// and `act` every row named in `rows`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize>(
        qs: &[u8],
        row_scales: &[f32; TILE],
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
            for j in 0..R {
                let k = rows[j] * blocks + b;
                let s = _mm512_sub_epi32(isum[j], _mm512_set1_epi32(*act.offset.get_unchecked(k)));
                let d = _mm512_set1_ps(*act.scale.get_unchecked(k));
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[j]);
            }
        }
        let ws = _mm512_loadu_ps(row_scales.as_ptr());
        for j in 0..R {
            _mm512_storeu_ps(out[j].as_mut_ptr(), _mm512_mul_ps(acc[j], ws));
        }
    }

    /// [`tile`] over two adjacent tiles: each activation broadcast, offset and scale feeds
    /// both. With `R` = 4: 8 integer sums, 8 accumulators and two weight registers of the 32.
    ///
    /// # Safety
    /// As [`tile`], with `qs` holding two tiles of `blocks` blocks each.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn tile_pair<const R: usize>(
        qs: &[u8],
        row_scales: &[f32; 2 * TILE],
        act: &Quantized,
        rows: &[usize; R],
        blocks: usize,
        out: &mut [[f32; 2 * TILE]; R],
    ) {
        let cols = blocks * BLOCK;
        let second = blocks * TILE_BLOCK_BYTES;
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            let mut isum0 = [_mm512_setzero_si512(); R];
            let mut isum1 = [_mm512_setzero_si512(); R];
            let w0 = qs.as_ptr().add(b * TILE_BLOCK_BYTES);
            let w1 = w0.add(second);
            for g in 0..BLOCK / 4 {
                let wv0 = _mm512_loadu_si512(w0.add(g * TILE * 4) as *const _);
                let wv1 = _mm512_loadu_si512(w1.add(g * TILE * 4) as *const _);
                for j in 0..R {
                    let x = act.q.as_ptr().add(rows[j] * cols + b * BLOCK + g * 4);
                    let xv = _mm512_set1_epi32(std::ptr::read_unaligned(x as *const i32));
                    isum0[j] = _mm512_dpbusd_epi32(isum0[j], wv0, xv);
                    isum1[j] = _mm512_dpbusd_epi32(isum1[j], wv1, xv);
                }
            }
            for j in 0..R {
                let k = rows[j] * blocks + b;
                let off = _mm512_set1_epi32(*act.offset.get_unchecked(k));
                let d = _mm512_set1_ps(*act.scale.get_unchecked(k));
                let s0 = _mm512_sub_epi32(isum0[j], off);
                let s1 = _mm512_sub_epi32(isum1[j], off);
                acc0[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), d, acc0[j]);
                acc1[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), d, acc1[j]);
            }
        }
        let ws0 = _mm512_loadu_ps(row_scales.as_ptr());
        let ws1 = _mm512_loadu_ps(row_scales.as_ptr().add(TILE));
        for j in 0..R {
            _mm512_storeu_ps(out[j].as_mut_ptr(), _mm512_mul_ps(acc0[j], ws0));
            _mm512_storeu_ps(out[j].as_mut_ptr().add(TILE), _mm512_mul_ps(acc1[j], ws1));
        }
    }
}

/// The 256-bit paths: a tile's 16 rows are two halves of 8 (the low and high 32 bytes of each
/// 64-byte column group), each run over the whole row of blocks in turn so that the `R`
/// accumulator chains fit the 16 ymm registers. `$step` sums one column group's products
/// (from the running sum, 32 stored weight bytes and the broadcast activations); `$offset`
/// says whether the stored weights' `+128` is taken off afterwards.
#[cfg(target_arch = "x86_64")]
macro_rules! tile_256 {
    ($features:literal, |$sum:ident, $w:ident, $x:ident| $step:block, $offset:literal) => {
        /// # Safety
        /// The CPU must have the features named; `qs` holds `blocks` blocks of one tile and
        /// `act` every row named in `rows`.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn tile<const R: usize>(
            qs: &[u8],
            row_scales: &[f32; TILE],
            act: &Quantized,
            rows: &[usize; R],
            blocks: usize,
            out: &mut [[f32; TILE]; R],
        ) {
            let cols = blocks * BLOCK;
            for half in 0..2 {
                let mut acc = [_mm256_setzero_ps(); R];
                for b in 0..blocks {
                    let mut isum = [_mm256_setzero_si256(); R];
                    let w = qs.as_ptr().add(b * TILE_BLOCK_BYTES + half * 32);
                    for g in 0..BLOCK / 4 {
                        let $w = _mm256_loadu_si256(w.add(g * TILE * 4) as *const __m256i);
                        for j in 0..R {
                            let x = act.q.as_ptr().add(rows[j] * cols + b * BLOCK + g * 4);
                            let $x = _mm256_set1_epi32(std::ptr::read_unaligned(x as *const i32));
                            let $sum = isum[j];
                            isum[j] = $step;
                        }
                    }
                    for j in 0..R {
                        let k = rows[j] * blocks + b;
                        let s = if $offset {
                            _mm256_sub_epi32(
                                isum[j],
                                _mm256_set1_epi32(*act.offset.get_unchecked(k)),
                            )
                        } else {
                            isum[j]
                        };
                        let d = _mm256_set1_ps(*act.scale.get_unchecked(k));
                        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[j]);
                    }
                }
                let ws = _mm256_loadu_ps(row_scales.as_ptr().add(half * 8));
                for j in 0..R {
                    _mm256_storeu_ps(out[j].as_mut_ptr().add(half * 8), _mm256_mul_ps(acc[j], ws));
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avxvnni {
    use super::{Quantized, BLOCK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    tile_256!(
        "avx2,fma,avxvnni",
        |sum, w, x| { _mm256_dpbusd_avx_epi32(sum, w, x) },
        true
    );
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Quantized, BLOCK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    tile_256!(
        "avx2,fma",
        |sum, w, x| { crate::int8_matmul::avx2_group_dot!(sum, w, x) },
        false
    );
}

/// AVX2 on activations within ±[`NARROW_RANGE`]: `maddubs` takes the stored `w + 128` as its
/// unsigned operand and the activations as the signed one, as VNNI's `dpbusd` does, and the
/// offset comes off per block. Per 32 products and activation row: `maddubs`, `madd`, add,
/// where the full-range step also needs the sign of every product (`sign`).
#[cfg(target_arch = "x86_64")]
mod avx2_narrow {
    use super::{Quantized, BLOCK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    tile_256!(
        "avx2,fma",
        |sum, w, x| {
            _mm256_add_epi32(
                sum,
                _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)),
            )
        },
        true
    );
}

#[cfg(test)]
mod tests {
    use crate::int8_matmul::{Int8Matrix, Kernel};
    use crate::test_noise::noise;

    /// The f32 product of the dequantised matrix with the quantised activations is what every
    /// path computes; here against the plain f32 product, within the rounding of both sides.
    #[test]
    fn per_row_weights_multiply_within_their_rounding_on_every_path() {
        let (rows, cols, m) = (40, 384, 7);
        let w = noise(rows * cols, 11, 0.5);
        let mut x = noise(m * cols, 12, 2.0);
        // BERT's outlier dimensions: a few values far above the rest of their block.
        for i in 0..m {
            x[i * cols + 5 + 37 * i] = 60.0;
        }
        let q = Int8Matrix::from_f32_per_row(rows, cols, &w).unwrap();
        let mut portable = vec![0f32; m * rows];
        q.matmul_on_kernel(Kernel::Portable, &x, m, &mut portable);
        for i in 0..m {
            for r in 0..rows {
                let exact: f32 = (0..cols).map(|c| x[i * cols + c] * w[r * cols + c]).sum();
                let norm: f32 = (0..cols)
                    .map(|c| (x[i * cols + c] * w[r * cols + c]).abs())
                    .sum();
                let got = portable[i * rows + r];
                assert!(
                    (got - exact).abs() <= 0.02 * norm,
                    "row {i}, out {r}: {got} vs {exact} (|terms| {norm})"
                );
            }
        }
        for kernel in Kernel::available() {
            let mut out = vec![0f32; m * rows];
            q.matmul_on_kernel(kernel, &x, m, &mut out);
            let largest = portable.iter().fold(1e-6f32, |a, v| a.max(v.abs()));
            for (f, s) in out.iter().zip(&portable) {
                assert!(
                    (f - s).abs() <= 1e-5 * largest,
                    "{f} vs {s} on {}",
                    kernel.name()
                );
            }
        }
    }

    /// With narrow activations the AVX2 path multiplies the stored weights directly; every
    /// path computes what the portable loop computes from that path's quantisation.
    #[test]
    fn narrow_activations_multiply_as_the_portable_loop_on_every_path() {
        let (rows, cols, m) = (40, 384, 7);
        let w = noise(rows * cols, 21, 0.5);
        let mut x = noise(m * cols, 22, 2.0);
        for i in 0..m {
            x[i * cols + 3 + 41 * i] = -60.0;
        }
        let q = Int8Matrix::from_f32_per_row(rows, cols, &w)
            .unwrap()
            .with_narrow_activations_on_avx2();
        for kernel in Kernel::available() {
            let mut want = vec![0f32; m * rows];
            q.matmul_reference_for(kernel, &x, m, &mut want);
            let mut got = vec![0f32; m * rows];
            q.matmul_on_kernel(kernel, &x, m, &mut got);
            let largest = want.iter().fold(1e-6f32, |a, v| a.max(v.abs()));
            for (g, s) in got.iter().zip(&want) {
                assert!(
                    (g - s).abs() <= 1e-5 * largest,
                    "{g} vs {s} on {}",
                    kernel.name()
                );
            }
            // Within the rounding of both sides: each activation off by at most half its
            // block's step (max |x| / 64 / 2), each weight by half its row's (max |w| / 127 / 2),
            // and the scales' f16 rounding (2⁻¹¹ of each term).
            if kernel != Kernel::Avx2 {
                continue;
            }
            for i in 0..m {
                let xr = &x[i * cols..][..cols];
                for r in 0..rows {
                    let wr = &w[r * cols..][..cols];
                    let wstep = wr.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                    let bound: f32 = (0..cols)
                        .map(|c| {
                            let block = &xr[c / 32 * 32..][..32];
                            let xstep = block.iter().fold(0f32, |a, v| a.max(v.abs())) / 64.0;
                            (wr[c].abs() + wstep / 2.0) * xstep / 2.0
                                + xr[c].abs() * wstep / 2.0
                                + (xr[c] * wr[c]).abs() / 2048.0
                        })
                        .sum();
                    let exact: f32 = (0..cols).map(|c| xr[c] * wr[c]).sum();
                    let g = got[i * rows + r];
                    assert!(
                        (g - exact).abs() <= bound,
                        "row {i}, out {r}: {g} vs {exact} (bound {bound})"
                    );
                }
            }
        }
    }

    /// The extremes of both operands: weights at ±127 (stored 1 and 255) against activations
    /// at ±64 in every column give `maddubs` pair sums of ±32,640, the most the narrow range
    /// allows; one more step would saturate and the sums would differ from the portable loop's.
    #[test]
    fn narrow_activations_at_their_extremes_do_not_saturate() {
        let (rows, cols, m) = (16, 64, 4);
        let w: Vec<f32> = (0..rows * cols)
            .map(|k| if (k / cols) % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let x: Vec<f32> = (0..m * cols)
            .map(|k| if (k / cols) % 2 == 0 { 3.0 } else { -3.0 })
            .collect();
        let q = Int8Matrix::from_f32_per_row(rows, cols, &w)
            .unwrap()
            .with_narrow_activations_on_avx2();
        for kernel in Kernel::available() {
            let mut got = vec![0f32; m * rows];
            q.matmul_on_kernel(kernel, &x, m, &mut got);
            for i in 0..m {
                for r in 0..rows {
                    let want: f32 = (0..cols).map(|c| x[i * cols + c] * w[r * cols + c]).sum();
                    let g = got[i * rows + r];
                    assert!(
                        (g - want).abs() <= 1e-3 * want.abs(),
                        "row {i}, out {r}: {g} vs {want} on {}",
                        kernel.name()
                    );
                }
            }
        }
    }

    /// The two-tile pass does each tile's arithmetic in the one-tile pass's order, so the
    /// two agree to the bit on every path, for four activation rows at a time and for one.
    #[test]
    fn two_tiles_at_once_equal_one_at_a_time_to_the_bit() {
        use crate::int8_matmul::Quantized;
        let (blocks, m) = (12, 5);
        let cols = blocks * super::BLOCK;
        let qs: Vec<u8> = noise(2 * blocks * super::TILE_BLOCK_BYTES, 31, 1.0)
            .iter()
            .map(|v| (v * 127.0 + 128.0) as u8)
            .collect();
        let row_scales: [f32; 2 * super::TILE] = std::array::from_fn(|r| 0.01 + r as f32 * 1e-3);
        let x = noise(m * cols, 32, 1.0);
        let act = Quantized {
            q: x.iter().map(|v| (v * 100.0) as i8).collect(),
            scale: noise(m * blocks, 33, 0.1),
            offset: (0..m * blocks).map(|k| (k as i32 % 7) * 128).collect(),
            limit: 127,
        };
        let halves: [&[u8]; 2] = [
            &qs[..blocks * super::TILE_BLOCK_BYTES],
            &qs[blocks * super::TILE_BLOCK_BYTES..],
        ];
        for kernel in Kernel::available() {
            let mut four = [[0f32; 2 * super::TILE]; 4];
            super::tile_pair(
                kernel,
                &qs,
                &row_scales,
                &act,
                &[0, 1, 2, 3],
                blocks,
                &mut four,
            );
            let mut one = [[0f32; 2 * super::TILE]; 1];
            super::tile_pair(kernel, &qs, &row_scales, &act, &[4], blocks, &mut one);
            for (i, got) in four.iter().chain(&one).enumerate() {
                for (h, w) in halves.iter().enumerate() {
                    let scales: &[f32; super::TILE] = row_scales[h * super::TILE..][..super::TILE]
                        .try_into()
                        .unwrap();
                    let mut want = [[0f32; super::TILE]; 1];
                    super::tile(kernel, w, scales, &act, &[i], blocks, &mut want);
                    assert_eq!(
                        got[h * super::TILE..][..super::TILE],
                        want[0],
                        "row {i}, tile {h} on {}",
                        kernel.name()
                    );
                }
            }
        }
    }

    #[test]
    fn per_row_rows_dequantise_to_their_values() {
        let (rows, cols) = (17, 64);
        let w = noise(rows * cols, 3, 1.0);
        let q = Int8Matrix::from_f32_per_row(rows, cols, &w).unwrap();
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            q.row(r, &mut row);
            let amax = w[r * cols..][..cols]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            for (got, want) in row.iter().zip(&w[r * cols..][..cols]) {
                assert!(
                    (got - want).abs() <= amax / 254.0 * 1.001,
                    "{got} vs {want}"
                );
            }
        }
        assert!(Int8Matrix::from_f32_per_row(2, 40, &[0.0; 80]).is_err());
        assert!(Int8Matrix::from_f32_per_row(2, 64, &[0.0; 100]).is_err());
    }
}
