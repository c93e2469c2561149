//! The report's plots: horizontal bars on a logarithmic axis (latencies from nanoseconds to
//! milliseconds share one chart), drawn as SVG by plotters (no font library: the viewer draws
//! the text).

use plotters::prelude::*;
use std::error::Error;
use std::path::Path;

/// One bar: its label, its value, and which series (colour) it belongs to.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub series: usize,
}

/// Bars top to bottom in the given order, on a log axis described by `x_desc` whose values
/// `unit` writes, with a legend naming each series.
pub fn bars_log(
    path: &Path,
    title: &str,
    x_desc: &str,
    unit: &dyn Fn(f64) -> String,
    bars: &[Bar],
    series: &[&str],
) -> Result<(), Box<dyn Error>> {
    let bars: Vec<&Bar> = bars
        .iter()
        .filter(|b| b.value.is_finite() && b.value > 0.0)
        .collect();
    if bars.is_empty() {
        return Err(format!("{title}: nothing to plot").into());
    }
    let n = bars.len();
    let lo = bars.iter().map(|b| b.value).fold(f64::MAX, f64::min) / 3.0;
    let hi = bars.iter().map(|b| b.value).fold(0.0, f64::max) * 3.0;
    let last = u32::try_from(n.saturating_sub(1).max(1))?;
    let height = u32::try_from(90 + 28 * n)?;

    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(260)
        .build_cartesian_2d((lo..hi).log_scale(), (0u32..last).into_segmented())?;
    // Index j is drawn bottom-up: the first bar goes on top.
    let label = |v: &SegmentValue<u32>| -> String {
        match v {
            SegmentValue::Exact(j) | SegmentValue::CenterOf(j) => n
                .checked_sub(1 + *j as usize)
                .and_then(|k| bars.get(k))
                .map(|b| b.label.clone())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&label)
        .x_label_formatter(&|v: &f64| unit(*v))
        .x_desc(x_desc)
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    for (s, name) in series.iter().enumerate() {
        let color = Palette99::pick(s).mix(0.85);
        let data: Vec<(u32, f64)> = bars
            .iter()
            .enumerate()
            .filter(|(_, b)| b.series == s)
            .map(|(i, b)| (u32::try_from(n - 1 - i).unwrap_or(0), b.value))
            .collect();
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(color.filled())
                    .baseline(lo)
                    .margin(4)
                    .data(data),
            )?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
