//! Where a model runs (`--device cpu|cuda[:N]`), in which precision, and whether it fits.
use candle_core::{DType, Device};

use super::gemma4::{Config, KvSharing};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (cpu, cuda or cuda:N)")]
    Unknown(String),
    #[error("this medlit was built without CUDA: build it with `cargo build --release --features cuda` on a machine with the CUDA toolkit")]
    NoCuda,
    #[error("CUDA device {index}: {source}")]
    Cuda {
        index: usize,
        #[source]
        source: candle_core::Error,
    },
    #[error("the model needs about {need:.1} GiB ({weights:.1} GiB of weights in {dtype}, {kv:.1} GiB of keys and values for {context} tokens) and this machine has {available:.1} GiB available; try a smaller --context, --dtype bf16, or a GPU")]
    TooLarge {
        need: f64,
        weights: f64,
        kv: f64,
        dtype: &'static str,
        context: usize,
        available: f64,
    },
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    let name = name.trim().to_ascii_lowercase();
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| DeviceError::Unknown(name.clone()))?,
        None => return Err(DeviceError::Unknown(name)),
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(DeviceError::NoCuda);
    }
    Device::new_cuda(index).map_err(|source| DeviceError::Cuda { index, source })
}

/// The precision to compute in: bf16 on a GPU (the checkpoint's own), f32 on the CPU unless
/// asked otherwise.
pub fn dtype_for(device: &Device, asked: Option<DType>) -> DType {
    asked.unwrap_or(if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    })
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "other",
    }
}

/// Bytes of the weights held in memory and of the KV cache for `context` tokens. The
/// per-layer embedding table is not counted: it stays in the mapped file, read a row a token.
pub fn estimate(cfg: &Config, dtype: DType, context: usize) -> (u64, u64) {
    let size = dtype.size_in_bytes() as u64;
    let weights = (cfg.parameters() - cfg.per_layer_table_parameters()) as u64 * size;
    let sharing = cfg.kv_sharing().unwrap_or_default();
    let kv: u64 = (0..cfg.num_hidden_layers)
        .filter(|&l| !matches!(sharing.get(l), Some(KvSharing::Reuse(_))))
        .map(|l| 2 * (cfg.kv_heads(l) * cfg.head_dim(l) * context) as u64 * size)
        .sum();
    (weights, kv)
}

/// Memory the kernel reports as available (Linux), in bytes.
pub fn available_bytes() -> Option<u64> {
    proc_kb(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
    .map(|kb| kb * 1024)
}

/// The kB value of `field` (e.g. `VmHWM:`) in the text of a /proc status or meminfo file.
pub fn proc_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
}

/// Says what loading will take, and refuses when the CPU's memory cannot hold it.
pub fn check_fits(
    cfg: &Config,
    dtype: DType,
    context: usize,
    device: &Device,
) -> Result<String, DeviceError> {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let (weights, kv) = estimate(cfg, dtype, context);
    let params = cfg.parameters() as f64;
    let count = if params >= 1e9 {
        format!("{:.2} B", params / 1e9)
    } else {
        format!("{:.2} M", params / 1e6)
    };
    let table = cfg.per_layer_table_parameters() as f64;
    let line = format!(
        "loading {count} parameters in {}: about {:.2} GiB of weights in memory + {:.2} GiB of keys and values for {context} tokens ({:.2} B parameters of per-layer embeddings stay on disk, read as needed)",
        dtype_name(dtype),
        gib(weights),
        gib(kv),
        table / 1e9,
    );
    if device.is_cpu() {
        if let Some(avail) = available_bytes() {
            if weights + kv > avail {
                return Err(DeviceError::TooLarge {
                    need: gib(weights + kv),
                    weights: gib(weights),
                    kv: gib(kv),
                    dtype: dtype_name(dtype),
                    context,
                    available: gib(avail),
                });
            }
        }
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_cuda_without_the_feature_says_how_to_get_it() {
        assert!(parse("cpu").unwrap().is_cpu());
        assert!(matches!(parse("tpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse("cuda:x"), Err(DeviceError::Unknown(_))));
        if !candle_core::utils::cuda_is_available() {
            let e = parse("cuda:0").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
