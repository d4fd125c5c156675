//! The Gemma 4 decoder's bias-free projections: candle's matrix product, except for bf16
//! weights on the CPU, which go through [`crate::bf16_matmul`] (candle would widen every weight
//! to f32 on every call: 17 s a decoded token for E4B on 2 cores).
use candle_core::{DType, Device, Module, Tensor};
use half::bf16;

use crate::bf16_matmul::Bf16Matrix;

pub enum Linear {
    Candle(candle_nn::Linear),
    Bf16Cpu(Bf16Matrix),
}

impl Linear {
    /// A projection by `weight` (`out × in`).
    pub fn new(weight: Tensor) -> candle_core::Result<Self> {
        if weight.dtype() == DType::BF16 && weight.device().is_cpu() && weight.rank() == 2 {
            let (rows, cols) = weight.dims2()?;
            let values: Vec<bf16> = weight.flatten_all()?.to_vec1()?;
            let m = Bf16Matrix::new(rows, cols, values)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            return Ok(Linear::Bf16Cpu(m));
        }
        Ok(Linear::Candle(candle_nn::Linear::new(weight, None)))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(l) => l.forward(x),
            Linear::Bf16Cpu(m) => {
                let dims = x.dims().to_vec();
                let k = *dims.last().unwrap_or(&0);
                if k != m.cols() {
                    return Err(candle_core::Error::Msg(format!(
                        "a projection of {} inputs given {k}",
                        m.cols()
                    )));
                }
                let rows = x.elem_count() / k.max(1);
                let input: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                let mut out = vec![0f32; rows * m.rows()];
                m.matmul(&input, rows, &mut out);
                let mut shape = dims;
                if let Some(last) = shape.last_mut() {
                    *last = m.rows();
                }
                Tensor::from_vec(out, shape, &Device::Cpu)?.to_dtype(x.dtype())
            }
        }
    }
}
