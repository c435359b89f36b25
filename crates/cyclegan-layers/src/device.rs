//! Naming devices on the command line and in the environment.

use candle_core::Device;

/// Opens the device `spec` names: `cpu`, `cuda` or `cuda:N`. The error says what went wrong
/// and what to do (an unknown name, or CUDA in a build without it or on a machine without a GPU).
/// A GPU is set up for a process that drives it from one thread and one stream: cudarc's
/// per-allocation event tracking off, and freed memory kept in the device's pool for reuse, as
/// PyTorch's caching allocator does; its name, memory and compute capability are logged.
pub fn parse_device(spec: &str) -> Result<Device, String> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("--device {s}: expected cuda:N with N a number"))?,
                None => 0,
            };
            let device = Device::new_cuda(ordinal).map_err(|e| {
                format!("cannot open {s} ({e}); CUDA needs a binary built with `--features cudnn` (or `cuda`, without cuDNN; see the README's CUDA section) and an NVIDIA driver")
            })?;
            configure_cuda(&device).map_err(|e| format!("cannot set up {s}: {e}"))?;
            Ok(device)
        }
        other => Err(format!(
            "unknown device '{other}': expected cpu, cuda or cuda:N"
        )),
    }
}

/// The device spec ([`parse_device`]) that the reference's `--gpu_ids` names: `-1` (or any
/// negative id) is the CPU, `N` is `cuda:N`. Several ids (`0,1`), which the reference spreads a
/// batch over with `DataParallel`, are refused: this workspace trains on one device.
pub fn device_from_gpu_ids(gpu_ids: &str) -> Result<String, String> {
    let ids = gpu_ids
        .split(',')
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<i64>().map_err(|_| {
                format!("--gpu_ids '{gpu_ids}': expected GPU numbers such as 0, or -1 for the CPU")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gpus: Vec<i64> = ids.iter().copied().filter(|&id| id >= 0).collect();
    match gpus.as_slice() {
        [] => Ok("cpu".into()),
        [id] => Ok(format!("cuda:{id}")),
        _ => Err(format!(
            "--gpu_ids '{gpu_ids}': several GPUs at once are not supported; pass one (--gpu_ids {}) or --device cuda:N",
            gpus[0]
        )),
    }
}

/// Sets up an opened GPU for a process that drives it from one thread and one stream, as candle
/// and this workspace do: cudarc's event tracking, which creates two CUDA events per allocation
/// to order work across streams, is turned off; and the device's memory pool keeps freed memory
/// for reuse instead of handing it back to the driver at every synchronisation (each training
/// step reads its losses once), as PyTorch's caching allocator does. It logs the GPU's name,
/// memory and compute capability. Nothing to do on the CPU.
pub(crate) fn configure_cuda(device: &Device) -> candle_core::Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        use candle_core::cuda_backend::cudarc::driver::sys;
        use candle_core::cuda_backend::WrapErr;
        // SAFETY: all work on this device is ordered on its one stream.
        unsafe { dev.disable_event_tracking() };
        let context = dev.cuda_stream().context().clone();
        context.bind_to_thread().w()?;
        let mut pool = std::mem::MaybeUninit::uninit();
        let mut keep_everything = u64::MAX;
        // SAFETY: plain driver calls on the current context's device; the pointers live across them.
        unsafe {
            sys::cuDeviceGetDefaultMemPool(pool.as_mut_ptr(), context.cu_device())
                .result()
                .w()?;
            sys::cuMemPoolSetAttribute(
                pool.assume_init(),
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut keep_everything as *mut u64).cast(),
            )
            .result()
            .w()?;
        }
        let name = context.name().w()?;
        let (major, minor) = context.compute_capability().w()?;
        let gib = context.total_mem().w()? as f64 / (1u64 << 30) as f64;
        tracing::info!(
            "cuda:{}: {name}, {gib:.1} GiB, compute capability {major}.{minor}",
            context.ordinal()
        );
    }
    #[cfg(not(feature = "cuda"))]
    let _ = device;
    Ok(())
}

