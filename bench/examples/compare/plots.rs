//! SVG plots of the comparison harness, written with plotters' SVG backend.
//!
//! Text goes into the SVG as `<text>` elements that the viewer lays out with its own fonts. With
//! neither of plotters' font features (`ttf`, `ab_glyph`) enabled, plotters sizes labels with a
//! built-in estimate and never opens a font file, so the plots are written on a machine with no
//! fonts installed (CI's fresh Debian).

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;
use std::path::Path;

type Result = std::result::Result<(), Box<dyn Error>>;

const SIZE: (u32, u32) = (960, 540);
const UBERPOOL: RGBColor = RGBColor(31, 119, 180);
const PEER: RGBColor = RGBColor(150, 150, 150);
const TARGET: RGBColor = RGBColor(214, 39, 40);
const SECOND: RGBColor = RGBColor(255, 127, 14);
const FONT: &str = "sans-serif";

/// One bar: its label, its height, and whether it is a uberpool contender (coloured) or a peer.
pub struct Bar {
    pub name: String,
    pub value: f64,
    pub uberpool: bool,
}

/// Workload 1: median makespan per contender, every round's time, and the CPU lower bound.
pub struct Mixed {
    pub n: usize,
    pub rounds: usize,
    pub cpu_bound_ms: f64,
    pub bars: Vec<Bar>,
    /// Each round's makespan in ms, per contender (same order as `bars`).
    pub round_ms: Vec<Vec<f64>>,
}

/// Workload 2: the queue-wait distribution of one strategy.
pub struct LightCdf {
    pub name: String,
    /// (wait in µs, fraction of samples at or below it), increasing.
    pub points: Vec<(f64, f64)>,
    pub p99_us: f64,
}

/// Workload 3: the pool's threads sampled over time from the first submission.
pub struct Burst {
    pub tasks: usize,
    /// (ms since the first submission, threads, threads running a task).
    pub samples: Vec<(f64, usize, usize)>,
    pub core: usize,
    pub all_done_ms: f64,
    pub keep_alive_ms: f64,
    /// When the pool was back to its core threads, if it was within the guard.
    pub back_to_core_ms: Option<f64>,
}

/// Workload 5: bytes of RSS per queued task and per live thread.
pub struct Memory {
    pub queued: Vec<Bar>,
    pub threads: Vec<Bar>,
}

fn caption(root: &DrawingArea<SVGBackend, Shift>, title: &str, machine: &str) -> Result {
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        title.to_string(),
        (20, 12),
        (FONT, 22).into_font().style(FontStyle::Bold),
    ))?;
    root.draw(&Text::new(machine.to_string(), (20, 40), (FONT, 15)))?;
    Ok(())
}

