//! Prometheus text exposition (format 0.0.4), written from snapshots.
//!
//! Metrics are rendered at scrape time from the layers' own counters and
//! status snapshots, so no second copy of any figure is kept in sync.

use std::fmt::Write;

/// Builds one exposition document.
#[derive(Default)]
pub struct PromText {
    out: String,
}

/// A metric family's type.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Monotonic.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

impl PromText {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// One histogram series of the current family: `_bucket{le}`, `_sum`,
    /// `_count`. `buckets` are `(upper bound, cumulative count)`, the last
    /// one `+Inf`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        let bucket = format!("{name}_bucket");
        for (bound, cumulative) in buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                bound.to_string()
            };
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, *cumulative as f64);
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        let mut p = PromText::default();
        p.family("m_total", Kind::Counter, "a \\ help\nline");
        p.sample("m_total", &[("a", "x\"y\\z\nw"), ("b", "c")], 3.0);
        p.sample("m_total", &[], 0.5);
        assert_eq!(
            p.finish(),
            "# HELP m_total a \\\\ help\\nline\n# TYPE m_total counter\nm_total{a=\"x\\\"y\\\\z\\nw\",b=\"c\"} 3\nm_total 0.5\n"
        );
    }
}
