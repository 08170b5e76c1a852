//! The sensor configuration file: every flag of `replay` and `live` as a
//! TOML key, flags on the command line overriding it.
//!
//! # Format
//!
//! ```toml
//! # Top level: settings for every command that has the flag.
//! format = "json"
//! output = "/var/lib/flowmon/conn.json"
//! metrics = "127.0.0.1:9911"
//! tcp_idle = 300
//!
//! [live]              # only for `sensor live` (overrides the top level)
//! interface = "eth1"
//! no_promisc = false
//!
//! [replay]            # only for `sensor replay`
//! no_progress = true
//! ```
//!
//! A key is a flag's long name with `-` written as `_` (`--tcp-idle` is
//! `tcp_idle`); a switch takes `true` or `false`, a flag that may repeat
//! takes an array. Keys and values are checked by the command line's own
//! definitions and parsers, so a flag added to `replay` or `live` is a
//! configuration key at once, with the same validation, and nothing else
//! needs to change. Not configurable: `--config` itself, `--help`, and
//! positional arguments (the capture files of `replay`). A switch set to
//! `true` in the file cannot be turned off on the command line (the flags
//! have no negations).
//!
//! Errors name file, line and key, as rule files do:
//! `sensor.toml:7: live.snaplen: invalid value 'big' for '--snaplen <BYTES>': ...`.
//! Unknown keys and sections are errors.

mod flag;

pub use flag::{configurable, key_of, Value, NOT_CONFIGURABLE};

use crate::cli::Cli;
use crate::error::SensorError;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches, Parser};
use flag::{clap_message, command, to_args, validate, value_of};
use rules::{RuleError, RuleErrors};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The commands a configuration file configures, each also a section name.
pub const COMMANDS: [&str; 2] = ["replay", "live"];

/// One key of the file.
#[derive(Clone, Debug)]
pub struct Setting {
    /// `None` at the top level, else the command section.
    pub section: Option<&'static str>,
    /// The key (a flag's long name with `_` for `-`).
    pub key: String,
    /// The value.
    pub value: Value,
    /// 1-based line of the key.
    pub line: usize,
}

/// Where an effective setting comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The configuration file, at this line.
    File(usize),
    /// The flag's default.
    Default,
}

/// A validated configuration file.
#[derive(Clone, Debug)]
pub struct SensorConfig {
    file: String,
    settings: Vec<Setting>,
}

