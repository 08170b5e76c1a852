//! Progress of long jobs over capture files (replay, extraction, inventory).
//!
//! When standard error is a terminal, a bar shows the input bytes consumed
//! out of the total file size, the packets read, the rate and the estimated
//! time left (by bytes: packet sizes vary, file sizes are known up front).
//! When it is not (a pipe, a log file, CI), nothing is drawn while the job
//! runs and [`Progress::finish`] prints one summary line instead.
//!
//! A command creates one [`Progress`] with the total bytes it will read
//! (several passes over the same files count each pass), calls
//! [`Progress::update`] every few thousand packets from its read loop
//! ([`crate::timeline::Timeline::for_each`] does this), and
//! [`Progress::finish`] at the end:
//!
//! ```no_run
//! use sensor::progress::Progress;
//!
//! let files_size = 1_000_000;
//! let progress = Progress::new("inventory", files_size, true);
//! // ... read packets; every 1024 packets or so:
//! progress.update(4096, 250_000);
//! progress.finish();
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Packets between two progress updates in read loops.
pub const UPDATE_EVERY: u32 = 1024;

/// How progress is shown.
enum Display {
    /// Nothing at all (`--no-progress`, `--quiet`).
    Off,
    /// A live bar on the terminal.
    Bar(ProgressBar),
    /// Standard error is not a terminal: one line at the end.
    Summary,
}

/// Progress of one job: packets and bytes read out of a known total.
pub struct Progress {
    label: &'static str,
    total: u64,
    display: Display,
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Counts of the passes before the current one.
    base: (AtomicU64, AtomicU64),
    started: Instant,
}

impl Progress {
    /// Progress of job `label` over `total_bytes` of input. With `enabled`
    /// false nothing is shown; otherwise a bar when standard error is a
    /// terminal, else a summary line at [`Progress::finish`].
    pub fn new(label: &'static str, total_bytes: u64, enabled: bool) -> Progress {
        let display = if !enabled {
            Display::Off
        } else if std::io::stderr().is_terminal() {
            Display::Bar(bar(label, total_bytes))
        } else {
            Display::Summary
        };
        Progress {
            label,
            total: total_bytes,
            display,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            base: (AtomicU64::new(0), AtomicU64::new(0)),
            started: Instant::now(),
        }
    }

    /// A progress that shows nothing.
    pub fn hidden() -> Progress {
        Progress::new("", 0, false)
    }

    /// Whether a bar is drawn (standard error is a terminal).
    pub fn is_bar(&self) -> bool {
        matches!(self.display, Display::Bar(_))
    }

    /// Records that `packets` packets and `bytes` bytes of input have been
    /// read so far in the current pass (both absolute, not increments).
    pub fn update(&self, packets: u64, bytes: u64) {
        let packets = packets + self.base.0.load(Ordering::Relaxed);
        let bytes = bytes + self.base.1.load(Ordering::Relaxed);
        self.packets.store(packets, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        if let Display::Bar(bar) = &self.display {
            bar.set_position(bytes.min(self.total));
            bar.set_message(format!("{packets} packets"));
        }
    }

    /// Starts another pass over input (a job reading its files twice):
    /// later updates count from what was read so far; `phase` is shown on
    /// the bar (e.g. "writing").
    pub fn next_pass(&self, phase: &str) {
        self.base
            .0
            .store(self.packets.load(Ordering::Relaxed), Ordering::Relaxed);
        self.base
            .1
            .store(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
        self.set_phase(phase);
    }

    /// Names the current phase of the job on the bar (e.g. "selecting").
    pub fn set_phase(&self, phase: &str) {
        if let Display::Bar(bar) = &self.display {
            bar.set_prefix(format!("{} {phase}", self.label));
        }
    }

    /// Packets and bytes read so far, as last updated.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// The one-line summary: packets, bytes of the total, elapsed time.
    pub fn summary_line(&self) -> String {
        let (packets, bytes) = self.counts();
        let secs = self.started.elapsed().as_secs_f64();
        let percent = if self.total == 0 {
            100.0
        } else {
            bytes as f64 * 100.0 / self.total as f64
        };
        format!(
            "{}: {packets} packets, {bytes} of {} bytes read ({percent:.0}%) in {secs:.2} s",
            self.label, self.total
        )
    }

    /// Ends the job's progress: the bar is cleared, or the summary line is
    /// printed on standard error when it is not a terminal.
    pub fn finish(self) {
        match &self.display {
            Display::Off => {}
            Display::Bar(bar) => bar.finish_and_clear(),
            Display::Summary => eprintln!("{}", self.summary_line()),
        }
    }
}

fn bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {bar:20} {bytes}/{total_bytes} {msg} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_owned());
    bar.set_message("0 packets");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_reports_packets_bytes_and_share_of_the_total() {
        let p = Progress::new("extract", 2000, false);
        p.update(30, 500);
        p.next_pass("writing");
        p.update(10, 200);
        assert_eq!(p.counts(), (40, 700));
        let line = p.summary_line();
        assert!(
            line.starts_with("extract: 40 packets, 700 of 2000 bytes read (35%) in "),
            "{line}"
        );
        assert!(line.ends_with(" s"), "{line}");
    }
}
