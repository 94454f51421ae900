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

/// The header of the per-round table `simulate` prints as it goes.
pub fn table_header() -> String {
    format!(
        "{:>5} {:>10} | {:>12} {:>11} {:>12} | {:>11} {:>11} {:>12}",
        "round",
        "tokens",
        "DiLoCo train",
        "held-out",
        "bytes/worker",
        "sync train",
        "held-out",
        "bytes/worker"
    )
}

/// One round of both methods, aligned under [`table_header`].
pub fn table_row(d: &RoundStats, s: &RoundStats) -> String {
    format!(
        "{:>5} {:>10} | {:>12.4} {:>11.4} {:>12} | {:>11.4} {:>11.4} {:>12}",
        d.round,
        d.tokens,
        d.train_loss,
        d.heldout_loss,
        d.bytes_per_worker,
        s.train_loss,
        s.heldout_loss,
        s.bytes_per_worker
    )
}

/// Bytes one worker sent over all `rows`.
pub fn bytes_sent(rows: &[RoundStats]) -> u64 {
    rows.iter().map(|r| r.bytes_per_worker).sum()
}

/// Held-out gap of the last rows in percent (positive: DiLoCo is worse).
pub fn gap_percent(diloco: &RoundStats, sync: &RoundStats) -> f64 {
    100.0 * (diloco.heldout_loss as f64 / sync.heldout_loss as f64 - 1.0)
}

/// The closing line: final held-out losses, their gap, and the communication ratio.
pub fn summary(diloco: &[RoundStats], sync: &[RoundStats]) -> String {
    let (Some(d), Some(s)) = (diloco.last(), sync.last()) else {
        return "no rounds run".into();
    };
    let (sent_d, sent_s) = (bytes_sent(diloco), bytes_sent(sync));
    format!(
        "final held-out: DiLoCo {:.4} vs sync {:.4} ({:+.2}%); bytes per worker: {} vs {} ({:.0}× less)",
        d.heldout_loss,
        s.heldout_loss,
        gap_percent(d, s),
        sent_d,
        sent_s,
        sent_s as f64 / sent_d.max(1) as f64
    )
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
    // A run without a synchronous baseline (the demo) draws only its own lines.
    for (label, rows, heldout, color) in series.into_iter().filter(|s| !s.1.is_empty()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(round: u32, heldout: f32, bytes: u64) -> RoundStats {
        RoundStats {
            round,
            tokens: round as u64 * 1000,
            train_loss: heldout + 0.1,
            heldout_loss: heldout,
            bytes_per_worker: bytes,
            checkpoint: None,
        }
    }

    #[test]
    fn summary_reports_the_gap_and_the_traffic_ratio() {
        let diloco = [row(0, 5.0, 0), row(1, 2.2, 100), row(2, 2.04, 100)];
        let sync = [row(0, 5.0, 0), row(1, 2.1, 100_000), row(2, 2.0, 100_000)];
        let line = summary(&diloco, &sync);
        assert!(
            line.contains("DiLoCo 2.0400 vs sync 2.0000 (+2.00%)"),
            "{line}"
        );
        assert!(line.contains("200 vs 200000 (1000× less)"), "{line}");
        let r = table_row(&diloco[2], &sync[2]);
        assert_eq!(
            r.split_whitespace().collect::<Vec<_>>(),
            [
                "2", "2000", "|", "2.1400", "2.0400", "100", "|", "2.1000", "2.0000", "100000"
            ]
        );
        assert_eq!(table_header().len(), r.len(), "columns line up");
    }
}
