//! Cancelling synchronous work: SIGINT and SIGTERM set one process-wide
//! flag ([`request`]), and long synchronous loops (unpacking, walking,
//! scanning, hashing, archiving) call [`check`] between units of work, so
//! a signal ends them within milliseconds instead of when they are done.
//!
//! Async work needs none of this: [`crate::app::run_guarded`] drops the
//! command's future at its next await. But a finish phase that unpacks,
//! scans and archives a bundle runs for minutes without an await, on the
//! thread that would have to notice the signal; there the flag is what
//! stops it, and the error it returns unwinds the work normally, so the
//! work trees and staging directories are removed by their owners on the
//! way out. `run_guarded` reports any failure after a signal as the
//! interruption it was.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The error [`check`] returns (inside an [`io::Error`]) once a signal came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by signal {signal}")]
pub struct Cancelled {
    /// The signal's number.
    pub signal: i32,
}

/// Records that `signal` came: every later [`check`] fails.
pub fn request(signal: i32) {
    SIGNAL.store(signal, Ordering::SeqCst);
}

/// The signal that cancelled this process's work, if one came.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(signal),
    }
}

/// Fails once a signal came. The error's kind is not
/// [`io::ErrorKind::Interrupted`], which `std::io` retries.
pub fn check() -> io::Result<()> {
    match requested() {
        None => Ok(()),
        Some(signal) => Err(io::Error::other(Cancelled { signal })),
    }
}

/// Whether `e` is the error [`check`] returns.
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The flag is process-wide, and library tests share one process: a
    // test that set it would fail its neighbours. Cancellation itself is
    // tested on the binary (tests/harden.rs), where a signal sets it.
    #[test]
    fn the_cancelled_error_is_recognised_and_is_not_one_std_retries() {
        let e = io::Error::other(Cancelled {
            signal: libc::SIGTERM,
        });
        assert!(is_cancelled(&e));
        assert_ne!(e.kind(), io::ErrorKind::Interrupted);
        assert_eq!(e.to_string(), "interrupted by signal 15");
        assert!(!is_cancelled(&io::Error::other("disk full")));
    }
}
