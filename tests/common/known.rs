//! `tests/known-differences.toml`: every difference between our output and
//! the reference tools that the corpus tests tolerate, each with its reason.
//!
//! The file uses a small subset of TOML, parsed here by hand to avoid a
//! dependency: `#` comments, `[[difference]]` tables, and `key = "string"`
//! pairs (basic strings with `\"` and `\\` escapes, on one line).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Field names used for differences that concern a whole flow, not one field.
pub const FLOW_MISSING_IN_OURS: &str = "flow_missing_in_ours";
pub const EXTRA_FLOW_IN_OURS: &str = "extra_flow_in_ours";
/// Capture-level difference: our TCP+UDP+SCTP packet total vs tshark's frames.
pub const TSHARK_PACKETS: &str = "tshark_packets";
/// Capture-level difference: the replay of a Zeek-baselined capture did not exit 0.
pub const REPLAY_EXIT: &str = "replay_exit";

/// Allowed values of `category`, so a reader knows whom a difference is on.
pub const CATEGORIES: &[&str] = &[
    // We deliberately behave differently from the reference tool.
    "deliberate",
    // The reference output is not comparable (test setup, old Zeek version, ...).
    "reference-artifact",
    // The reference tool counts differently by design (e.g. tshark reassembly).
    "tool-semantics",
    // A bug in our implementation, tolerated for now. Must be fixed, not kept.
    "ours-bug",
];

/// One listed difference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KnownDifference {
    /// Capture file name, e.g. `tunnel-teredo.pcap`.
    pub capture: String,
    /// Flow as printed by `Conn::flow_id` (Zeek's orientation for Zeek flows,
    /// ours for extra flows), or `*` for capture-level differences.
    pub flow: String,
    /// Compared field, or one of the whole-flow / capture-level names above.
    pub field: String,
    /// Optional Zeek uid to pick one of several flows with the same 5-tuple
    /// (btest uids are deterministic).
    pub zeek_uid: Option<String>,
    pub category: String,
    pub reason: String,
    /// Line of the `[[difference]]` header, for messages.
    pub line: usize,
}

/// An observed difference, to be looked up in the known-differences list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Observed {
    pub capture: String,
    pub flow: String,
    pub field: String,
    pub zeek_uid: Option<String>,
    /// What exactly differs, e.g. `ours=(7, 7) zeek=(21, 21)`.
    pub detail: String,
}

impl KnownDifference {
    pub fn covers(&self, seen: &Observed) -> bool {
        self.capture == seen.capture
            && self.flow == seen.flow
            && self.field == seen.field
            && (self.zeek_uid.is_none() || self.zeek_uid == seen.zeek_uid)
    }
}

/// The known-differences file and which of its entries a test has used.
#[derive(Debug)]
pub struct KnownDifferences {
    pub path: PathBuf,
    pub entries: Vec<KnownDifference>,
}

impl KnownDifferences {
    /// Loads `tests/known-differences.toml` from the repository.
    pub fn load() -> KnownDifferences {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/known-differences.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let entries = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        KnownDifferences { path, entries }
    }

    /// Splits observed differences of the given fields into explained
    /// (with their reason) and unexplained ones, and returns the entries for
    /// those fields that matched nothing (stale).
    pub fn check<'a>(
        &'a self,
        observed: &'a [Observed],
        fields: impl Fn(&str) -> bool,
    ) -> Checked<'a> {
        let relevant: Vec<&KnownDifference> =
            self.entries.iter().filter(|e| fields(&e.field)).collect();
        let mut used = BTreeSet::new();
        let mut explained = Vec::new();
        let mut unexplained = Vec::new();
        for seen in observed {
            match relevant.iter().position(|e| e.covers(seen)) {
                Some(i) => {
                    used.insert(i);
                    explained.push((seen, relevant[i]));
                }
                None => unexplained.push(seen),
            }
        }
        let stale = relevant
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i))
            .map(|(_, e)| *e)
            .collect();
        Checked {
            explained,
            unexplained,
            stale,
        }
    }
}

/// Result of [`KnownDifferences::check`].
#[derive(Debug)]
pub struct Checked<'a> {
    pub explained: Vec<(&'a Observed, &'a KnownDifference)>,
    pub unexplained: Vec<&'a Observed>,
    pub stale: Vec<&'a KnownDifference>,
}

