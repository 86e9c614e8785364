//! The progress bars of the commands: one style, `PREFIX [bar] pos/len MSG
//! [elapsed, ETA]`, and the adapter that draws sdft-eval's per-benchmark progress.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps, with `prefix` before it and the message after.
pub fn bar(len: usize, prefix: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(
            "{prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]",
        )
        .expect("valid template"),
    );
    b.set_prefix(prefix.to_string());
    b
}

/// One bar per benchmark stage.
#[derive(Default)]
pub struct Bars(Option<ProgressBar>);

impl sdft_eval::harness::Progress for Bars {
    fn start(&mut self, benchmark: &str, stage: &str, total: usize, done: usize) {
        let b = bar(total, &format!("{:>28}", format!("{benchmark} {stage}")));
        b.set_position(done as u64);
        self.0 = Some(b);
    }

    fn set(&mut self, done: usize) {
        if let Some(b) = &self.0 {
            b.set_position(done as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish();
        }
    }
}