/// Draws `bars` on a chart whose x axis is 0.0..bars.len(): each bar from `floor` to its value,
/// coloured by side, with its value above it and its name under the axis (drawn on `area` in
/// pixels, because the plotting area clips text outside it), wrapped to fit its column.
fn draw_bars<'a, Y>(
    area: &DrawingArea<SVGBackend<'a>, Shift>,
    chart: &mut ChartContext<'_, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    bars: &[Bar],
    floor: f64,
    unit: &str,
) -> Result
where
    Y: Ranged<ValueType = f64>,
{
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let colour = if b.uberpool { UBERPOOL } else { PEER };
        Rectangle::new(
            [(i as f64 + 0.15, floor), (i as f64 + 0.85, b.value)],
            colour.filled(),
        )
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        Text::new(
            format!("{}{unit}", fmt_value(b.value)),
            (i as f64 + 0.5, b.value),
            (FONT, 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    let column = (chart.backend_coord(&(1.0, floor)).0 - chart.backend_coord(&(0.0, floor)).0)
        .max(40) as usize;
    let (ax, ay) = area.get_base_pixel();
    for (i, b) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, floor));
        for (line_no, line) in wrap(&b.name, column / 7).iter().enumerate() {
            area.draw(&Text::new(
                line.clone(),
                (x - ax, y - ay + 8 + 15 * line_no as i32),
                (FONT, 13)
                    .into_text_style(area)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
    }
    Ok(())
}

/// Axis ticks at 1, 2 and 5 times the powers of ten between `lo` and `hi`.
fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = vec![];
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if (lo..=hi).contains(&v) {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Splits `text` on spaces into lines of about `chars` characters (never breaking a word).
fn wrap(text: &str, chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = vec![];
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= chars.max(8) => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// (a) Mixed workload: median makespan per contender (log scale), each round as a dot, and the
/// CPU lower bound N·50 µs / cores as a line.
pub fn mixed(path: &Path, machine: &str, m: &Mixed) -> Result {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    caption(
        &root,
        &format!(
            "Mixed email workload: N = {} × (50 µs CPU + 2 ms blocking IO + light log)",
            m.n
        ),
        &format!(
            "{machine} · makespan, median of {} rounds (dots: each round) · red line: CPU lower bound N·50 µs / cores = {:.1} ms",
            m.rounds, m.cpu_bound_ms
        ),
    )?;
    let area = root.margin(60, 0, 0, 0);
    let lo = m
        .bars
        .iter()
        .map(|b| b.value)
        .fold(m.cpu_bound_ms, f64::min)
        / 2.0;
    let hi = m
        .round_ms
        .iter()
        .flatten()
        .copied()
        .fold(m.cpu_bound_ms, f64::max)
        * 2.0;
    let k = m.bars.len() as f64;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(70)
        .build_cartesian_2d(
            // One spare column on the right for the bound's label.
            0.0..k + 1.0,
            (lo..hi).log_scale().with_key_points(one_two_five(lo, hi)),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc("makespan (ms, log scale)")
        .y_label_formatter(&|v| fmt_value(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    draw_bars(&area, &mut chart, &m.bars, lo, " ms")?;
    chart.draw_series(LineSeries::new(
        [(0.0, m.cpu_bound_ms), (k + 1.0, m.cpu_bound_ms)],
        TARGET.stroke_width(2),
    ))?;
    let label = |text: String, v: VPos| {
        Text::new(
            text,
            (k + 0.5, m.cpu_bound_ms),
            (FONT, 13)
                .into_font()
                .color(&TARGET)
                .pos(Pos::new(HPos::Center, v)),
        )
    };
    chart.draw_series([
        label("CPU lower bound".to_string(), VPos::Bottom),
        label(format!("{:.1} ms", m.cpu_bound_ms), VPos::Top),
    ])?;
    chart.draw_series(m.round_ms.iter().enumerate().flat_map(|(i, rounds)| {
        let n = rounds.len().max(1) as f64;
        rounds.iter().enumerate().map(move |(j, ms)| {
            Circle::new(
                (i as f64 + 0.3 + 0.4 * (j as f64 + 0.5) / n, *ms),
                3,
                BLACK.filled(),
            )
        })
    }))?;
    root.present()?;
    Ok(())
}

/// (b) CPU_LIGHT queue wait: the distribution per strategy as a CDF on a log time axis, with the
/// 1 ms p99 target.
pub fn light(path: &Path, machine: &str, blockers: usize, cdfs: &[LightCdf]) -> Result {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    caption(
        &root,
        &format!("CPU_LIGHT queue wait (submit → start) while {blockers} IO tasks block"),
        &format!(
            "{machine} · share of light tasks started within a wait (hdrhistogram) · red: target p99 ≤ 1 ms"
        ),
    )?;
    let area = root.margin(60, 0, 0, 0);
    let max = cdfs
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(1_000.0, f64::max);
    let min = cdfs
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .clamp(0.1, 1.0);
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((min..max * 2.0).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("queue wait (µs, log scale)")
        .y_desc("share of samples ≤ wait")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{:.0} %", v * 100.0))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    chart.draw_series(LineSeries::new(
        [(1_000.0, 0.0), (1_000.0, 1.0)],
        TARGET.stroke_width(2),
    ))?;
    chart.draw_series(LineSeries::new(
        [(min, 0.99), (max * 2.0, 0.99)],
        TARGET.mix(0.4).stroke_width(1),
    ))?;
    for (i, c) in cdfs.iter().enumerate() {
        let colour = if i == 0 { UBERPOOL } else { SECOND };
        // A step line: the share jumps at each recorded value.
        let mut steps = vec![];
        let mut last = 0.0;
        for &(x, y) in &c.points {
            steps.push((x, last));
            steps.push((x, y));
            last = y;
        }
        chart
            .draw_series(LineSeries::new(steps, colour.stroke_width(2)))?
            .label(format!("{} (p99 {:.0} µs)", c.name, c.p99_us))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// (c) IO burst: threads (and threads running a task) over time, with the core size, the end of
/// the burst and the keep-alive marked.
pub fn burst(path: &Path, machine: &str, b: &Burst) -> Result {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    caption(
        &root,
        &format!(
            "IO burst: {} × 20 ms sleep on UBER defaults (threadKeepAlive = {:.0} ms)",
            b.tasks, b.keep_alive_ms
        ),
        &format!(
            "{machine} · pool threads sampled every 10 ms · all done at {:.0} ms · {}",
            b.all_done_ms,
            match b.back_to_core_ms {
                Some(t) => format!("back to {} core threads at {t:.0} ms", b.core),
                None => "not back to core within the guard".to_string(),
            }
        ),
    )?;
    let area = root.margin(60, 0, 0, 0);
    let deadline = b.all_done_ms + b.keep_alive_ms + 1_000.0;
    let t_max = b.samples.last().map_or(1.0, |s| s.0).max(deadline) * 1.03;
    let y_max = b.samples.iter().map(|s| s.1).max().unwrap_or(1).max(b.core) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("ms since the first submission")
        .y_desc("threads")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            b.samples.iter().map(|s| (s.0, s.1 as f64)),
            UBERPOOL.stroke_width(2),
        ))?
        .label("threads alive")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], UBERPOOL.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            b.samples.iter().map(|s| (s.0, s.2 as f64)),
            SECOND.stroke_width(2),
        ))?
        .label("threads running a task")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SECOND.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            [(0.0, b.core as f64), (t_max, b.core as f64)],
            BLACK.stroke_width(1),
        ))?
        .label(format!("core size ({})", b.core))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    chart
        .draw_series(LineSeries::new(
            [(b.all_done_ms, 0.0), (b.all_done_ms, y_max)],
            BLACK.mix(0.5).stroke_width(1),
        ))?
        .label("all tasks done")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5).stroke_width(1)));
    chart
        .draw_series(LineSeries::new(
            [(deadline, 0.0), (deadline, y_max)],
            TARGET.stroke_width(2),
        ))?
        .label("target: back to core by all done + keep-alive + 1 s")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TARGET.stroke_width(2)));
    if let Some(t) = b.back_to_core_ms {
        chart
            .draw_series([Circle::new((t, b.core as f64), 5, UBERPOOL.filled())])?
            .label(format!("back to core at {t:.0} ms"))
            .legend(|(x, y)| Circle::new((x + 10, y), 5, UBERPOOL.filled()));
    }
    chart
        .configure_series_labels()
        // Left of the middle, below the plateau: the curve never passes there.
        .position(SeriesLabelPosition::Coordinate(60, 110))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// (d) Memory: RSS per queued task and per live thread, side by side (their scales differ by
/// two orders of magnitude).
pub fn memory(path: &Path, machine: &str, m: &Memory) -> Result {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    caption(
        &root,
        "Memory: RSS growth per item",
        &format!("{machine} · each case in a fresh process · VmRSS before and after"),
    )?;
    let area = root.margin(60, 0, 0, 0);
    let (left, right) = area.split_horizontally(SIZE.0 as i32 / 2);
    for (half, bars_of, title) in [
        (&left, &m.queued, "per queued task (bytes)"),
        (&right, &m.threads, "per live thread (bytes)"),
    ] {
        let hi = bars_of.iter().map(|b| b.value).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(half)
            .margin(12)
            .caption(title, (FONT, 17))
            .x_label_area_size(70)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..bars_of.len() as f64, 0.0..hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_desc("bytes of RSS")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .draw()?;
        draw_bars(half, &mut chart, bars_of, 0.0, " B")?;
    }
    root.present()?;
    Ok(())
}
