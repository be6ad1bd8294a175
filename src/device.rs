//! Device selection. The PyPI libtorch links `libtorch_cuda.so` only weakly (the linker's `--as-needed`
//! drops it), so CUDA is registered by `dlopen`ing it, and only when CUDA is asked for: a CPU machine never
//! needs the CUDA libraries.

use anyhow::{bail, Result};
use tch::Device;

/// Loads libtorch's CUDA backend; returns why it could not when it fails.
pub fn load_cuda_backend() -> std::result::Result<(), String> {
    // SAFETY: dlopen/dlerror are called with valid NUL-terminated strings; the handle is kept for the
    // lifetime of the process on purpose.
    unsafe {
        let handle = libc::dlopen(c"libtorch_cuda.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
        if handle.is_null() {
            let err = libc::dlerror();
            let msg = if err.is_null() {
                "unknown dlopen error".to_string()
            } else {
                std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned()
            };
            return Err(msg);
        }
    }
    Ok(())
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available, else CPU).
pub fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if load_cuda_backend().is_ok() && tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Ok(Device::Cpu)
            }
        }
        s if s == "cuda" || s.starts_with("cuda:") => {
            let index = match s.strip_prefix("cuda:") {
                Some(n) => n.parse::<usize>().map_err(|_| anyhow::anyhow!("bad device `{s}` (expected cuda:N)"))?,
                None => 0,
            };
            if let Err(why) = load_cuda_backend() {
                bail!("device `{s}` requested but libtorch_cuda.so could not be loaded: {why}");
            }
            if !tch::Cuda::is_available() {
                bail!("device `{s}` requested but CUDA is not available on this machine");
            }
            if index as i64 >= tch::Cuda::device_count() {
                bail!("device `{s}` requested but only {} CUDA device(s) exist", tch::Cuda::device_count());
            }
            Ok(Device::Cuda(index))
        }
        other => bail!("unknown device `{other}` (expected cpu, cuda, cuda:N or auto)"),
    }
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda{}", if i == 0 { String::new() } else { format!(":{i}") }),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// Checks the spelling of a device name without touching any device (for validating config files).
pub fn parse_device_name(s: &str) -> Result<()> {
    match s {
        "cpu" | "cuda" | "auto" => Ok(()),
        s if s.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok()) => Ok(()),
        other => bail!("unknown device `{other}` (expected cpu, cuda, cuda:N or auto)"),
    }
}

/// The environment variable that sets libtorch's intra-op CPU threads for `repro run` (default 1).
pub const THREADS_VAR: &str = "REPRO_THREADS";

/// The CPU thread count from `REPRO_THREADS`'s value (unset or empty: 1): an integer from 1 to
/// 4 × the available cores (at least 4). Zero and negative values make libtorch throw, and huge ones make it
/// spawn threads until the machine stalls, so both are refused with a message that names the variable.
pub fn cpu_threads(value: Option<&str>) -> Result<i32> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let max = (4 * cores).max(4);
    let Some(raw) = value.filter(|v| !v.trim().is_empty()) else { return Ok(1) };
    let n: i64 = raw.trim().parse().map_err(|_| {
        anyhow::anyhow!("{THREADS_VAR}={raw}: not an integer (the CPU thread count, 1 to {max}; unset means 1)")
    })?;
    if n < 1 || n > max as i64 {
        bail!("{THREADS_VAR}={raw}: must be from 1 to {max} (4 × the {cores} available cores; unset means 1)");
    }
    Ok(n as i32)
}
