//! The SVG plot of the adaptive-concurrency demo: the view's limit and the relay's K (left axis)
//! and the delivered messages per second (right axis) over time, with the moments K changed.
//! Written by hand, in the comparison harness's style (960 × 540, the same colours and fonts),
//! because the root crate does not depend on a plotting library: text is `<text>` the viewer
//! lays out with its own fonts.

use std::fmt::Write as _;
use std::time::Duration;

use super::driver::Tick;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
/// The plotting area: left, top, right, bottom.
const AREA: (f64, f64, f64, f64) = (80.0, 100.0, 870.0, 470.0);
const LIMIT: &str = "rgb(31,119,180)";
const RATE: &str = "rgb(255,127,14)";
const HARD: &str = "rgb(214,39,40)";
const FONT: &str = "sans-serif";

/// What the plot shows.
pub struct Plot<'a> {
    pub title: String,
    pub machine: String,
    pub timeline: &'a [Tick],
    /// When K changed, and to what.
    pub changes: &'a [(Duration, usize)],
    /// The relay's hard limit (sessions beyond it are refused with 421).
    pub hard_limit: usize,
    /// The span the rate is averaged over.
    pub rate_window: Duration,
}

/// Messages per second at each tick, over the `window` before it.
pub fn rates(timeline: &[Tick], window: Duration) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(timeline.len());
    let mut from = 0;
    for (i, tick) in timeline.iter().enumerate() {
        while timeline[from].at + window < tick.at {
            from += 1;
        }
        let span = (tick.at - timeline[from].at).as_secs_f64();
        if i > from && span > 0.0 {
            let delivered = tick.delivered - timeline[from].delivered;
            out.push((tick.at.as_secs_f64(), delivered as f64 / span));
        }
    }
    out
}

