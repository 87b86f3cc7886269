//! The exchange, its snapshot, and the transports: connector (to a router) and listener.

use std::ffi::{CString, c_char};
use std::sync::Arc;

use hakuban_tokio::{Exchange, WebsocketConnector, WebsocketError, WebsocketListener};

use crate::handle::{borrow, boxed, free_boxed};
use crate::runtime::{HakubanRuntime, RuntimeOwner};
use crate::status::{Failure, HakubanStatus, boundary, boundary_void, string, write_out};

/// One Hakuban node. Opaque.
pub struct HakubanExchange {
    pub(crate) exchange: Exchange,
}

/// Creates an exchange and writes it to `*out`; free it with `hakuban_exchange_free`. Contracts,
/// connectors and listeners made from it keep what they need alive, so it may be freed first.
///
/// # Safety
/// `out` must be valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_exchange_new(out: *mut *mut HakubanExchange) -> HakubanStatus {
    boundary(|| {
        let handle = boxed(HakubanExchange { exchange: Exchange::new() });
        // SAFETY: the caller promises `out` is writable; on failure the handle is taken back.
        unsafe { write_out(out, handle, "out") }.inspect_err(|_| unsafe { free_boxed(handle) })
    })
}

/// Frees an exchange handle (NULL is ignored).
///
/// # Safety
/// `exchange` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_exchange_free(exchange: *mut HakubanExchange) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(exchange) });
}

/// Writes to `*out` a JSON text describing what the exchange holds (objects, tags, flags,
/// exposers, cached states). Owned: free it with `hakuban_string_free`. Thread-safe.
///
/// # Safety
/// `exchange` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_exchange_snapshot_json(
    exchange: *const HakubanExchange,
    out: *mut *mut c_char,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller promises a live handle.
        let exchange = unsafe { borrow(exchange, "exchange") }?;
        let json = serde_json::to_string(&exchange.exchange.snapshot())
            .map_err(|e| Failure::new(HakubanStatus::HakubanPanic, e.to_string()))?;
        let text = CString::new(json).map_err(|e| Failure::new(HakubanStatus::HakubanPanic, e.to_string()))?;
        let raw = text.into_raw();
        // SAFETY: `out` is writable (caller's promise); on failure the string is taken back.
        unsafe { write_out(out, raw, "out") }.inspect_err(|_| drop(unsafe { CString::from_raw(raw) }))
    })
}

/// Frees a string the library returned as owned (NULL is ignored).
///
/// # Safety
/// `text` is NULL or an owned string from this library, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_string_free(text: *mut c_char) {
    boundary_void(|| {
        if !text.is_null() {
            // SAFETY: an owned string made by `CString::into_raw` in this library.
            drop(unsafe { CString::from_raw(text) });
        }
    });
}

fn websocket_failure(error: WebsocketError) -> Failure {
    let status = match &error {
        WebsocketError::InvalidUrl(_) => HakubanStatus::HakubanInvalidUrl,
        WebsocketError::Bind(_) | WebsocketError::Tls(_) => HakubanStatus::HakubanIoError,
        WebsocketError::UpstreamTaken => HakubanStatus::HakubanUpstreamTaken,
        WebsocketError::NoRuntime => HakubanStatus::HakubanInvalidArgument,
    };
    Failure::new(status, error.to_string())
}

/// The arguments every transport constructor takes, checked: the runtime (and a share of it for
/// the transport to keep), the exchange and the URL.
struct TransportArguments<'a> {
    tokio: &'a tokio::runtime::Runtime,
    owner: Arc<RuntimeOwner>,
    exchange: Exchange,
    url: &'a str,
}

/// # Safety
/// As for the transport constructors: live handles, a NUL-terminated `url`, a writable `out`.
unsafe fn transport_arguments<'a, T>(
    runtime: *const HakubanRuntime,
    exchange: *const HakubanExchange,
    url: *const c_char,
    out: *mut *mut T,
) -> Result<TransportArguments<'a>, Failure> {
    // SAFETY: the caller promises live handles and a NUL-terminated string.
    let (runtime, exchange, url) =
        unsafe { (borrow(runtime, "runtime")?, borrow(exchange, "exchange")?, string(url, "url")?) };
    crate::status::non_null(out, "out")?;
    let tokio = runtime
        .owner
        .handle()
        .ok_or_else(|| Failure::new(HakubanStatus::HakubanInvalidArgument, "runtime is shut down"))?;
    Ok(TransportArguments { tokio, owner: runtime.owner.clone(), exchange: exchange.exchange.clone(), url })
}

