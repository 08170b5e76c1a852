//! A checked walk over the spanned TOML tree. Every accessor reports what is
//! wrong (missing field, wrong type, unknown key) into [`Diag`] with the
//! line and field path, and returns `None`, so the loader keeps going and
//! collects every error in the file.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::RuleError;

/// A spanned TOML value.
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// Collects errors and turns byte offsets into lines.
pub(crate) struct Diag<'s> {
    file: &'s str,
    line_starts: Vec<usize>,
    pub(crate) errors: Vec<RuleError>,
}

impl<'s> Diag<'s> {
    pub(crate) fn new(file: &'s str, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Diag {
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// Records an error at the start of `span`.
    pub(crate) fn error(&mut self, span: &Range<usize>, field: &str, message: impl Into<String>) {
        let line = self.line(span.start);
        self.errors
            .push(RuleError::new(self.file, Some(line), field, message));
    }
}

/// `path.key`, or `key` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The type name a value has, for messages.
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A table being read, with its span and path.
#[derive(Clone)]
pub(crate) struct Table<'a, 'i> {
    pub(crate) table: &'a DeTable<'i>,
    /// Where missing-field errors point: the table's header or `{`.
    pub(crate) span: Range<usize>,
    pub(crate) path: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Reports every key not in `allowed`.
    pub(crate) fn check_keys(&self, d: &mut Diag<'_>, allowed: &[&str]) {
        for (k, _) in self.table.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let list = allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                d.error(
                    &k.span(),
                    &join(&self.path, key),
                    format!("unknown key `{key}` (expected one of {list})"),
                );
            }
        }
    }

    /// The value under `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Reports that `key` is required and missing.
    pub(crate) fn missing(&self, d: &mut Diag<'_>, key: &str) {
        d.error(
            &self.span,
            &join(&self.path, key),
            format!("missing required key `{key}`"),
        );
    }

    /// A string under `key`; `None` (reported if `required`) when missing or
    /// of another type.
    pub(crate) fn str(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        required: bool,
    ) -> Option<Spanned<&'a str>> {
        let Some(v) = self.get(key) else {
            if required {
                self.missing(d, key);
            }
            return None;
        };
        as_str(d, v, &join(&self.path, key))
    }

    /// A non-negative integer under `key`.
    pub(crate) fn uint(&self, d: &mut Diag<'_>, key: &str) -> Option<Spanned<u64>> {
        let v = self.get(key)?;
        as_uint(d, v, &join(&self.path, key))
    }

    /// A number (integer or float) under `key`.
    pub(crate) fn number(&self, d: &mut Diag<'_>, key: &str) -> Option<Spanned<f64>> {
        let v = self.get(key)?;
        let field = join(&self.path, key);
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|x| x as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            other => {
                d.error(
                    &v.span(),
                    &field,
                    format!("expected a number, found {}", type_name(other)),
                );
                return None;
            }
        };
        match n {
            Some(n) if n.is_finite() => Some(Spanned::new(v.span(), n)),
            _ => {
                d.error(&v.span(), &field, "expected a finite number");
                None
            }
        }
    }

    /// An array under `key`.
    pub(crate) fn array(&self, d: &mut Diag<'_>, key: &str, required: bool) -> Option<&'a Val<'i>> {
        let Some(v) = self.get(key) else {
            if required {
                self.missing(d, key);
            }
            return None;
        };
        match v.get_ref() {
            DeValue::Array(_) => Some(v),
            other => {
                d.error(
                    &v.span(),
                    &join(&self.path, key),
                    format!("expected an array, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A sub-table under `key` (as `[a.b]` or inline `{ .. }`).
    pub(crate) fn sub_table(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        path: &str,
    ) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        as_table(d, v, path)
    }
}

/// The items of an array value (empty for non-arrays, which the caller
/// already reported).
pub(crate) fn items<'a, 'i>(v: &'a Val<'i>) -> &'a [Val<'i>] {
    match v.get_ref() {
        DeValue::Array(a) => a,
        _ => &[],
    }
}

/// A value as a table.
pub(crate) fn as_table<'a, 'i>(
    d: &mut Diag<'_>,
    v: &'a Val<'i>,
    path: &str,
) -> Option<Table<'a, 'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(Table {
            table: t,
            span: v.span(),
            path: path.to_string(),
        }),
        other => {
            d.error(
                &v.span(),
                path,
                format!("expected a table, found {}", type_name(other)),
            );
            None
        }
    }
}

/// A value as a string.
pub(crate) fn as_str<'a>(
    d: &mut Diag<'_>,
    v: &'a Val<'_>,
    field: &str,
) -> Option<Spanned<&'a str>> {
    match v.get_ref() {
        DeValue::String(s) => Some(Spanned::new(v.span(), s.as_ref())),
        other => {
            d.error(
                &v.span(),
                field,
                format!("expected a string, found {}", type_name(other)),
            );
            None
        }
    }
}

/// A value as a non-negative integer.
pub(crate) fn as_uint(d: &mut Diag<'_>, v: &Val<'_>, field: &str) -> Option<Spanned<u64>> {
    match v.get_ref() {
        DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(Spanned::new(v.span(), n)),
            Err(_) => {
                d.error(
                    &v.span(),
                    field,
                    format!("expected a non-negative integer, found {}", i.as_str()),
                );
                None
            }
        },
        other => {
            d.error(
                &v.span(),
                field,
                format!("expected an integer, found {}", type_name(other)),
            );
            None
        }
    }
}