/// Axis ticks at a 1, 2 or 5 step, about `count` of them from 0 to `max`.
fn ticks(max: f64, count: f64) -> Vec<f64> {
    let raw = (max / count).max(1e-9);
    let decade = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * decade);
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|v| *v <= max + 1e-9)
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document.
pub fn svg(plot: &Plot<'_>) -> String {
    let (left, top, right, bottom) = AREA;
    let t_max = plot
        .timeline
        .last()
        .map_or(1.0, |t| t.at.as_secs_f64())
        .max(1.0);
    let rates = rates(plot.timeline, plot.rate_window);
    let limit_max = plot
        .timeline
        .iter()
        .map(|t| t.limit.max(t.soft_limit))
        .max()
        .unwrap_or(1)
        .max(plot.hard_limit) as f64
        * 1.15;
    // Headroom above the rate, so that its line stays below the hard limit's.
    let rate_max = rates.iter().map(|r| r.1).fold(1.0, f64::max) * 1.35;
    let x = |t: f64| left + (right - left) * t / t_max;
    let y_limit = |v: f64| bottom - (bottom - top) * v / limit_max;
    let y_rate = |v: f64| bottom - (bottom - top) * v / rate_max;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="20" y="32" font-size="22" font-weight="bold">{}</text>"#,
        escape(&plot.title)
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="58" font-size="15">{}</text>"#,
        escape(&plot.machine)
    );
    // Axes, grid and labels.
    let _ = writeln!(
        out,
        r#"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        right - left,
        bottom - top
    );
    for v in ticks(limit_max, 8.0) {
        let y = y_limit(v);
        let _ = writeln!(
            out,
            r#"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="rgb(230,230,230)"/><text x="{:.1}" y="{:.1}" font-size="13" text-anchor="end">{v}</text>"#,
            left - 6.0,
            y + 4.0
        );
    }
    for v in ticks(rate_max, 6.0) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" fill="{RATE}">{v}</text>"#,
            right + 6.0,
            y_rate(v) + 4.0
        );
    }
    for t in ticks(t_max, 10.0) {
        let _ = writeln!(
            out,
            r#"<line x1="{0:.1}" y1="{bottom}" x2="{0:.1}" y2="{1}" stroke="black"/><text x="{0:.1}" y="{2}" font-size="13" text-anchor="middle">{t}</text>"#,
            x(t),
            bottom + 5.0,
            bottom + 20.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{}" font-size="15" text-anchor="middle">seconds since the first message</text>"#,
        (left + right) / 2.0,
        bottom + 42.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(28,{:.1}) rotate(-90)" font-size="15" text-anchor="middle">concurrent sessions</text>"#,
        (top + bottom) / 2.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({:.1},{:.1}) rotate(90)" font-size="15" text-anchor="middle" fill="{RATE}">messages delivered per second</text>"#,
        WIDTH - 22.0,
        (top + bottom) / 2.0
    );
    // The moments K changed.
    for (at, k) in plot.changes {
        let cx = x(at.as_secs_f64());
        let _ = writeln!(
            out,
            r#"<line x1="{cx:.1}" y1="{top}" x2="{cx:.1}" y2="{bottom}" stroke="gray" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" font-size="13" fill="gray">K → {k}</text>"#,
            cx + 4.0,
            top + 14.0
        );
    }
    // The hard limit, K, the rate, the limit (drawn last, on top).
    let hard = y_limit(plot.hard_limit as f64);
    let _ = writeln!(
        out,
        r#"<line x1="{left}" y1="{hard:.1}" x2="{right}" y2="{hard:.1}" stroke="{HARD}" stroke-dasharray="6,4"/>"#
    );
    let steps = |value: &dyn Fn(&Tick) -> f64| -> String {
        let mut path = String::new();
        for (i, tick) in plot.timeline.iter().enumerate() {
            let (px, py) = (x(tick.at.as_secs_f64()), value(tick));
            if i == 0 {
                let _ = write!(path, "M{px:.1},{py:.1}");
            } else {
                let _ = write!(path, " H{px:.1} V{py:.1}");
            }
        }
        path
    };
    let _ = writeln!(
        out,
        r#"<path d="{}" fill="none" stroke="black" stroke-width="1.5" stroke-dasharray="8,4"/>"#,
        steps(&|t| y_limit(t.soft_limit as f64))
    );
    let mut rate_path = String::new();
    for (i, (t, r)) in rates.iter().enumerate() {
        let _ = write!(
            rate_path,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            x(*t),
            y_rate(*r)
        );
    }
    let _ = writeln!(
        out,
        r#"<path d="{rate_path}" fill="none" stroke="{RATE}" stroke-width="2"/>"#
    );
    let _ = writeln!(
        out,
        r#"<path d="{}" fill="none" stroke="{LIMIT}" stroke-width="2"/>"#,
        steps(&|t| y_limit(t.limit as f64))
    );
    // The legend, bottom right inside the area.
    let entries: [(&str, &str, String); 4] = [
        (LIMIT, "none", "the view's adaptive limit".to_owned()),
        (
            "black",
            "8,4",
            "the relay's K (sessions at base latency)".to_owned(),
        ),
        (
            HARD,
            "6,4",
            format!("hard limit ({}): 421 beyond", plot.hard_limit),
        ),
        (
            RATE,
            "none",
            format!(
                "messages/s (over {} ms, right axis)",
                plot.rate_window.as_millis()
            ),
        ),
    ];
    let (lx, ly) = (right - 330.0, bottom - 18.0 - 20.0 * entries.len() as f64);
    let _ = writeln!(
        out,
        r#"<rect x="{lx}" y="{ly}" width="320" height="{}" fill="white" fill-opacity="0.9" stroke="black"/>"#,
        10.0 + 20.0 * entries.len() as f64
    );
    for (i, (colour, dash, label)) in entries.iter().enumerate() {
        let ey = ly + 17.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{ey}" x2="{}" y2="{ey}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}" font-size="14">{}</text>"#,
            lx + 10.0,
            lx + 34.0,
            lx + 42.0,
            ey + 5.0,
            escape(label)
        );
    }
    out.push_str("</svg>\n");
    out
}
