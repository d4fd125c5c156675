//! The feed-forward activation of the Gemma decoders, `gelu_tanh(gate) · up`, on the CPU in
//! one pass that the compiler vectorises. candle's `gelu` calls libm's `tanhf` (through
//! `expm1f`) one value at a time: a profile of `bench generate` on one thread put those two
//! calls at 9% of the run, more than any matrix product but the int8 tiles.
//!
//! `gelu_tanh(x) = ½x(1 + tanh u) = x / (1 + e^(−2u))` with `u = √(2/π)(x + 0.044715x³)`, and
//! `e^y` computed by range reduction and a polynomial, branch-free so the loop vectorises.
//! The encoder's GELU is BERT's erf form, with erf from the same exponential.

use candle_core::{DType, Device, Result, Tensor};

use crate::int8_matmul::Kernel;

/// `gate.gelu()? * other`: fused and vectorised for f32 tensors of one shape on the CPU,
/// candle's ops anywhere else (GPU, bf16, broadcasting).
pub fn gelu_mul(gate: &Tensor, other: &Tensor) -> Result<Tensor> {
    let fused = matches!(gate.device(), Device::Cpu)
        && matches!(other.device(), Device::Cpu)
        && gate.dtype() == DType::F32
        && other.dtype() == DType::F32
        && gate.shape() == other.shape();
    if !fused {
        return gate.gelu()? * other;
    }
    let mut values = gate.flatten_all()?.to_vec1::<f32>()?;
    let other = other.flatten_all()?.to_vec1::<f32>()?;
    gelu_mul_slice(&mut values, &other);
    Tensor::from_vec(values, gate.shape().clone(), &Device::Cpu)
}

