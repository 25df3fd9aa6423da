//! Line charts as standalone SVG for `meridian bench` reports, drawn with
//! `plotters` (its SVG backend only: pure Rust, no fonts or bitmaps; any
//! browser or Markdown viewer shows the result).

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;

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

/// The picture's size in pixels.
const SIZE: (u32, u32) = (760, 440);

/// Series colours, in order (the "tab10" palette: distinct for the
/// colour-blind too).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// The points of `series` the axis can show (finite; positive x on a log
/// axis).
fn drawable(scale: Scale, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .filter(|(x, _)| scale == Scale::Linear || *x > 0.0)
        .collect()
}

/// The axes' ranges covering every drawable point and floor; y starts at 0
/// and leaves 5 % headroom.
fn ranges(chart: &Chart, series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let scale = chart.x_scale;
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| drawable(scale, &s.points))
        .collect();
    let floors = series
        .iter()
        .filter_map(|s| s.floor_x)
        .filter(|x| x.is_finite() && (scale == Scale::Linear || *x > 0.0));
    let xs: Vec<f64> = points.iter().map(|p| p.0).chain(floors).collect();
    let (mut x_lo, mut x_hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    if !x_lo.is_finite() {
        (x_lo, x_hi) = (1.0, 10.0);
    }
    if x_hi - x_lo < 1e-9 {
        x_hi = if scale == Scale::Log {
            x_lo * 10.0
        } else {
            x_lo + 1.0
        };
    }
    let y_hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let y_lo = points.iter().map(|p| p.1).fold(0f64, f64::min);
    let (y_lo, y_hi) = if !y_hi.is_finite() || y_hi - y_lo < 1e-9 {
        (0.0, 1.0)
    } else {
        (y_lo, y_hi * 1.05)
    };
    ((x_lo, x_hi), (y_lo, y_hi))
}

/// The chart as an SVG document. Series without points are listed in the
/// legend only.
pub fn line_chart(chart: &Chart, series: &[Series]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        // Drawing into a string cannot fail but for a bug in the chart's
        // own arithmetic; a benchmark report must not be lost to one.
        if let Err(e) = draw(&root, chart, series) {
            tracing::error!(error = %e, title = chart.title, "chart not drawn");
        }
        let _ = root.present();
    }
    if !svg.ends_with('\n') {
        svg.push('\n');
    }
    svg
}

/// A tick label: whole numbers without decimals, others to two places.
fn format_tick(t: &f64) -> String {
    let t = *t;
    if t.abs() >= 1000.0 || t.fract().abs() < 1e-9 {
        format!("{t:.0}")
    } else if (t * 10.0).fract().abs() < 1e-9 {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
    }
}

type DrawResult =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart, series: &[Series]) -> DrawResult {
    root.fill(&WHITE)?;
    let ((x_lo, x_hi), (y_lo, y_hi)) = ranges(chart, series);
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    match chart.x_scale {
        Scale::Linear => {
            let ctx = builder.build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
            plot(ctx, chart, series, (y_lo, y_hi))
        }
        Scale::Log => {
            let ctx = builder.build_cartesian_2d((x_lo..x_hi).log_scale(), y_lo..y_hi)?;
            plot(ctx, chart, series, (y_lo, y_hi))
        }
    }
}

/// Mesh, series, floors and legend on an x axis of either scale.
fn plot<'a, X>(
    mut ctx: ChartContext<
        'a,
        SVGBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    chart: &Chart,
    series: &[Series],
    (y_lo, y_hi): (f64, f64),
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .light_line_style(RGBColor(0xe5, 0xe5, 0xe5))
        .x_label_formatter(&format_tick)
        .y_label_formatter(&format_tick)
        .draw()?;
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = colour.stroke_width(2);
        ctx.draw_series(LineSeries::new(drawable(chart.x_scale, &ser.points), style))?
            .label(ser.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        if let Some(f) = ser.floor_x.filter(|f| f.is_finite()) {
            let floor = DashedLineSeries::new([(f, y_lo), (f, y_hi)], 5, 4, colour.into());
            ctx.draw_series(floor)?;
        }
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
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
        // The series with points is one line of its three points; its
        // floor is dashed: several short lines of its colour; the legend
        // marks both series.
        let first = r##"stroke="#1F77B4" stroke-width="2" points=""##;
        let lines: Vec<&str> = svg.lines().filter(|l| l.contains(first)).collect();
        assert!(
            lines.iter().any(|l| l.matches(',').count() == 3),
            "the series' line"
        );
        let dashes = svg
            .lines()
            .filter(|l| l.contains(r##"stroke="#1F77B4""##))
            .count();
        assert!(dashes > 4, "a dashed floor: {dashes} strokes");
        assert!(svg.contains("lag &lt;CDF&gt;"), "the title is escaped");
        assert!(svg.contains("us-east → eu-west") && svg.contains("empty"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn log_axes_cover_the_data_in_decades() {
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
        for decade in [
            "\n100\n",
            "\n1000\n",
            "\n10000\n",
            "\n100000\n",
            "\n1000000\n",
        ] {
            assert!(svg.contains(decade), "tick {decade:?} missing");
        }
        assert_eq!(
            ranges(
                &Chart {
                    title: "",
                    x_label: "",
                    y_label: "",
                    x_scale: Scale::Log
                },
                &[]
            )
            .0,
            (1.0, 10.0)
        );
    }
}
