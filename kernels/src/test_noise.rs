//! Reproducible test inputs for the kernels' tests: a linear congruential sequence, so that a
//! failing case is the same on every run and every machine.

/// `n` values uniform in `[-half_width, half_width)` from `seed`.
pub(crate) fn noise(n: usize, seed: u64, half_width: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * (2.0 * half_width) - half_width
        })
        .collect()
}
