//! What `crowdtrain simulate` leaves behind: a CSV of both methods per round and a
//! PNG of their loss curves (plotters, drawn with a TrueType font from disk so no
//! system font machinery is needed).

use crate::simulate::RoundStats;
use crate::{Error, Result};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

/// Where the PNG's font is looked for (Debian's fonts-dejavu-core), unless `CROWDTRAIN_FONT` is set.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The per-round CSV: one line per round with both methods side by side.
pub fn csv(diloco: &[RoundStats], sync: &[RoundStats]) -> String {
    let mut out = String::from(
        "round,tokens,diloco_train_loss,diloco_heldout_loss,diloco_bytes_per_worker,sync_train_loss,sync_heldout_loss,sync_bytes_per_worker,checkpoint\n",
    );
    for (d, s) in diloco.iter().zip(sync) {
        let ck = d.checkpoint.map(|h| h.to_hex()).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{ck}",
            d.round,
            d.tokens,
            d.train_loss,
            d.heldout_loss,
            d.bytes_per_worker,
            s.train_loss,
            s.heldout_loss,
            s.bytes_per_worker
        );
    }
    out
}

/// Registers the TrueType font once (plotters keeps a `'static` reference).
fn register_font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = std::env::var("CROWDTRAIN_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_string());
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("font {path}: {e} (apt-get install fonts-dejavu-core)"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("font {path} is not a TrueType font"))
    })
    .clone()
    .map_err(Error::Plot)
}

/// Draws held-out and training loss of both methods against tokens into a PNG.
pub fn plot(path: &Path, title: &str, diloco: &[RoundStats], sync: &[RoundStats]) -> Result<()> {
    register_font()?;
    let plot_err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let all = diloco.iter().chain(sync);
    let max_tokens = all.clone().map(|r| r.tokens).max().unwrap_or(1).max(1) as f64;
    let losses: Vec<f32> = all
        .flat_map(|r| [r.train_loss, r.heldout_loss])
        .filter(|l| l.is_finite())
        .collect();
    let lo = losses.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = losses.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let pad = ((hi - lo) * 0.05).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_tokens / 1e6, (lo - pad)..(hi + pad))
        .map_err(|e| plot_err(&e))?;
    chart
        .configure_mesh()
        .x_desc("training tokens (millions, all workers)")
        .y_desc("loss (nats per byte)")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| plot_err(&e))?;
    let series: [(&str, &[RoundStats], bool, RGBColor); 4] = [
        ("DiLoCo held-out", diloco, true, RGBColor(200, 40, 40)),
        ("synchronous held-out", sync, true, RGBColor(30, 80, 200)),
        ("DiLoCo train", diloco, false, RGBColor(240, 150, 150)),
        ("synchronous train", sync, false, RGBColor(140, 170, 240)),
    ];
    for (label, rows, heldout, color) in series {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| {
                (
                    r.tokens as f64 / 1e6,
                    if heldout {
                        r.heldout_loss
                    } else {
                        r.train_loss
                    } as f64,
                )
            })
            .filter(|p| p.1.is_finite())
            .collect();
        let width = if heldout { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
            .map_err(|e| plot_err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| plot_err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(&e))?;
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}