impl SensorConfig {
    /// Reads and validates a configuration file; every problem is reported.
    pub fn load(path: &Path) -> Result<SensorConfig, SensorError> {
        let file = path.display().to_string();
        let errors = |errors: Vec<RuleError>| SensorError::Config {
            path: path.to_owned(),
            errors: RuleErrors::new(errors).to_string(),
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            errors(vec![RuleError::new(
                &file,
                None,
                "",
                format!("cannot read the configuration file: {e}"),
            )])
        })?;
        SensorConfig::from_str(&text, &file).map_err(errors)
    }

    /// Validates configuration `text`; `file` is what errors call the file.
    pub fn from_str(text: &str, file: &str) -> Result<SensorConfig, Vec<RuleError>> {
        let lines = LineIndex::new(text);
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let line = e.span().map(|s| lines.line(s.start));
                return Err(vec![RuleError::new(
                    file,
                    line,
                    "",
                    format!("TOML syntax: {}", e.message()),
                )]);
            }
        };
        let commands: Vec<Command> = COMMANDS.iter().map(|c| command(c)).collect();
        let mut cfg = SensorConfig {
            file: file.to_owned(),
            settings: Vec::new(),
        };
        let mut errors = Vec::new();
        for (k, v) in root.get_ref().iter() {
            let key: &str = k.get_ref();
            let line = lines.line(k.span().start);
            if let Some(i) = COMMANDS.iter().position(|c| *c == key) {
                let DeValue::Table(section) = v.get_ref() else {
                    errors.push(RuleError::new(
                        file,
                        Some(line),
                        key,
                        format!("`{key}` is a section: write `[{key}]`"),
                    ));
                    continue;
                };
                for (k, v) in section.iter() {
                    let line = lines.line(k.span().start);
                    match setting(&commands[i..=i], Some(COMMANDS[i]), k.get_ref(), v, line) {
                        Ok(s) => cfg.settings.push(s),
                        Err(message) => errors.push(RuleError::new(
                            file,
                            Some(line),
                            format!("{key}.{}", k.get_ref()),
                            message,
                        )),
                    }
                }
            } else {
                match setting(&commands, None, key, v, line) {
                    Ok(s) => cfg.settings.push(s),
                    Err(message) => errors.push(RuleError::new(file, Some(line), key, message)),
                }
            }
        }
        if errors.is_empty() {
            errors = cfg.check_combinations();
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            errors.sort_by_key(|e| e.line());
            Err(errors)
        }
    }

    /// The setting for `key` that applies to `command` (its section first,
    /// then the top level).
    fn get(&self, command: &str, key: &str) -> Option<&Setting> {
        let find = |section: Option<&str>| {
            self.settings
                .iter()
                .find(|s| s.key == key && s.section == section)
        };
        find(Some(command)).or_else(|| find(None))
    }

    /// Arguments for `sensor <command>` from the file, for every flag for
    /// which `given_on_command_line` is false.
    pub fn args_for(
        &self,
        command_name: &str,
        given_on_command_line: impl Fn(&str) -> bool,
    ) -> Vec<OsString> {
        let cmd = command(command_name);
        let mut args = Vec::new();
        for (key, arg) in configurable(&cmd) {
            if given_on_command_line(arg.get_id().as_str()) {
                continue;
            }
            if let Some(s) = self.get(command_name, &key) {
                args.extend(to_args(arg, &s.value));
            }
        }
        args
    }

    /// Every configurable flag of `command` with its effective value (from
    /// the file, else the default; `None` when unset) and where it came from.
    pub fn effective(&self, command_name: &str) -> Vec<(String, Option<Value>, Source)> {
        let cmd = command(command_name);
        configurable(&cmd)
            .into_iter()
            .map(|(key, arg)| match self.get(command_name, &key) {
                Some(s) => (key, Some(s.value.clone()), Source::File(s.line)),
                None => {
                    let default = match arg.get_action() {
                        ArgAction::SetTrue => Some(Value::Switch(false)),
                        ArgAction::SetFalse => Some(Value::Switch(true)),
                        _ => match arg.get_default_values() {
                            [] => None,
                            [one] => Some(Value::One(one.to_string_lossy().into_owned())),
                            many => Some(Value::Many(
                                many.iter()
                                    .map(|v| v.to_string_lossy().into_owned())
                                    .collect(),
                            )),
                        },
                    };
                    (key, default, Source::Default)
                }
            })
            .collect()
    }

    /// The effective settings of every command, as TOML with the source
    /// of each value in a comment.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (i, command_name) in COMMANDS.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(&format!("[{command_name}]\n"));
            for (key, value, source) in self.effective(command_name) {
                let from = match source {
                    Source::File(line) => format!("{}:{line}", self.file),
                    Source::Default => "default".to_owned(),
                };
                let line = match value {
                    Some(v) => format!("{key} = {}", v.to_toml()),
                    None => format!("# {key} (unset)"),
                };
                s.push_str(&format!("{line:<48} # {from}\n"));
            }
        }
        s
    }

    /// Checks what single keys cannot: flags that need or exclude others
    /// (`alerts` needs `rules`), by parsing each command's arguments with
    /// placeholders for the required ones the file does not give.
    fn check_combinations(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        for command_name in COMMANDS {
            let cmd = command(command_name);
            let mut argv: Vec<OsString> = vec!["sensor".into(), command_name.into()];
            argv.extend(self.args_for(command_name, |_| false));
            for arg in cmd.get_arguments().filter(|a| a.is_required_set()) {
                let given = key_of(arg).is_some_and(|k| self.get(command_name, &k).is_some());
                if given {
                    continue;
                }
                match arg.get_long() {
                    Some(long) if !arg.is_positional() => {
                        argv.push(format!("--{long}={}", placeholder(long)).into())
                    }
                    _ => argv.push(placeholder(arg.get_id().as_str()).into()),
                }
            }
            // What clap finds missing (a flag another one requires) may come
            // from the command line: placeholders for it, so that the
            // conflicts checked after parsing are still found.
            let mut problem = None;
            for _ in 0..4 {
                match Cli::command().try_get_matches_from(&argv) {
                    Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
                        let missing = match e.get(clap::error::ContextKind::InvalidArg) {
                            Some(clap::error::ContextValue::Strings(args)) => args.clone(),
                            _ => Vec::new(),
                        };
                        if missing.is_empty() {
                            break;
                        }
                        for arg in missing {
                            let flag = arg.split_whitespace().next().unwrap_or_default();
                            argv.push(match flag.strip_prefix("--") {
                                Some(long) => format!("{flag}={}", placeholder(long)).into(),
                                None => placeholder(flag).into(),
                            });
                        }
                    }
                    Err(e) => {
                        problem = Some((e.kind(), clap_message(&e)));
                        break;
                    }
                    Ok(m) => {
                        problem = Cli::from_arg_matches(&m)
                            .ok()
                            .and_then(|cli| crate::cli::combination_error(&cli.command));
                        break;
                    }
                }
            }
            match problem {
                // Something the file leaves to the command line (`-o FILE`
                // for `rotate_size`, `--rules` and `--alerts` for
                // `alerts_format`): clap checks the whole command when it
                // runs.
                Some((clap::error::ErrorKind::MissingRequiredArgument, _)) | None => {}
                Some((_, message)) => {
                    errors.push(RuleError::new(&self.file, None, command_name, message))
                }
            }
        }
        errors
    }
}

