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

/// Makes glibc keep freed heap memory for reuse instead of returning it to the kernel, and serve
/// large blocks from the heap rather than from a fresh `mmap` each time (`mallopt(M_MMAP_MAX, 0)`,
/// `mallopt(M_TRIM_THRESHOLD, 2³¹-1)`). Returns whether the settings took effect (`false` off
/// glibc).
///
/// Why: libtorch's CPU allocator is plain `posix_memalign`. A training step allocates and frees
/// the same large activations every step (the `[B·L, K]` logits alone are 190 MB in the bench);
/// with glibc's defaults each of them is a new `mmap` whose pages fault in one by one, and a
/// freed heap top is trimmed and faulted in again. With these settings the second step reuses
/// the first step's memory: on 2 CPU threads the BehaveGPT bench step is 1.1–1.6× faster
/// (`benches/train.rs`). The same settings speed up PyTorch eager equally
/// (`benches/behavegpt_torch_ref.py --malloc-cache`). It is the CPU analogue of PyTorch's CUDA
/// caching allocator: the process keeps its peak heap (RSS does not shrink after a step).
///
/// Process-wide and not undone; call it once at start-up in a binary, before heavy allocation.
/// Safe with threads: arenas of other threads still fall back to `mmap` for blocks their heaps
/// cannot hold.
pub fn retain_freed_cpu_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: std::os::raw::c_int = -1;
        const M_MMAP_MAX: std::os::raw::c_int = -4;
        extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        // SAFETY: `mallopt` is glibc's documented, thread-safe tuning call; both parameters are
        // valid and it only changes allocator thresholds (returns 1 on success).
        unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
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