impl Checked<'_> {
    /// One message per unexplained difference and per stale entry.
    pub fn problems(&self, file: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for seen in &self.unexplained {
            problems.push(format!(
                "unexplained difference: capture={} flow={:?} field={}{} ({})",
                seen.capture,
                seen.flow,
                seen.field,
                seen.zeek_uid
                    .as_ref()
                    .map_or_else(String::new, |u| format!(" zeek_uid={u}")),
                seen.detail
            ));
        }
        for entry in &self.stale {
            problems.push(format!(
                "stale known difference (no longer occurs; remove it from {}:{}): \
                 capture={} flow={:?} field={}",
                file.display(),
                entry.line,
                entry.capture,
                entry.flow,
                entry.field
            ));
        }
        problems
    }

    /// Panics listing every unexplained difference and stale entry.
    pub fn assert_clean(&self, file: &Path) {
        let problems = self.problems(file);
        assert!(
            problems.is_empty(),
            "{} problem(s) with {}:\n  {}",
            problems.len(),
            file.display(),
            problems.join("\n  ")
        );
    }
}

/// Parses the TOML subset described in the module docs.
pub fn parse(text: &str) -> Result<Vec<KnownDifference>, String> {
    #[derive(Default)]
    struct Partial {
        line: usize,
        pairs: Vec<(String, String)>,
    }
    fn finish(partial: Partial) -> Result<KnownDifference, String> {
        let line = partial.line;
        let get = |key: &str| {
            partial
                .pairs
                .iter()
                .position(|(k, _)| k == key)
                .map(|i| partial.pairs[i].1.clone())
        };
        let required = |value: Option<String>, key: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("line {line}: [[difference]] needs a non-empty {key}"))
        };
        let entry = KnownDifference {
            capture: required(get("capture"), "capture")?,
            flow: required(get("flow"), "flow")?,
            field: required(get("field"), "field")?,
            zeek_uid: get("zeek_uid"),
            category: required(get("category"), "category")?,
            reason: required(get("reason"), "reason")?,
            line,
        };
        if !CATEGORIES.contains(&entry.category.as_str()) {
            return Err(format!(
                "line {line}: category {:?} is not one of {CATEGORIES:?}",
                entry.category
            ));
        }
        Ok(entry)
    }

    const KEYS: &[&str] = &["capture", "flow", "field", "zeek_uid", "category", "reason"];
    let mut entries = Vec::new();
    let mut current: Option<Partial> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[[difference]]" {
            if let Some(done) = current.take() {
                entries.push(finish(done)?);
            }
            current = Some(Partial {
                line: line_no,
                pairs: Vec::new(),
            });
            continue;
        }
        let (key, rest) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line_no}: expected `key = \"value\"`: {raw}"))?;
        let key = key.trim();
        if !KEYS.contains(&key) {
            return Err(format!(
                "line {line_no}: unknown key {key:?} (known: {KEYS:?})"
            ));
        }
        let value = parse_basic_string(rest.trim())
            .map_err(|e| format!("line {line_no}: value of {key}: {e}"))?;
        let partial = current
            .as_mut()
            .ok_or_else(|| format!("line {line_no}: key outside a [[difference]] table"))?;
        if partial.pairs.iter().any(|(k, _)| k == key) {
            return Err(format!("line {line_no}: duplicate key {key}"));
        }
        partial.pairs.push((key.to_owned(), value));
    }
    if let Some(done) = current.take() {
        entries.push(finish(done)?);
    }
    let mut seen = BTreeSet::new();
    for e in &entries {
        if !seen.insert((&e.capture, &e.flow, &e.field, &e.zeek_uid)) {
            return Err(format!(
                "line {}: duplicate entry for {} {:?} {}",
                e.line, e.capture, e.flow, e.field
            ));
        }
    }
    Ok(entries)
}

/// Parses `"..."` (optionally followed by a `#` comment).
fn parse_basic_string(text: &str) -> Result<String, String> {
    let mut chars = text
        .strip_prefix('"')
        .ok_or("expected a quoted string")?
        .chars();
    let mut out = String::new();
    loop {
        match chars.next().ok_or("unterminated string")? {
            '"' => break,
            '\\' => match chars.next().ok_or("unterminated escape")? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                other => return Err(format!("unsupported escape \\{other}")),
            },
            c => out.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("unexpected text after string: {rest:?}"));
    }
    Ok(out)
}
