//! Test support shared by the workspace's tests, a dev-dependency only: `LogCapture`
//! (what the code logs, kept to search it for secrets and personal values), the rule
//! of the house for services a test needs (`service_url`, `program`, `missing`):
//! found, or the test skipped with the reason printed, and failed instead when `CI`
//! is set; `fixtures`, the one harness of expected files, rewritten by `BLESS=1`; and
//! `bench`, what the connectors' benchmarks measure alike; `sshd`, a private sshd on
//! loopback for the SFTP tests.

pub mod bench;
pub mod fixtures;
pub mod sshd;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::dispatcher::Dispatch;
use tracing::subscriber::DefaultGuard;

/// What the code under test logged while the capture was on (this thread's default
/// subscriber, at the levels the filter allows), as plain text without colours.
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogCapture {
    /// Starts capturing on this thread, with an `EnvFilter` directive (`trace`,
    /// `passerelle_faj=trace`); capture stops when the guard is dropped.
    pub fn start(filter: &str) -> (Self, DefaultGuard) {
        keep_interest_shared();
        let capture = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(capture.clone())
            .with_ansi(false)
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// With one scoped subscriber alone, tracing-core works out the interest of a
/// callsite met for the first time from the *current thread's* subscriber: a log line
/// first reached by another test's thread (no subscriber there) is then cached as
/// never enabled, and the capture misses it. A second dispatcher, kept for the whole
/// process, makes it ask every live subscriber instead.
fn keep_interest_shared() {
    static OTHER: OnceLock<Dispatch> = OnceLock::new();
    OTHER.get_or_init(|| Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

/// Says that a service or program a test needs is missing: under `CI` the test fails
/// (a test never passes quietly there); elsewhere the reason is printed and the
/// caller returns early. `how` says how to get it (`run it through scripts/test`).
pub fn missing(what: &str, how: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing and CI is set ({how})"
    );
    // Printing is how a test says why it returned early.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: {what} is missing ({how})");
    }
}

/// The URL of a service named by an environment variable (`PASSERELLE_TEST_PG_URL`),
/// or `None` after [`missing`] when it is unset or empty.
pub fn service_url(var: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            missing(var, how);
            None
        }
    }
}

/// A program a test runs (`/usr/sbin/sshd`), or `None` after [`missing`].
pub fn program(path: &str, how: &str) -> Option<std::path::PathBuf> {
    let p = std::path::PathBuf::from(path);
    if p.exists() {
        Some(p)
    } else {
        missing(path, how);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_what_this_thread_logs_at_the_filtered_levels() {
        let (capture, guard) = LogCapture::start("passerelle_testkit=debug");
        tracing::debug!(answer = 42, "captured line");
        tracing::trace!("below the filter");
        drop(guard);
        tracing::debug!("after the guard");
        let text = capture.text();
        assert!(
            text.contains("captured line") && text.contains("answer=42"),
            "{text}"
        );
        assert!(!text.contains("below the filter") && !text.contains("after the guard"));
    }

    #[test]
    fn a_line_first_met_on_another_thread_is_still_captured() {
        let (capture, _guard) = LogCapture::start("passerelle_testkit=debug");
        fn log() {
            tracing::debug!("from a shared callsite");
        }
        // Another thread, with no subscriber, meets the callsite first.
        std::thread::spawn(log).join().unwrap();
        log();
        assert!(capture.text().contains("from a shared callsite"));
    }

    #[test]
    fn present_things_are_found() {
        let var = "PASSERELLE_TESTKIT_SURELY_UNSET_VAR";
        if std::env::var_os("CI").is_none() {
            assert_eq!(service_url(var, "nothing to do"), None);
            assert_eq!(program("/surely/not/here", "nothing to do"), None);
        }
        assert!(program("/bin/sh", "a shell").is_some());
    }

    #[test]
    fn under_ci_a_missing_service_fails() {
        if std::env::var_os("CI").is_some() {
            let r = std::panic::catch_unwind(|| missing("a service", "nowhere"));
            assert!(r.is_err(), "missing must fail the test under CI");
        }
    }
}
