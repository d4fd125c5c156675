//! Progress on standard error: bars only on a terminal and never in `--json` mode; elsewhere an
//! occasional plain line for work that takes minutes.
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress should be drawn.
pub fn enabled(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A byte-counting bar.
pub fn bytes(json: bool, total: u64, message: &str) -> ProgressBar {
    if !enabled(json) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message.to_string());
    pb
}

/// A spinner for work of unknown length.
pub fn spinner(json: bool, message: &str) -> ProgressBar {
    if !enabled(json) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_message(message.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A counting bar for items (passages, questions).
pub fn items(json: bool, total: u64, message: &str) -> ProgressBar {
    if !enabled(json) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message.to_string());
    pb
}

/// Where no bar can be drawn (standard error is a file or a pipe, as for a build left running
/// in the background), a plain line now and then, so a long run still shows it is alive.
pub struct Heartbeat {
    every: Duration,
    /// When the first event came, and when the last line was printed.
    clock: std::sync::Mutex<Option<(std::time::Instant, std::time::Instant)>>,
}

impl Heartbeat {
    pub fn new(every: Duration) -> Self {
        Heartbeat {
            every,
            clock: std::sync::Mutex::new(None),
        }
    }

    /// Prints `what: done of total (rate/s)` if standard error has no bar and the last line
    /// is `every` old.
    pub fn beat(&self, what: &str, done: u64, total: u64) {
        if std::io::stderr().is_terminal() {
            return;
        }
        let now = std::time::Instant::now();
        let Ok(mut clock) = self.clock.lock() else {
            return;
        };
        let Some((first, last)) = *clock else {
            *clock = Some((now, now));
            return;
        };
        if now.duration_since(last) < self.every {
            return;
        }
        *clock = Some((first, now));
        let secs = now.duration_since(first).as_secs_f64().max(1e-9);
        eprintln!(
            "{what}: {done} of {total} ({:.1}/s over {:.0} s)",
            done as f64 / secs,
            secs
        );
    }
}
