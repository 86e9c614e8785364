//! The report's plots (SVG): one grouped bar chart per benchmark family and the
//! task-gain-vs-forgetting scatter.

use std::path::Path;

use plotters::prelude::*;

use super::{GainForgetting, Run};
use crate::{Error, Result};

/// A benchmark's primary metric per run: (percent, stderr in points).
pub type BenchValues = (String, Vec<Option<(f64, f64)>>);

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
];

fn plot_err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::File {
        path: path.to_path_buf(),
        message: format!("drawing the plot: {e:?}"),
    }
}

/// One grouped bar chart: the primary metric of each benchmark of a family, one
/// bar per run, with a ±1 standard error whisker.
pub fn bar_chart(path: &Path, family: &str, runs: &[Run], benches: &[BenchValues]) -> Result<()> {
    let root = SVGBackend::new(path, (160 + 140 * benches.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(path))?;
    let nb = benches.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{family} (primary metric, %)"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..nb as f64, 0f64..100f64)
        .map_err(plot_err(path))?;
    let names: Vec<String> = benches.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(nb.max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("%")
        .draw()
        .map_err(plot_err(path))?;
    let width = 0.8 / runs.len().max(1) as f64;
    for (ri, run) in runs.iter().enumerate() {
        let color = PALETTE[ri % PALETTE.len()];
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (bi, (_, values)) in benches.iter().enumerate() {
            if let Some((v, se)) = values[ri] {
                let x0 = bi as f64 + 0.1 + ri as f64 * width;
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, v)],
                    color.filled(),
                ));
                let xm = x0 + width * 0.45;
                whiskers.push(PathElement::new(
                    vec![(xm, (v - se).max(0.0)), (xm, (v + se).min(100.0))],
                    BLACK,
                ));
            }
        }
        chart
            .draw_series(bars)
            .map_err(plot_err(path))?
            .label(run.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(whiskers).map_err(plot_err(path))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err(path))?;
    root.present().map_err(plot_err(path))?;
    Ok(())
}

/// Task gain (x) against forgetting (y), one labelled point per run after the
/// first, with ±1 standard error bars on both axes.
pub fn scatter(path: &Path, task: &str, points: &[GainForgetting]) -> Result<()> {
    let root = SVGBackend::new(path, (560, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err(path))?;
    let span = |f: fn(&GainForgetting) -> (f64, f64)| {
        let m = points
            .iter()
            .map(|p| {
                let (v, se) = f(p);
                v.abs() + se
            })
            .fold(1.0f64, f64::max)
            * 1.25;
        -m..m
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "task gain vs. forgetting (pp vs. first run, ±1 se)",
            ("sans-serif", 18),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            span(|p| (p.gain, p.gain_se)),
            span(|p| (p.forgetting, p.forgetting_se)),
        )
        .map_err(plot_err(path))?;
    chart
        .configure_mesh()
        .x_desc(format!("gain on {task} (pp)"))
        .y_desc("forgetting: mean drop elsewhere (pp)")
        .draw()
        .map_err(plot_err(path))?;
    for (i, p) in points.iter().enumerate() {
        let color = PALETTE[(i + 1) % PALETTE.len()];
        let (x, y) = (p.gain, p.forgetting);
        chart
            .draw_series([
                PathElement::new(vec![(x - p.gain_se, y), (x + p.gain_se, y)], color),
                PathElement::new(
                    vec![(x, y - p.forgetting_se), (x, y + p.forgetting_se)],
                    color,
                ),
            ])
            .map_err(plot_err(path))?;
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 6, color.filled())))
            .map_err(plot_err(path))?;
        chart
            .draw_series(std::iter::once(Text::new(
                p.run.clone(),
                (x, y),
                ("sans-serif", 14),
            )))
            .map_err(plot_err(path))?;
    }
    root.present().map_err(plot_err(path))?;
    Ok(())
}