/// A stand-in value for flag `name` that the command line will give: a
/// path of its own (two stand-ins must not look like the same file).
fn placeholder(name: &str) -> String {
    format!("/nonexistent/flowmon-placeholder/{name}")
}

/// Validates one key against the commands it applies to.
fn setting(
    commands: &[Command],
    section: Option<&'static str>,
    key: &str,
    v: &Spanned<DeValue<'_>>,
    line: usize,
) -> Result<Setting, String> {
    let matching: Vec<(&Command, &Arg)> = commands
        .iter()
        .filter_map(|c| {
            c.get_arguments()
                .find(|a| key_of(a).as_deref() == Some(key))
                .map(|a| (c, a))
        })
        .collect();
    let Some((_, first)) = matching.first() else {
        let mut known: Vec<String> = commands
            .iter()
            .flat_map(|c| configurable(c).into_iter().map(|(k, _)| k))
            .collect();
        known.sort();
        known.dedup();
        let sections = if section.is_none() {
            format!(", or a section [{}]", COMMANDS.join("] ["))
        } else {
            String::new()
        };
        return Err(format!(
            "unknown key `{key}` (expected one of {}{sections})",
            known.join(", ")
        ));
    };
    let value = value_of(first, v.get_ref())?;
    for (cmd, arg) in &matching {
        validate(cmd, arg, &value)?;
    }
    Ok(Setting {
        section,
        key: key.to_owned(),
        value,
        line,
    })
}

/// Byte offsets to 1-based lines.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset)
    }
}

/// Why the command line could not be turned into a [`Cli`].
#[derive(Debug)]
pub enum ArgsError {
    /// clap's own error (usage, `--help`, `--version`): it prints and exits.
    Clap(clap::Error),
    /// The configuration file is unreadable or invalid.
    Config(SensorError),
}

