//! What the runner tells its operator on stderr: one line per action, more with `-v`, and a
//! spinner per running job when stderr is a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static VERBOSE: AtomicU8 = AtomicU8::new(0);
static BARS: OnceLock<Option<MultiProgress>> = OnceLock::new();

/// Sets the verbosity; spinners are drawn only when stderr is a terminal.
pub fn init(verbose: u8) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    BARS.get_or_init(|| std::io::stderr().is_terminal().then(MultiProgress::new));
}

fn bars() -> Option<&'static MultiProgress> {
    BARS.get().and_then(Option::as_ref)
}

/// One line on stderr, printed above any spinners so they are not torn.
pub fn line(msg: impl std::fmt::Display) {
    let now = chrono::Local::now().format("%H:%M:%S");
    match bars() {
        Some(m) => m.suspend(|| eprintln!("{now} {msg}")),
        None => eprintln!("{now} {msg}"),
    }
}

/// A line only shown with `-v`.
pub fn debug(msg: impl std::fmt::Display) {
    if VERBOSE.load(Ordering::Relaxed) > 0 {
        line(msg);
    }
}

/// A spinner with the elapsed time, when stderr is a terminal; finish it with `done`.
pub fn spinner(msg: String) -> Option<ProgressBar> {
    let m = bars()?;
    let bar = m.add(ProgressBar::new_spinner());
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
        bar.set_style(style);
    }
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

pub fn done(bar: Option<ProgressBar>) {
    if let (Some(bar), Some(m)) = (bar, bars()) {
        bar.finish_and_clear();
        m.remove(&bar);
    }
}
