//! Progress display for long work (pulls, image builds, phases).
//!
//! Bars and spinners go to stderr and only when stderr is a terminal, so
//! scripts and CI logs stay clean (there, the milestones of long work are
//! plain lines: [`Phase::step`]); results always go to stdout.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// True when progress should be drawn (stderr is an interactive terminal).
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// A spinner for a phase of unknown length, showing its elapsed time.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A byte-counting bar (downloads, layer pulls, uploads).
pub fn bytes(message: impl Into<String>, total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, target());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.into());
    bar
}

fn target() -> ProgressDrawTarget {
    if enabled() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// Times a phase and logs its duration when done, so that `-v` output and
/// the closing summary carry elapsed time even without a terminal.
pub struct Phase {
    name: &'static str,
    started: Instant,
    bar: ProgressBar,
}

impl Phase {
    /// Starts a phase with a spinner.
    pub fn start(name: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::info!(phase = name, "{message}");
        Phase {
            name,
            started: Instant::now(),
            bar: spinner(message),
        }
    }

    /// Updates the spinner's message.
    pub fn set_message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// A milestone of a long phase (an image build's `Step n/m`): the
    /// spinner's message on a terminal; elsewhere (a CI log, a pipe) a plain
    /// line with the elapsed time, so minutes of work are not silent.
    pub fn step(&self, message: impl Into<String>) {
        let message = message.into();
        if enabled() {
            self.bar.set_message(message);
        } else {
            let secs = self.started.elapsed().as_secs();
            // A closed stderr ends the run through `term::closed`.
            let _ = crate::term::write_stderr(
                format!("[{}m{:02}s] {message}\n", secs / 60, secs % 60).as_bytes(),
            );
        }
    }

    /// Ends the phase and returns its duration.
    pub fn finish(self) -> Duration {
        let elapsed = self.started.elapsed();
        self.bar.finish_and_clear();
        tracing::info!(
            phase = self.name,
            elapsed_ms = elapsed.as_millis() as u64,
            "phase done"
        );
        elapsed
    }
}
