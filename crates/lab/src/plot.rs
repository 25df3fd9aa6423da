//! Line charts as standalone SVG, for `meridian bench` reports: a few
//! hundred lines of text any browser or Markdown viewer shows, without a
//! plotting dependency.

use std::fmt::Write;

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
    /// A vertical dashed line in the series' colour (a physical floor).
    pub floor_x: Option<f64>,
}

/// How the x axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Base-10 logarithmic (every x must be > 0).
    Log,
}

/// A chart's texts and axis.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Under the x axis.
    pub x_label: &'a str,
    /// Beside the y axis.
    pub y_label: &'a str,
    /// The x axis's scale.
    pub x_scale: Scale,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Round tick positions covering `lo..=hi`, about `n` of them.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut out = Vec::new();
    let mut t = (lo / step).ceil() * step;
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

/// The chart as an SVG document. Series without points are listed in the
/// legend only.
pub fn line_chart(chart: &Chart, series: &[Series]) -> String {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0).chain(s.floor_x))
        .filter(|x| x.is_finite() && (chart.x_scale == Scale::Linear || *x > 0.0));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite());
    let fx = |x: f64| match chart.x_scale {
        Scale::Linear => x,
        Scale::Log => x.log10(),
    };
    let (mut x_lo, mut x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(fx(x)), b.max(fx(x)))
    });
    let (mut y_lo, mut y_hi) = ys.fold((0f64, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (0.0, 1.0);
    }
    if x_hi - x_lo < 1e-9 {
        x_hi = x_lo + 1.0;
    }
    if !y_hi.is_finite() || y_hi - y_lo < 1e-9 {
        (y_lo, y_hi) = (0.0, 1.0);
    }
    y_hi *= 1.05;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (fx(x) - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| TOP + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(chart.title)
    );
    // Grid and ticks.
    let x_ticks: Vec<f64> = match chart.x_scale {
        Scale::Linear => ticks(x_lo, x_hi, 8),
        Scale::Log => (x_lo.floor() as i32..=x_hi.ceil() as i32)
            .map(|e| 10f64.powi(e))
            .filter(|x| fx(*x) >= x_lo - 1e-9 && fx(*x) <= x_hi + 1e-9)
            .collect(),
    };
    for t in &x_ticks {
        let x = px(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            format_tick(*t)
        );
    }
    for t in ticks(y_lo, y_hi, 6) {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            format_tick(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0,
        escape(chart.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(chart.y_label)
    );
    // Series and legend.
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = ser
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .filter(|(x, _)| chart.x_scale == Scale::Linear || *x > 0.0)
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        if let Some(f) = ser.floor_x.filter(|f| f.is_finite()) {
            let x = px(f);
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-dasharray="5,4"/>"#,
                TOP + plot_h
            );
        }
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&ser.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn format_tick(t: f64) -> String {
    if t.abs() >= 1000.0 || (t.fract().abs() < 1e-9) {
        format!("{t:.0}")
    } else if (t * 10.0).fract().abs() < 1e-9 {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_well_formed_svg_with_every_series() {
        let chart = Chart {
            title: "lag <CDF>",
            x_label: "ms",
            y_label: "fraction",
            x_scale: Scale::Linear,
        };
        let svg = line_chart(
            &chart,
            &[
                Series {
                    label: "us-east → eu-west".into(),
                    points: vec![(40.0, 0.0), (41.0, 0.5), (45.0, 1.0)],
                    floor_x: Some(40.0),
                },
                Series {
                    label: "empty".into(),
                    points: vec![],
                    floor_x: None,
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("lag &lt;CDF&gt;") && svg.contains("empty"));
        // Every opened element is closed or self-closing.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn log_axes_and_ticks_cover_the_data() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let svg = line_chart(
            &Chart {
                title: "t",
                x_label: "bytes",
                y_label: "ms",
                x_scale: Scale::Log,
            },
            &[Series {
                label: "p99".into(),
                points: vec![(100.0, 1.0), (10_240.0, 2.0), (1_048_576.0, 30.0)],
                floor_x: None,
            }],
        );
        for decade in [">100<", ">1000<", ">10000<", ">100000<", ">1000000<"] {
            assert!(svg.contains(decade), "{decade} missing");
        }
    }
}
