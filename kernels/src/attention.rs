//! f32 self-attention of unpadded passages, as the encoder runs it: blocks of query rows
//! against blocks of 16 keys, so that the sums stay in registers and every load feeds several
//! fused multiply-adds. Scores and the weighted sum of values are small products per head
//! (passage length × passage length × 32); written as plain loops over fixed-size arrays, they
//! compile to 16-lane FMAs inside the AVX-512 function and to 8-lane ones inside the AVX2 one.
use crate::activation::softmax_row;
use crate::int8_matmul::Kernel;

/// Keys per block of scores: one 512-bit register, two 256-bit ones.
const KEY_BLOCK: usize = 16;

/// Self-attention of each passage over its own tokens. `qkv` holds one row per token of every
/// passage in turn (`lens` tokens each): `heads · D` query values, then as many key values, then
/// value values. `ctx` receives `heads · D` values per token. Scores are scaled by `1/√D`.
pub fn self_attention<const D: usize>(
    kernel: Kernel,
    heads: usize,
    qkv: &[f32],
    lens: &[usize],
    ctx: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: Kernel::supported admits the AVX-512 VNNI path only with AVX-512F, and every
        // other x86 path but the portable one only with AVX2 and FMA.
        Kernel::Amx | Kernel::Avx512Vnni => unsafe { attention_avx512::<D>(heads, qkv, lens, ctx) },
        Kernel::Portable => attention_blocks::<D, 4, 4, false>(heads, qkv, lens, ctx),
        _ => unsafe { attention_avx2::<D>(heads, qkv, lens, ctx) },
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kernel;
        // ARM's NEON has a fused multiply-add in every core: `mul_add` is one instruction.
        attention_blocks::<D, 4, 2, true>(heads, qkv, lens, ctx)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attention_avx512<const D: usize>(
    heads: usize,
    qkv: &[f32],
    lens: &[usize],
    ctx: &mut [f32],
) {
    // 4 query rows: 4 score registers, then 4 × 2 context registers.
    attention_blocks::<D, 4, 4, true>(heads, qkv, lens, ctx)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attention_avx2<const D: usize>(
    heads: usize,
    qkv: &[f32],
    lens: &[usize],
    ctx: &mut [f32],
) {
    // 16 registers: 4 rows × 2 for the scores; 2 rows × 4 for the context.
    attention_blocks::<D, 4, 2, true>(heads, qkv, lens, ctx)
}

#[inline(always)]
fn fmadd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    // Without the FMA instruction (the portable path on x86) `mul_add` is a libm call.
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `S` query rows per block of scores, `P` per block of the weighted sum.
#[inline(always)]
fn attention_blocks<const D: usize, const S: usize, const P: usize, const FUSED: bool>(
    heads: usize,
    qkv: &[f32],
    lens: &[usize],
    ctx: &mut [f32],
) {
    let hidden = heads * D;
    let stride = 3 * hidden;
    let scale = 1.0 / (D as f32).sqrt();
    let mut first = 0;
    let (mut scores, mut keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for &n in lens {
        if n == 0 {
            continue;
        }
        // Keys padded with zeros to whole blocks; the padded scores are never read.
        let width = n.div_ceil(KEY_BLOCK) * KEY_BLOCK;
        scores.clear();
        scores.resize(S * width, 0.0);
        for h in 0..heads {
            let col = h * D;
            // This head's keys dimension-major and its values contiguous, so that both inner
            // loops read contiguous memory.
            keys.clear();
            keys.resize(D * width, 0.0);
            values.clear();
            for j in 0..n {
                let row = (first + j) * stride + col;
                for (d, &k) in qkv[row + hidden..][..D].iter().enumerate() {
                    keys[d * width + j] = k * scale;
                }
                values.extend_from_slice(&qkv[row + 2 * hidden..][..D]);
            }
            // Rows past the passage repeat its last query; their results are dropped.
            let query = |i: usize| -> &[f32] {
                let i = i.min(n - 1);
                &qkv[(first + i) * stride + col..][..D]
            };
            for i0 in (0..n).step_by(S) {
                // The block's scores, softmax and weighted sum in turn, so that its S rows of
                // scores stay in the first-level cache whatever the passage length.
                let q: [&[f32]; S] = std::array::from_fn(|r| query(i0 + r));
                for j0 in (0..width).step_by(KEY_BLOCK) {
                    let mut acc = [[0f32; KEY_BLOCK]; S];
                    for d in 0..D {
                        let k: &[f32; KEY_BLOCK] = keys[d * width + j0..][..KEY_BLOCK]
                            .try_into()
                            .unwrap_or(&[0.0; KEY_BLOCK]);
                        for r in 0..S {
                            let qd = q[r][d];
                            for l in 0..KEY_BLOCK {
                                acc[r][l] = fmadd::<FUSED>(qd, k[l], acc[r][l]);
                            }
                        }
                    }
                    for (r, a) in acc.iter().enumerate() {
                        scores[r * width + j0..][..KEY_BLOCK].copy_from_slice(a);
                    }
                }
                for r in 0..S.min(n - i0) {
                    softmax_row(&mut scores[r * width..][..n]);
                }
                for p0 in (0..S).step_by(P) {
                    let mut acc = [[0f32; D]; P];
                    for (j, v) in values.chunks_exact(D).enumerate() {
                        let Ok(v) = <&[f32; D]>::try_from(v) else {
                            continue;
                        };
                        for (r, a) in acc.iter_mut().enumerate() {
                            let p = scores[(p0 + r) * width + j];
                            for (a, &x) in a.iter_mut().zip(v) {
                                *a = fmadd::<FUSED>(p, x, *a);
                            }
                        }
                    }
                    for (r, a) in acc.iter().enumerate().take(n.saturating_sub(i0 + p0)) {
                        ctx[(first + i0 + p0 + r) * hidden + col..][..D].copy_from_slice(a);
                    }
                }
            }
        }
        first += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out as its formula, in f64.
    fn reference(heads: usize, d: usize, qkv: &[f32], lens: &[usize]) -> Vec<f32> {
        let hidden = heads * d;
        let mut out = vec![0f32; lens.iter().sum::<usize>() * hidden];
        let mut first = 0;
        for &n in lens {
            for h in 0..heads {
                for i in 0..n {
                    let q = &qkv[(first + i) * 3 * hidden + h * d..][..d];
                    let s: Vec<f64> = (0..n)
                        .map(|j| {
                            let k = &qkv[(first + j) * 3 * hidden + hidden + h * d..][..d];
                            q.iter().zip(k).map(|(a, b)| (a * b) as f64).sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        let v: f64 = (0..n)
                            .map(|j| {
                                e[j] / z
                                    * qkv[(first + j) * 3 * hidden + 2 * hidden + h * d + c] as f64
                            })
                            .sum();
                        out[(first + i) * hidden + h * d + c] = v as f32;
                    }
                }
            }
            first += n;
        }
        out
    }

    #[test]
    fn every_path_matches_the_formula_on_ragged_passages() {
        // Lengths that hit every remainder: of the row blocks (4, 2) and of the key blocks (16).
        let lens = [1usize, 3, 16, 17, 34, 5, 0, 47];
        let (heads, d) = (3, 32);
        let total: usize = lens.iter().sum();
        // A deterministic spread of values in [-2, 2).
        let qkv: Vec<f32> = (0..total * 3 * heads * d)
            .map(|i| ((i as u64 * 2_654_435_761 % 4096) as f32 / 1024.0) - 2.0)
            .collect();
        let want = reference(heads, d, &qkv, &lens);
        for kernel in Kernel::all().into_iter().filter(|k| k.supported()) {
            let mut got = vec![f32::NAN; want.len()];
            self_attention::<32>(kernel, heads, &qkv, &lens, &mut got);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 2e-5, "{}: worst difference {worst}", kernel.name());
        }
    }
}
