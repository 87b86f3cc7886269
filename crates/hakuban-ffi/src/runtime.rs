//! The runtime the library runs its networking on (created and freed by the caller), and
//! logging set-up.

use std::ffi::c_char;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::handle::{boxed, free_boxed};
use crate::status::{Failure, HakubanStatus, boundary, boundary_void, string, write_out};

/// Owns the tokio runtime; the last holder (the runtime handle, a connector or a listener) shuts
/// it down, waiting for its threads so nothing they hold outlives it.
pub(crate) struct RuntimeOwner(Option<tokio::runtime::Runtime>);

impl RuntimeOwner {
    pub fn handle(&self) -> Option<&tokio::runtime::Runtime> {
        self.0.as_ref()
    }
}

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// A tokio runtime owned by the library. Opaque.
pub struct HakubanRuntime {
    pub(crate) owner: Arc<RuntimeOwner>,
}

/// Creates a runtime with `worker_threads` worker threads (0: one per core) and writes it to
/// `*out`. Free it with `hakuban_runtime_free`. Connectors and listeners keep the runtime running
/// until they are freed too, so any teardown order is safe. Thread-safe.
///
/// # Safety
/// `out` must be valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_runtime_new(worker_threads: u32, out: *mut *mut HakubanRuntime) -> HakubanStatus {
    boundary(|| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("hakuban");
        if worker_threads > 0 {
            builder.worker_threads(worker_threads as usize);
        }
        let runtime = builder.build().map_err(|e| Failure::new(HakubanStatus::HakubanIoError, e.to_string()))?;
        let handle = boxed(HakubanRuntime { owner: Arc::new(RuntimeOwner(Some(runtime))) });
        // SAFETY: the caller promises `out` is writable.
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| {
            // SAFETY: `handle` was made just above and never given out.
            unsafe { free_boxed(handle) }
        })
    })
}

/// Frees a runtime handle (NULL is ignored). Its threads stop once no connector or listener
/// uses them any more. Must not be called from a callback running on the runtime.
///
/// # Safety
/// `runtime` is NULL or a live handle from `hakuban_runtime_new`, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_runtime_free(runtime: *mut HakubanRuntime) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(runtime) });
}

static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Sets up logging to stderr with a `RUST_LOG`-style filter (`"info"`, `"hakuban=debug,warn"`).
/// May be called any number of times: later calls replace the filter. If the process already
/// installed another `tracing` subscriber, that one stays and the call succeeds. Thread-safe.
///
/// # Safety
/// `filter` must be a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_logging_init(filter: *const c_char) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises a NUL-terminated string.
        let text = unsafe { string(filter, "filter") }?;
        let parsed = EnvFilter::try_new(text)
            .map_err(|e| Failure::new(HakubanStatus::HakubanInvalidLogFilter, format!("`{text}`: {e}")))?;
        if let Some(handle) = LOG_FILTER.get() {
            handle.reload(parsed).map_err(|e| Failure::new(HakubanStatus::HakubanInvalidLogFilter, e.to_string()))?;
            return Ok(HakubanStatus::HakubanOk);
        }
        let (layer, handle) = reload::Layer::new(parsed);
        let installed = tracing_subscriber::registry()
            .with(layer)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
        if installed.try_init().is_ok() {
            let _ = LOG_FILTER.set(handle);
        }
        Ok(HakubanStatus::HakubanOk)
    })
}
