//! Per-step metrics: `metrics.csv` in the run directory (appended as training goes,
//! cut back to the checkpoint on resume) and the loss curve as `loss.svg`.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

pub const HEADER: &str = "step,epoch,loss,lr,tokens,grad_norm,elapsed";

/// One optimizer step's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct StepMetrics {
    /// 1-based optimizer step.
    pub step: usize,
    /// Fractional epoch reached at the end of the step.
    pub epoch: f64,
    /// Mean cross-entropy per supervised token of the step.
    pub loss: f64,
    pub lr: f64,
    /// Supervised tokens of the step.
    pub tokens: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Seconds since the run started (across resumes).
    pub elapsed: f64,
}

impl StepMetrics {
    fn csv_row(&self) -> String {
        format!(
            "{},{:.4},{:.6},{:.6e},{},{:.6},{:.3}",
            self.step, self.epoch, self.loss, self.lr, self.tokens, self.grad_norm, self.elapsed
        )
    }
}

/// Appends one row to `path`, writing the header first when the file is new.
pub fn append(path: &Path, m: &StepMetrics) -> Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let text = if new {
        format!("{HEADER}\n{}\n", m.csv_row())
    } else {
        format!("{}\n", m.csv_row())
    };
    f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Reads `(step, loss)` of every row.
pub fn read_losses(path: &Path) -> Result<Vec<(usize, f64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut cols = line.split(',');
        let step = cols.next().and_then(|s| s.parse().ok());
        let loss = cols.nth(1).and_then(|s| s.parse().ok());
        match (step, loss) {
            (Some(s), Some(l)) => out.push((s, l)),
            _ => {
                return Err(Error::Data {
                    path: path.to_path_buf(),
                    message: format!("row {}: expected `{HEADER}`, found {line:?}", i + 1),
                })
            }
        }
    }
    Ok(out)
}

/// Drops rows after `step` (a killed run may have logged steps past its last
/// checkpoint); rewrites the file atomically.
pub fn truncate_after(path: &Path, step: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || l.split(',')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .is_some_and(|s| s <= step)
        })
        .map(|(_, l)| l)
        .collect();
    let text = kept.join("\n") + "\n";
    Ok(sdft_core::provenance::write_atomic(path, text.as_bytes())?)
}

/// The loss curve as a standalone SVG (hand-written: no fonts or system libraries).
pub fn loss_svg(points: &[(usize, f64)], title: &str) -> String {
    let (w, h, pad) = (640.0, 400.0, 56.0);
    let max_step = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let min_step = points.iter().map(|p| p.0).min().unwrap_or(0) as f64;
    let finite = || points.iter().map(|p| p.1).filter(|l| l.is_finite());
    let hi = finite().fold(f64::MIN, f64::max).max(1e-9);
    let lo = finite()
        .fold(f64::MAX, f64::min)
        .min(hi)
        .min(0.0_f64.max(hi - 1e-9));
    let span_x = (max_step - min_step).max(1.0);
    let span_y = (hi - lo).max(1e-9);
    let x = |s: f64| pad + (s - min_step) / span_x * (w - 2.0 * pad);
    let y = |l: f64| h - pad - (l - lo) / span_y * (h - 2.0 * pad);
    let path: Vec<String> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|p| format!("{:.1},{:.1}", x(p.0 as f64), y(p.1)))
        .collect();
    let esc = title.replace('&', "&amp;").replace('<', "&lt;");
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="24" text-anchor="middle" font-family="sans-serif" font-size="16">{esc}</text>
<line x1="{pad}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{yb}" stroke="black"/>
<text x="{pad}" y="{yl}" font-family="sans-serif" font-size="12">{min_step}</text>
<text x="{xr}" y="{yl}" text-anchor="end" font-family="sans-serif" font-size="12">{max_step} (step)</text>
<text x="{xt}" y="{yt}" text-anchor="end" font-family="sans-serif" font-size="12">{hi:.3}</text>
<text x="{xt}" y="{yb}" text-anchor="end" font-family="sans-serif" font-size="12">{lo:.3}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{pts}"/>
</svg>
"##,
        cx = w / 2.0,
        yb = h - pad,
        xr = w - pad,
        yl = h - pad + 18.0,
        xt = pad - 6.0,
        yt = pad + 4.0,
        pts = path.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_appends_reads_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        for step in 1..=4 {
            let m = StepMetrics {
                step,
                epoch: 0.5,
                loss: 5.0 - step as f64,
                lr: 1e-4,
                tokens: 10,
                grad_norm: 1.0,
                elapsed: 0.1,
            };
            append(&p, &m).unwrap();
        }
        assert_eq!(read_losses(&p).unwrap().len(), 4);
        truncate_after(&p, 2).unwrap();
        assert_eq!(read_losses(&p).unwrap(), vec![(1, 4.0), (2, 3.0)]);
        let svg = loss_svg(&read_losses(&p).unwrap(), "loss");
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    }
}
