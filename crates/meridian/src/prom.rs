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
}

impl PromText {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
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
