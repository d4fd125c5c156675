//! CPU kernels shared by the decoder (`medlit-generate`) and the passage encoder
//! (`medlit-indexer`): one place for the code paths per instruction set and the switch that
//! forces one (`MEDLIT_KERNEL`).
//!
//! Module map:
//! - [`int8_matmul`]: int8 matrix products over 32-value blocks with f16 scales (GGUF Q8_0 and
//!   Q5_0 matrices) or one f32 scale per row (f32 weights quantised at load), activations per
//!   32 values: one tile layout, paths for AVX-512 VNNI, AVX-VNNI, AVX2 and a portable one
//!   (the activation quantiser too); the [`int8_matmul::Kernel`] switch.
//! - `int8_row_scaled`: the tile products of int8 matrices with one scale per row (f32
//!   weights quantised per output channel: the encoder's), on the same paths, plus AVX2's
//!   narrow tile for activations within ±64 (no sign instruction per product), and the
//!   AVX-512 VNNI pass over two adjacent tiles that shares each activation load.
//! - [`amx_matmul`]: int8 products on Intel's AMX tile unit with one scale per 64 values of
//!   each weight and activation row (the encoder's dense layers on the opt-in `amx` path),
//!   and the portable loop it is checked against to the bit.
//! - [`bf16_matmul`]: products of bf16 weights with f32 activations, widened in registers
//!   (candle's CPU backend widens every weight to f32 on every call); register tiles for
//!   prefill in AVX-512 and AVX2, rows streamed for decode, and a portable path, under the
//!   same switch.
//! - [`activation`]: GELU (tanh form, fused with the product of the gated layers; erf form for
//!   BERT encoders) without a libm call per value.
//! - `shared_out`: the output matrix the threads of one product write at disjoint positions.
//! - [`attention`]: f32 self-attention of unpadded passages in register blocks (the encoder's).
//! - `test_noise` (tests only): the reproducible inputs the kernels' tests share.
pub mod activation;
pub mod amx_matmul;
pub mod attention;
pub mod bf16_matmul;
pub mod int8_matmul;
mod int8_row_scaled;
mod shared_out;
#[cfg(test)]
mod test_noise;