/// An error and its causes on one line, `error: cause: cause`, for a binary's last message.
/// A cause is left out where the text before already ends with it: this workspace's errors
/// quote their cause (`cannot read F: No such file or directory`) so that they read whole when
/// printed alone, and anyhow's `{error:#}` would repeat it.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// Whether a binary's log lines on standard error may carry colour codes: only on a terminal,
/// and not when `NO_COLOR` is set (<https://no-color.org>), so that logs piped to a file or
/// another program stay plain text.
pub fn log_colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether an error's text (`{error:#}`) says that the GPU ran out of memory (cudarc's
/// `CUDA_ERROR_OUT_OF_MEMORY`), so that a binary can say what needs less.
pub fn is_out_of_memory(message: &str) -> bool {
    message.contains("CUDA_ERROR_OUT_OF_MEMORY")
}

/// The device the tests of this workspace run on: `CYCLEGAN_TEST_DEVICE` (`cpu` when unset),
/// so that the PyTorch parity fixtures pin the CUDA path down too on a GPU machine. Opened once
/// per process: every call returns the same device (candle gives each opening of a GPU its own
/// identity, and tensors of two openings are not on the "same" device).
/// `CYCLEGAN_TEST_CHANNELS_LAST=1` also turns [`crate::ops::set_cuda_channels_last`] on, and
/// `CYCLEGAN_TEST_STORE_PROLOGUES=1` turns [`crate::ops::set_recompute_prologues`] off, so that
/// the same tests pin those paths down.
///
/// # Panics
/// When the variable names no device that opens: a test run asked for a device it cannot have.
#[doc(hidden)]
pub fn test_device() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            if std::env::var("CYCLEGAN_TEST_CHANNELS_LAST").is_ok_and(|v| v == "1") {
                crate::ops::set_cuda_channels_last(true);
            }
            if std::env::var("CYCLEGAN_TEST_STORE_PROLOGUES").is_ok_and(|v| v == "1") {
                crate::ops::set_recompute_prologues(false);
            }
            let spec = std::env::var("CYCLEGAN_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
            parse_device(&spec).unwrap_or_else(|e| panic!("CYCLEGAN_TEST_DEVICE: {e}"))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Quoting(std::io::Error);
    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read a.png: {}", self.0)
        }
    }
    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_text_says_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            error_text(&Quoting(io())),
            "cannot read a.png: no such file"
        );
        // A context that does not quote its cause gets it appended.
        let wrapped = anyhow::Error::new(Quoting(io())).context("loading the run");
        assert_eq!(
            error_text(wrapped.as_ref()),
            "loading the run: cannot read a.png: no such file"
        );
    }

    #[test]
    fn names_are_parsed_with_clear_errors() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("gpu")
            .unwrap_err()
            .contains("expected cpu, cuda or cuda:N"));
        assert!(parse_device("cuda:x").unwrap_err().contains("cuda:N"));
        if !cfg!(feature = "cuda") {
            assert!(parse_device("cuda")
                .unwrap_err()
                .contains("--features cudnn"));
        }
    }

    #[test]
    fn reference_gpu_ids_name_one_device() {
        assert_eq!(device_from_gpu_ids("-1").unwrap(), "cpu");
        assert_eq!(device_from_gpu_ids("0").unwrap(), "cuda:0");
        assert_eq!(device_from_gpu_ids(" 2 ").unwrap(), "cuda:2");
        assert!(device_from_gpu_ids("0,1")
            .unwrap_err()
            .contains("several GPUs"));
        assert!(device_from_gpu_ids("gpu0")
            .unwrap_err()
            .contains("-1 for the CPU"));
    }

    #[test]
    fn out_of_memory_is_told_from_other_errors() {
        // The text of a failed allocation as candle reports cudarc's driver error.
        let oom = r#"training step 12: DriverError(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")"#;
        assert!(is_out_of_memory(oom));
        let other = r#"DriverError(CUDA_ERROR_INVALID_VALUE, "invalid argument")"#;
        assert!(!is_out_of_memory(other));
        assert!(!is_out_of_memory(
            "cannot open data/x: No such file or directory"
        ));
    }
}
