//! A writer of Prometheus' text exposition format (version 0.0.4).
//!
//! Every sample belongs to a family announced first by a `# HELP` and a
//! `# TYPE` line; the writer enforces that by construction (samples are
//! only written through a [`Family`]). Help text escapes `\` and line
//! feeds; label values also escape `"`. Names are checked in debug builds
//! against the legacy character set (`[a-zA-Z_:][a-zA-Z0-9_:]*`).

use std::fmt::Write;

/// The HTTP `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (and resets when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A document in the text format being built.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// One metric family: samples written through it carry its name.
pub struct Family<'e> {
    text: &'e mut String,
    name: &'static str,
}

impl Exposition {
    /// An empty document.
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a family: writes its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
        Family {
            text: &mut self.text,
            name,
        }
    }

    /// The finished document.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl Family<'_> {
    /// Writes one sample with the given labels (name, value pairs).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: u64) -> &mut Self {
        self.text.push_str(self.name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k) && !k.contains(':'), "bad label name {k:?}");
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label_value(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }
}

/// Whether `name` is in the legacy metric-name character set.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Escapes `\` and line feeds, as help text requires.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Escapes `\`, `"` and line feeds, as label values require.
fn escape_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_announce_help_and_type_before_their_samples() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Things.")
            .sample(&[], 3)
            .sample(&[("reason", "a")], 1);
        e.family("y", Kind::Gauge, "Level.").sample(&[], 0);
        assert_eq!(
            e.into_string(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\nx_total{reason=\"a\"} 1\n\
             # HELP y Level.\n# TYPE y gauge\ny 0\n"
        );
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let mut e = Exposition::new();
        e.family("z", Kind::Counter, "a \\ b\nc \"q\"")
            .sample(&[("l", "x\\y\"z\nw"), ("m", "n")], 7);
        assert_eq!(
            e.into_string(),
            "# HELP z a \\\\ b\\nc \"q\"\n# TYPE z counter\nz{l=\"x\\\\y\\\"z\\nw\",m=\"n\"} 7\n"
        );
    }

    #[test]
    fn names_outside_the_legacy_character_set_are_refused() {
        assert!(valid_name("flowmon_packets_total"));
        assert!(valid_name("a:b_c9"));
        assert!(!valid_name("9a"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
