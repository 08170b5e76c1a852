//! Errors found while loading a rule file.
//!
//! Validation collects every problem it finds rather than stopping at the
//! first, so [`RuleErrors`] holds a list. Each [`RuleError`] names the file,
//! the 1-based line the problem is on (from the TOML spans), the field as a
//! path (`enclaves[2].networks[1]`, indexes 0-based) and a message:
//!
//! ```text
//! msp.toml:14: enclaves[2].networks[1]: "10.20.0.0/33" is not a valid network (prefix length 33 > 32)
//! ```

use std::fmt;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct RuleError {
    file: String,
    line: Option<usize>,
    field: Option<String>,
    message: String,
}

impl RuleError {
    /// An error at `line` (1-based) of `file`, about `field` (empty for none).
    pub fn new(
        file: impl Into<String>,
        line: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let field = field.into();
        RuleError {
            file: file.into(),
            line,
            field: (!field.is_empty()).then_some(field),
            message: message.into(),
        }
    }

    /// The file name as given to the loader.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line the problem is on, if it has one (an unreadable file
    /// has none).
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The field, as a path such as `relationships[0].windows[1].tz`.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn render(&self) -> String {
        let mut s = self.file.clone();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
        }
        s.push_str(": ");
        if let Some(field) = &self.field {
            s.push_str(field);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
    }
}

/// Every problem found in a rule file, in line order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleErrors(Vec<RuleError>);

impl RuleErrors {
    /// Wraps a list of errors, sorted by line (stable, so errors on one line
    /// keep the order they were found in).
    ///
    /// # Panics
    /// If `errors` is empty: a `RuleErrors` always holds at least one error.
    pub fn new(mut errors: Vec<RuleError>) -> Self {
        assert!(
            !errors.is_empty(),
            "RuleErrors must hold at least one error"
        );
        errors.sort_by_key(|e| e.line.unwrap_or(0));
        RuleErrors(errors)
    }

    /// The errors, in line order.
    pub fn errors(&self) -> &[RuleError] {
        &self.0
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors in line order.
    pub fn iter(&self) -> std::slice::Iter<'_, RuleError> {
        self.0.iter()
    }
}

impl fmt::Display for RuleErrors {
    /// One error per line, in line order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

impl<'a> IntoIterator for &'a RuleErrors {
    type Item = &'a RuleError;
    type IntoIter = std::slice::Iter<'a, RuleError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
