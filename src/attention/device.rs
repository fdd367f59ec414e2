//! Where the candle path runs: the CPU by default, an NVIDIA GPU with the `cuda` feature.
//!
//! Built without `cuda`, asking for it is a clear error rather than a silent fallback to the CPU.

use std::fmt;
use std::str::FromStr;

use crate::error::{MeshError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    #[default]
    Cpu,
    /// A CUDA device by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl ComputeDevice {
    /// Whether this build can run on CUDA at all.
    pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

    /// Parse `--device`: `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let dev = match s.as_str() {
            "cpu" => return Ok(Self::Cpu),
            "cuda" | "gpu" => Self::Cuda(0),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Self::Cuda(n),
                _ => {
                    return Err(MeshError::invalid("device", format!("`{s}` is not a device; use cpu, cuda or cuda:N")))
                }
            },
        };
        if !Self::CUDA_COMPILED {
            return Err(MeshError::invalid(
                "device",
                "this build has no CUDA support; rebuild with `--features cuda` (needs a CUDA toolkit) or use --device cpu",
            ));
        }
        Ok(dev)
    }

    pub fn is_cpu(self) -> bool {
        self == Self::Cpu
    }

    /// The candle device; opening a GPU can fail (no driver, bad ordinal).
    pub fn candle(self) -> Result<candle_core::Device> {
        match self {
            Self::Cpu => Ok(candle_core::Device::Cpu),
            Self::Cuda(n) => candle_core::Device::new_cuda(n).map_err(super::compute),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = MeshError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_parses_cpu_and_rejects_unknown_names() {
        assert_eq!(ComputeDevice::parse("CPU").unwrap(), ComputeDevice::Cpu);
        assert_eq!(ComputeDevice::default().to_string(), "cpu");
        assert!(ComputeDevice::parse("tpu").is_err());
        assert!(ComputeDevice::parse("cuda:x").is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn device_cuda_is_a_clear_error_without_the_feature() {
        let e = ComputeDevice::parse("cuda").unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn device_cuda_parses_with_the_feature() {
        assert_eq!(ComputeDevice::parse("cuda:1").unwrap(), ComputeDevice::Cuda(1));
    }
}
