//! Device selection: `auto | cpu | cuda | cuda:N`.

use crate::{Error, Result};
use tch::Device;

/// A parsed `--device` value before it is resolved against the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA device 0 when CUDA is available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Device(s.to_owned(), why.to_owned());
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map(Self::Cuda)
                    .map_err(|_| bad("expected cuda:N with N a device index")),
                None => Err(bad("expected auto, cpu, cuda or cuda:N")),
            },
        }
    }
}

impl DeviceSpec {
    /// Resolves the spec on this machine; asking for an absent CUDA device is an error.
    pub fn resolve(self) -> Result<Device> {
        match self {
            Self::Auto => Ok(Device::cuda_if_available()),
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                let count = tch::Cuda::device_count().max(0) as usize;
                if n < count {
                    Ok(Device::Cuda(n))
                } else {
                    Err(Error::Device(
                        format!("cuda:{n}"),
                        format!("this machine has {count} CUDA device(s)"),
                    ))
                }
            }
        }
    }
}

/// Parses and resolves a `--device` string in one step.
pub fn parse_device(s: &str) -> Result<Device> {
    s.parse::<DeviceSpec>()?.resolve()
}

/// A short human-readable name for a device (`cpu`, `cuda:0`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("CPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn absent_cuda_device_is_an_error() {
        let n = tch::Cuda::device_count().max(0) as usize;
        assert!(DeviceSpec::Cuda(n).resolve().is_err());
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), Device::Cpu);
    }
}