/// Parses the command line; for `replay` and `live` with `--config FILE`,
/// the file's settings are applied first and flags given on the command
/// line override them.
pub fn parse_args(argv: Vec<OsString>) -> Result<Cli, ArgsError> {
    let pre = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(argv.clone());
    let with_config = pre.ok().and_then(|m| {
        let (name, sub) = m.subcommand()?;
        let name = COMMANDS.iter().find(|c| **c == name)?;
        let path = sub.get_one::<PathBuf>("config")?.clone();
        let given: Vec<String> = sub
            .ids()
            .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_owned())
            .collect();
        Some((*name, path, given))
    });
    let argv = match with_config {
        None => argv,
        Some((name, path, given)) => {
            let cfg = SensorConfig::load(&path).map_err(ArgsError::Config)?;
            let extra = cfg.args_for(name, |id| given.iter().any(|g| g == id));
            let at = argv
                .iter()
                .position(|a| a.to_str() == Some(name))
                .map_or(argv.len(), |i| i + 1);
            let mut merged = argv[..at].to_vec();
            merged.extend(extra);
            merged.extend_from_slice(&argv[at..]);
            merged
        }
    };
    Cli::try_parse_from(argv).map_err(ArgsError::Clap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<SensorConfig, String> {
        SensorConfig::from_str(text, "s.toml").map_err(|e| RuleErrors::new(e).to_string())
    }

    #[test]
    fn keys_are_long_flag_names_with_underscores() {
        let cfg = load("tcp_idle = 30\n[live]\ninterface = \"eth1\"\nno_promisc = true\n").unwrap();
        let live = cfg.args_for("live", |_| false);
        assert!(live.contains(&"--tcp-idle=30".into()), "{live:?}");
        assert!(live.contains(&"--interface=eth1".into()));
        assert!(live.contains(&"--no-promisc".into()));
        let replay = cfg.args_for("replay", |_| false);
        assert_eq!(replay, vec![OsString::from("--tcp-idle=30")]);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = load("workers = 2\nbogus = 1\n[live]\nsnaplen = \"big\"\n").unwrap_err();
        assert!(e.contains("s.toml:2: bogus: unknown key `bogus`"), "{e}");
        assert!(
            e.contains("s.toml:4: live.snaplen: invalid value 'big' for '--snaplen <BYTES>'"),
            "{e}"
        );
        let e = load("[replay]\ninterface = \"eth0\"\n").unwrap_err();
        assert!(e.contains("s.toml:2: replay.interface: unknown key"), "{e}");
        let e = load("no_progress = 1\n").unwrap_err();
        assert!(
            e.contains("s.toml:1: no_progress: expected true or false, found an integer"),
            "{e}"
        );
        let e = load("format = \"xml\"\n").unwrap_err();
        assert!(e.contains("s.toml:1: format: invalid value 'xml'"), "{e}");
        let e = load("workers = 2\nworkers = 3\n").unwrap_err();
        assert!(e.starts_with("s.toml:2: TOML syntax"), "{e}");
        let e = load("[metrics]\n").unwrap_err();
        assert!(e.contains("s.toml:1: metrics: expected"), "{e}");
    }

    #[test]
    fn combinations_are_checked_like_the_command_line() {
        // Conflicts, also those the command line checks after parsing.
        let e =
            load("rules = \"r.toml\"\nalerts = \"same.log\"\noutput = \"same.log\"\n").unwrap_err();
        assert!(e.contains("s.toml: replay: "), "{e}");
        assert!(e.contains("are the same file"), "{e}");
        assert!(load("rotate_size = \"10K\"\noutput = \"conn.log\"\n").is_ok());
        // What is missing may come from the command line: `-o FILE` for
        // rotation, `--rules` for alerts.
        assert!(load("rotate_size = \"10K\"\n").is_ok());
        assert!(load("alerts = \"a.json\"\nalerts_format = \"eve\"\n").is_ok());
        // A conflict is found even when the file also leaves something to
        // the command line (`--rules`, which `alerts` needs).
        let e = load("alerts = \"same.log\"\noutput = \"same.log\"\n").unwrap_err();
        assert!(e.contains("are the same file"), "{e}");
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("flowmon-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(
            &path,
            "format = \"zeek\"\nworkers = 3\n[replay]\nquiet = true\n",
        )
        .unwrap();
        let argv = |extra: &[&str]| -> Vec<OsString> {
            let mut v: Vec<OsString> = vec!["sensor".into(), "replay".into()];
            v.push("--config".into());
            v.push(path.clone().into());
            v.extend(extra.iter().map(OsString::from));
            v
        };
        let Cli {
            command: crate::cli::Command::Replay(a),
        } = parse_args(argv(&["x.pcap", "-f", "json"])).unwrap()
        else {
            panic!("not replay")
        };
        assert_eq!(a.out.format, crate::output::Format::Json);
        assert_eq!(a.workers, Some(3));
        assert!(a.quiet);
        assert_eq!(a.files, vec![PathBuf::from("x.pcap")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
