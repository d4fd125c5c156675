//! Logistic regression over standardised features, fitted by gradient descent on the mean
//! log-loss plus an L2 penalty (the bias free): the answerability model and the span ranker
//! are both this, over different signals.
use serde::{Deserialize, Serialize};

/// Fitted parameters: `z = bias + Σ weights[i] · (x[i] − mean[i]) / scale[i]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fitted {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Fitted {
    /// Whether the parameters are sized for `n` features.
    pub fn has_features(&self, n: usize) -> bool {
        self.mean.len() == n && self.scale.len() == n && self.weights.len() == n
    }

    /// The linear score `z` of `x` (a missing value, NaN, counts as the mean: it adds
    /// nothing).
    pub fn logit(&self, x: &[f32]) -> f32 {
        self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((&x, &m), &s), &w)| if x.is_nan() { 0.0 } else { w * (x - m) / s })
                .sum::<f32>()
    }

    /// `1 / (1 + e^−z)`.
    pub fn probability(&self, x: &[f32]) -> f32 {
        1.0 / (1.0 + (-self.logit(x)).exp())
    }
}

/// Mean and scale (standard deviation, 1 for a constant feature) of each feature of `rows`.
pub fn standardisation(rows: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let n = rows.first().map_or(0, Vec::len);
    let count = rows.len().max(1) as f32;
    let mut mean = vec![0f32; n];
    for r in rows {
        for i in 0..n {
            mean[i] += r[i] / count;
        }
    }
    let mut scale = vec![0f32; n];
    for r in rows {
        for i in 0..n {
            scale[i] += (r[i] - mean[i]).powi(2) / count;
        }
    }
    // A feature constant over the data carries nothing: scale 1 keeps it harmless.
    let scale: Vec<f32> = scale
        .iter()
        .map(|v| if v.sqrt() > 1e-6 { v.sqrt() } else { 1.0 })
        .collect();
    (mean, scale)
}

/// Fits `rows` (one feature vector each, all of one length) to `labels`.
pub fn fit(rows: &[Vec<f32>], labels: &[bool], l2: f32) -> Fitted {
    let n = rows.first().map_or(0, Vec::len);
    let count = rows.len().max(1) as f32;
    let (mean, scale) = standardisation(rows);
    let z: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| (0..n).map(|i| (r[i] - mean[i]) / scale[i]).collect())
        .collect();
    let (mut w, mut b) = (vec![0f32; n], 0f32);
    for _ in 0..4000 {
        let (mut gw, mut gb) = (vec![0f32; n], 0f32);
        for (x, &y) in z.iter().zip(labels) {
            let p = 1.0 / (1.0 + (-(b + x.iter().zip(&w).map(|(a, c)| a * c).sum::<f32>())).exp());
            let e = p - if y { 1.0 } else { 0.0 };
            for i in 0..n {
                gw[i] += e * x[i] / count;
            }
            gb += e / count;
        }
        for i in 0..n {
            w[i] -= 0.5 * (gw[i] + 2.0 * l2 * w[i]);
        }
        b -= 0.5 * gb;
    }
    Fitted {
        mean,
        scale,
        weights: w,
        bias: b,
    }
}
