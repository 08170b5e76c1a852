//! Flags as configuration keys: which flags are keys, what a TOML value
//! means as arguments, and checking a value with the flag's own parser.

use clap::builder::ValueRange;
use clap::{Arg, ArgAction, Command, CommandFactory};
use std::ffi::OsString;
use toml::de::DeValue;

use crate::cli::Cli;

/// Flags that are not configuration keys.
pub const NOT_CONFIGURABLE: [&str; 3] = ["config", "help", "version"];

/// The configuration key of a flag: its long name with `_` for `-`; `None`
/// for positional arguments and [`NOT_CONFIGURABLE`] flags.
pub fn key_of(arg: &Arg) -> Option<String> {
    let long = arg.get_long()?;
    if arg.is_positional() || NOT_CONFIGURABLE.contains(&long) {
        return None;
    }
    Some(long.replace('-', "_"))
}

/// The definition of `sensor <command>`.
pub(super) fn command(name: &str) -> Command {
    Cli::command()
        .find_subcommand(name)
        .cloned()
        .unwrap_or_else(|| Command::new("unknown"))
}

/// The configurable flags of a command, with their keys.
pub fn configurable(cmd: &Command) -> Vec<(String, &Arg)> {
    cmd.get_arguments()
        .filter_map(|a| key_of(a).map(|k| (k, a)))
        .collect()
}

/// A value as written in the file, ready to become arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A switch (`--no-promisc`).
    Switch(bool),
    /// One value.
    One(String),
    /// A flag given several times.
    Many(Vec<String>),
}

impl Value {
    /// The value as TOML, for printing.
    pub fn to_toml(&self) -> String {
        match self {
            Value::Switch(b) => b.to_string(),
            Value::One(s) => scalar_to_toml(s),
            Value::Many(v) => format!(
                "[{}]",
                v.iter()
                    .map(|s| scalar_to_toml(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn scalar_to_toml(s: &str) -> String {
    if s.parse::<i64>().is_ok() || (s.parse::<f64>().is_ok() && s.contains('.')) {
        s.to_owned()
    } else {
        toml::Value::String(s.to_owned()).to_string()
    }
}

/// The TOML value as a [`Value`] of the shape the flag takes.
pub(super) fn value_of(arg: &Arg, v: &DeValue<'_>) -> Result<Value, String> {
    let scalar = |v: &DeValue<'_>| -> Result<String, String> {
        match v {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .map_err(|_| format!("integer {} is out of range", i.as_str())),
            DeValue::Float(f) => Ok(f.as_str().to_owned()),
            other => Err(format!(
                "expected a string or a number, found {}",
                type_name(other)
            )),
        }
    };
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match v {
            DeValue::Boolean(b) => Ok(Value::Switch(*b)),
            other => Err(format!(
                "expected true or false, found {}",
                type_name(other)
            )),
        },
        ArgAction::Append => match v {
            DeValue::Array(items) => items
                .iter()
                .map(|i| scalar(i.get_ref()))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Many),
            other => scalar(other).map(|s| Value::Many(vec![s])),
        },
        ArgAction::Set if takes_several(arg.get_num_args()) => match v {
            DeValue::Array(items) => items
                .iter()
                .map(|i| scalar(i.get_ref()))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Many),
            other => scalar(other).map(|s| Value::Many(vec![s])),
        },
        ArgAction::Set => scalar(v).map(Value::One),
        other => Err(format!(
            "flags of kind {other:?} cannot be set from a configuration file"
        )),
    }
}

fn takes_several(range: Option<ValueRange>) -> bool {
    range.is_some_and(|r| r.max_values() > 1)
}

/// Runs the flag's own value parser (and its possible values) on the
/// value: the command parses the flag alone; that other flags are then
/// missing is checked later, for the whole file.
pub(super) fn validate(cmd: &Command, arg: &Arg, value: &Value) -> Result<(), String> {
    match cmd
        .clone()
        .no_binary_name(true)
        .try_get_matches_from(to_args(arg, value))
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => Ok(()),
        Err(e) => Err(clap_message(&e)),
    }
}

/// The command-line arguments that say what `value` says.
pub(super) fn to_args(arg: &Arg, value: &Value) -> Vec<OsString> {
    let long = arg.get_long().unwrap_or_default();
    match value {
        Value::Switch(on) => {
            let wanted = matches!(arg.get_action(), ArgAction::SetTrue) == *on;
            if wanted {
                vec![format!("--{long}").into()]
            } else {
                Vec::new()
            }
        }
        Value::One(v) => vec![format!("--{long}={v}").into()],
        Value::Many(vs) => {
            if matches!(arg.get_action(), ArgAction::Append) {
                vs.iter().map(|v| format!("--{long}={v}").into()).collect()
            } else {
                let mut args = vec![OsString::from(format!("--{long}"))];
                args.extend(vs.iter().map(OsString::from));
                args
            }
        }
    }
}

/// A clap error on one line: its message up to the usage, without the
/// `error: ` prefix.
pub(super) fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let message = message.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned()
}

fn type_name(v: &DeValue<'_>) -> &'static str {
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
