//! Waiting on a stream from C: a non-blocking try, a blocking wait with a timeout, and a file
//! descriptor that becomes readable whenever waiting might end, all without lost wake-ups.
//!
//! A [`Waitable`] owns one Rust stream (a contract, a state stream, a sink's params) and polls it
//! with a waker of its own, a [`Signal`]: waking sets a flag, wakes every thread blocked on the
//! condition variable and makes the notification pipe readable. A waiter clears the flag *before*
//! polling, so a wake during the poll is never lost: the waiter then finds the flag set and polls
//! again instead of sleeping.
//!
//! Freeing a waitable from another thread marks it ended (every waiter returns
//! `HAKUBAN_ENDED`), drops the Rust stream, and releases the C handle's reference; calls already
//! in progress hold references of their own, so nothing they touch is freed under them.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::Stream;

/// Locks ignoring poison: a panic in one call (caught at the boundary) must not wedge others.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct SignalState {
    /// Woken since the last poll began.
    notified: bool,
    /// The waitable was freed: every waiter returns at once.
    ended: bool,
    /// The notification pipe, created on first request, and whether it holds a byte.
    pipe: Option<(PipeReader, PipeWriter)>,
    byte_pending: bool,
}

/// The waker of one waitable.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    condvar: Condvar,
}

impl Signal {
    fn raise(&self, end: bool) {
        let mut state = lock(&self.state);
        state.notified = true;
        state.ended |= end;
        if !state.byte_pending
            && let Some((_, writer)) = state.pipe.as_mut()
            && writer.write_all(&[1]).is_ok()
        {
            state.byte_pending = true;
        }
        drop(state);
        self.condvar.notify_all();
    }

    /// Takes the pipe's byte, if it holds one (never blocks: there is one byte at most, and we
    /// know whether it is there).
    fn drain(state: &mut SignalState) {
        if state.byte_pending
            && let Some((reader, _)) = state.pipe.as_mut()
        {
            let mut byte = [0u8; 1];
            if reader.read_exact(&mut byte).is_ok() {
                state.byte_pending = false;
            }
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.raise(false);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise(false);
    }
}

/// How long a call may wait: `timeout_ms` < 0 forever, 0 not at all, > 0 that many milliseconds.
pub(crate) fn deadline(timeout_ms: i64) -> Option<Option<Instant>> {
    match timeout_ms {
        0 => None,
        t if t < 0 => Some(None),
        t => Some(Instant::now().checked_add(Duration::from_millis(t.unsigned_abs()))),
    }
}

/// What waiting found.
pub(crate) enum Waited<T> {
    Item(T),
    Pending,
    Ended,
}

/// One Rust stream a C caller waits on.
pub(crate) struct Waitable<S> {
    stream: Mutex<Option<S>>,
    signal: Arc<Signal>,
}

impl<S: Stream + Unpin> Waitable<S> {
    pub fn new(stream: S) -> Self {
        Waitable { stream: Mutex::new(Some(stream)), signal: Arc::default() }
    }

    /// Runs `f` on the stream, unless it ended.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> Option<R> {
        lock(&self.stream).as_mut().map(f)
    }

    /// The next item: at once if ready, else waiting as `timeout_ms` says.
    pub fn next(&self, timeout_ms: i64) -> Waited<S::Item> {
        let deadline = deadline(timeout_ms);
        let waker = Waker::from(self.signal.clone());
        loop {
            {
                let mut state = lock(&self.signal.state);
                if state.ended {
                    return Waited::Ended;
                }
                state.notified = false;
                Signal::drain(&mut state);
            }
            let polled = {
                let mut stream = lock(&self.stream);
                let Some(stream) = stream.as_mut() else { return Waited::Ended };
                Pin::new(stream).poll_next(&mut Context::from_waker(&waker))
            };
            match polled {
                Poll::Ready(Some(item)) => return Waited::Item(item),
                Poll::Ready(None) => return Waited::Ended,
                Poll::Pending => {}
            }
            let Some(until) = deadline else { return Waited::Pending };
            let mut state = lock(&self.signal.state);
            while !state.notified && !state.ended {
                match until {
                    None => state = self.signal.condvar.wait(state).unwrap_or_else(PoisonError::into_inner),
                    Some(until) => {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Waited::Pending;
                        }
                        state = self.signal.condvar.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
                    }
                }
            }
        }
    }

    /// A file descriptor that becomes readable when a call to `next` might find something (or
    /// the end). The library reads it; the caller only polls it.
    #[cfg(unix)]
    pub fn fd(&self) -> std::io::Result<i32> {
        use std::os::fd::AsRawFd;
        let mut state = lock(&self.signal.state);
        if state.pipe.is_none() {
            state.pipe = Some(std::io::pipe()?);
            // Whatever happened before the pipe existed may be ready already.
            if let Some((_, writer)) = state.pipe.as_mut()
                && writer.write_all(&[1]).is_ok()
            {
                state.byte_pending = true;
            }
        }
        Ok(state.pipe.as_ref().map_or(-1, |(reader, _)| reader.as_raw_fd()))
    }

    /// Ends it: waiters return `Ended`, the stream is dropped.
    pub fn end(&self) {
        self.signal.raise(true);
        let stream = lock(&self.stream).take();
        drop(stream);
    }
}