/// `gate[i] = gelu_tanh(gate[i]) · other[i]`, compiled for AVX2 + FMA where the int8 kernel in
/// use is not the portable one (so `MEDLIT_KERNEL=portable` measures the portable build).
pub fn gelu_mul_slice(gate: &mut [f32], other: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if Kernel::selected() != Kernel::Portable {
        // SAFETY: every path but the portable one requires AVX2 and FMA (Kernel::supported).
        unsafe { gelu_mul_avx2(gate, other) };
        return;
    }
    gelu_mul_plain(gate, other);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_mul_avx2(gate: &mut [f32], other: &[f32]) {
    gelu_mul_plain(gate, other)
}

#[inline(always)]
fn gelu_mul_plain(gate: &mut [f32], other: &[f32]) {
    for (g, &o) in gate.iter_mut().zip(other) {
        *g = gelu_tanh(*g) * o;
    }
}

/// `row` replaced by its softmax, with the vectorised exponential; inlined into the caller, so
/// that a caller compiled for AVX2 gets it compiled so too.
#[inline(always)]
pub fn softmax_row(row: &mut [f32]) {
    // Max and sum over chunks of 8 lanes: a reduction in one chain does not vectorise, nor
    // does one indexed `i % 8`.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let max = lanes.iter().fold(tail, |m, &v| m.max(v));
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let mut sums = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (s, &v) in sums.iter_mut().zip(c) {
            *s += v;
        }
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + tail);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// BERT's GELU, `½x(1 + erf(x/√2))`, in place: the encoder's feed-forward activation.
pub fn gelu_erf_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match Kernel::selected() {
        // SAFETY: the AVX-512 path requires AVX-512F (Kernel::supported), every other path
        // but the portable one AVX2 and FMA.
        Kernel::Amx | Kernel::Avx512Vnni => return unsafe { gelu_erf_avx512(values) },
        Kernel::AvxVnni | Kernel::Avx2 => return unsafe { gelu_erf_avx2(values) },
        Kernel::Portable => {}
    }
    gelu_erf_plain(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_erf_avx512(values: &mut [f32]) {
    gelu_erf_plain(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_erf_avx2(values: &mut [f32]) {
    gelu_erf_plain(values)
}

#[inline(always)]
fn gelu_erf_plain(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf by Abramowitz and Stegun's 7.1.26 (absolute error below 1.5e-7), branch-free.
#[inline(always)]
fn erf(z: f32) -> f32 {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(z)
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// Adding 1.5·2²³ to a float below 2²² in magnitude rounds it to an integer (to even), which
/// then sits in the low bits of the sum: a rounding without a libm call or SSE4.1.
pub(crate) const ROUNDER: f32 = 12_582_912.0;

/// `e^y` within 2 ulp for `y` in [−87, 88], clamped outside (the activation needs no more).
#[inline(always)]
fn exp(y: f32) -> f32 {
    // ln 2 split so that n · LN2_HI is exact for the n that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let y = y.clamp(-87.0, 88.0);
    let t = y * std::f32::consts::LOG2_E + ROUNDER;
    let n = t - ROUNDER;
    let r = y - n * LN2_HI - n * LN2_LO;
    // Taylor series to r⁷: |r| ≤ ln2/2, so the first dropped term is below 6e-9 relative.
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let n_bits = (t.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    f32::from_bits((p.to_bits() as i32).wrapping_add(n_bits << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
    }

    #[test]
    fn exp_is_within_two_ulp_over_the_range_used() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let y = i as f32 / 1000.0;
            let got = exp(y) as f64;
            let want = (y as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn softmax_sums_to_one_and_orders_as_its_input() {
        let mut row = vec![1.0, 3.0, -2.0, 3.0, 80.0, -80.0];
        softmax_row(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[4] > 0.999 && row[5] >= 0.0 && row[1] == row[3] && row[1] > row[0]);
        let mut flat = vec![0.5; 4];
        softmax_row(&mut flat);
        assert!(flat.iter().all(|&p| (p - 0.25).abs() < 1e-7));
    }

    #[test]
    fn the_erf_gelu_is_within_2e7_of_the_exact_one() {
        // erf in f64 from its Taylor series (|z| ≤ 3) or 1 (beyond, within 3e-5 × e^-9).
        fn erf64(z: f64) -> f64 {
            if z.abs() > 5.0 {
                return z.signum();
            }
            let (mut term, mut sum, mut n) = (z, z, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -z * z / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let xs: Vec<f32> = (-6_000..=6_000).map(|i| i as f32 / 1000.0).collect();
        let mut got = xs.clone();
        gelu_erf_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let x64 = x as f64;
            let want = 0.5 * x64 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2));
            assert!(
                (g as f64 - want).abs() <= 2e-7 * (1.0 + x64.abs()),
                "x {x}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn gelu_matches_the_tanh_formula_in_double_precision() {
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            let got = gelu_tanh(x) as f64;
            let want = reference(x as f64);
            // f32 rounding of u alone moves e^(−2u) by ~1e-6 relative where |u| is large.
            let tolerance = 3e-6 * want.abs() + 1e-9;
            assert!((got - want).abs() <= tolerance, "x {x}: {got} vs {want}");
        }
        assert!(gelu_tanh(-200.0).abs() < 1e-30);
        assert_eq!(gelu_tanh(200.0), 200.0);
    }

    #[test]
    fn the_fused_product_equals_candles_ops() {
        let gate: Vec<f32> = (0..3 * 70).map(|i| (i as f32 - 105.0) / 17.0).collect();
        let up: Vec<f32> = (0..3 * 70)
            .map(|i| ((i * 7) % 13) as f32 / 5.0 - 1.0)
            .collect();
        let g = Tensor::from_vec(gate, (1, 3, 70), &Device::Cpu).unwrap();
        let u = Tensor::from_vec(up, (1, 3, 70), &Device::Cpu).unwrap();
        let ours = gelu_mul(&g, &u).unwrap();
        assert_eq!(ours.dims(), &[1, 3, 70]);
        let candle = (g.gelu().unwrap() * &u).unwrap();
        let diff = (ours - candle)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let plain: Vec<f32> = {
            let mut v: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
            gelu_mul_plain(&mut v, &[1.0; 64]);
            v
        };
        let mut fast: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
        gelu_mul_slice(&mut fast, &[1.0; 64]);
        assert_eq!(plain, fast, "the selected path and the plain loop agree");
    }
}