/// Keeps an exchange connected to a router (or any listener): it connects, and reconnects after
/// every disconnection, until freed. Opaque.
pub struct HakubanConnector {
    connector: Option<WebsocketConnector>,
    runtime: Arc<RuntimeOwner>,
}

impl Drop for HakubanConnector {
    fn drop(&mut self) {
        let _inside = self.runtime.handle().map(|runtime| runtime.enter());
        self.connector.take();
    }
}

/// Connects `exchange` upstream to `url` (`ws://host:port`, parameters in the fragment as
/// `#timeout=10s,keep-alive=3s,name=...`) on `runtime`, and writes the connector to `*out`.
/// Returns at once; connecting happens in the background. `HAKUBAN_INVALID_URL` for a bad URL,
/// `HAKUBAN_UPSTREAM_TAKEN` if the exchange has an upstream already. Free with
/// `hakuban_connector_free`. Thread-safe.
///
/// # Safety
/// `runtime` and `exchange` are live handles; `url` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_connector_new(
    runtime: *const HakubanRuntime,
    exchange: *const HakubanExchange,
    url: *const c_char,
    out: *mut *mut HakubanConnector,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller's promises are those `transport_arguments` needs.
        let arguments = unsafe { transport_arguments(runtime, exchange, url, out) }?;
        let connector = {
            let _inside = arguments.tokio.enter();
            WebsocketConnector::new(arguments.exchange, arguments.url).map_err(websocket_failure)?
        };
        let handle = boxed(HakubanConnector { connector: Some(connector), runtime: arguments.owner });
        // SAFETY: `out` is writable (checked not NULL above; the caller promises validity).
        unsafe { write_out(out, handle, "out") }
    })
}

/// Disconnects and frees a connector (NULL is ignored).
///
/// # Safety
/// `connector` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_connector_free(connector: *mut HakubanConnector) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(connector) });
}

/// Accepts children (clients, other routers) for an exchange. Opaque.
pub struct HakubanListener {
    listener: Option<WebsocketListener>,
    url: CString,
    runtime: Arc<RuntimeOwner>,
}

impl Drop for HakubanListener {
    fn drop(&mut self) {
        let _inside = self.runtime.handle().map(|runtime| runtime.enter());
        self.listener.take();
    }
}

/// Makes `exchange` listen on `url` (`ws://127.0.0.1:0` picks a free port; fragment parameters
/// as for connectors apply to accepted links) and writes the listener to `*out` once it listens.
/// `HAKUBAN_IO_ERROR` if the address cannot be bound. Free with `hakuban_listener_free`.
/// Thread-safe; must not be called from a callback running on the runtime.
///
/// # Safety
/// `runtime` and `exchange` are live handles; `url` is a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_listener_new(
    runtime: *const HakubanRuntime,
    exchange: *const HakubanExchange,
    url: *const c_char,
    out: *mut *mut HakubanListener,
) -> HakubanStatus {
    boundary(|| {
        // SAFETY: the caller's promises are those `transport_arguments` needs.
        let arguments = unsafe { transport_arguments(runtime, exchange, url, out) }?;
        let listening = WebsocketListener::new(arguments.exchange, arguments.url);
        let listener = arguments.tokio.block_on(listening).map_err(websocket_failure)?;
        let text =
            CString::new(listener.url()).map_err(|e| Failure::new(HakubanStatus::HakubanInvalidUrl, e.to_string()))?;
        let handle = boxed(HakubanListener { listener: Some(listener), url: text, runtime: arguments.owner });
        // SAFETY: `out` is writable (checked not NULL above; the caller promises validity).
        unsafe { write_out(out, handle, "out") }
    })
}

/// The URL the listener listens on, with the real port (`ws://127.0.0.1:40123`). Borrowed:
/// valid until the listener is freed. NULL if `listener` is NULL.
///
/// # Safety
/// `listener` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_listener_url(listener: *const HakubanListener) -> *const c_char {
    // SAFETY: the caller promises a live handle or NULL.
    match unsafe { borrow(listener, "listener") } {
        Ok(listener) => listener.url.as_ptr(),
        Err(_) => std::ptr::null(),
    }
}

/// Stops listening and frees the listener (NULL is ignored). Connections already accepted run
/// until they end or the runtime stops.
///
/// # Safety
/// `listener` is NULL or a live handle, not used again after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hakuban_listener_free(listener: *mut HakubanListener) {
    // SAFETY: ownership comes back from the caller.
    boundary_void(|| unsafe { free_boxed(listener) });
}
