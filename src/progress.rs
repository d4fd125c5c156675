//! Progress bars on standard error: drawn only on a terminal and never in `--json` mode.
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
