//! The sensor configuration file: every flag of `replay` and `live` is a
//! key (found by walking clap's definition, so flags added later are
//! covered), a file setting every key means what the same flags mean,
//! flags override the file, `sensor config check` accepts the shipped
//! example and reports errors with file, line and key.

use clap::CommandFactory;
use sensor::cli::{Cli, Command as SensorCommand};
use sensor::config::{key_of, parse_args, SensorConfig, Source, COMMANDS};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowmon-config-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Flags that are deliberately not configuration keys.
const NOT_KEYS: [&str; 3] = ["help", "version", "config"];

/// Values for flags that have no default to derive one from. A flag
/// added without a default needs a line here: the test then proves that
/// its configuration key works.
const SAMPLES: [(&str, &str); 15] = [
    ("output", "out.json"),
    ("rules", "rules.toml"),
    ("alerts", "alerts.json"),
    ("baseline", "baseline.json"),
    ("bpf", "tcp port 443"),
    ("workers", "3"),
    ("buffer_size", "64"),
    ("metrics", "127.0.0.1:0"),
    ("metrics_file", "final.prom"),
    ("interface", "eth9"),
    ("ipfix", "127.0.0.1:4739"),
    ("ipfix_message_size", "1200"),
    ("rotate_size", "64M"),
    ("rotate_interval", "1h"),
    ("max_memory", "512"),
];

/// A value for `arg` other than its default, as TOML and as a flag.
fn sample(key: &str, arg: &clap::Arg) -> (String, Option<String>) {
    if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return ("true".into(), None);
    }
    let default = arg
        .get_default_values()
        .first()
        .map(|d| d.to_string_lossy().into_owned());
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|p| p.get_name().to_owned())
        .filter(|p| Some(p) != default.as_ref())
        .collect();
    let value = if let Some(p) = possible.first() {
        p.clone()
    } else if let Some(n) = default.as_deref().and_then(|d| d.parse::<u64>().ok()) {
        (n + 1).to_string()
    } else if let Some((_, v)) = SAMPLES.iter().find(|(k, _)| *k == key) {
        (*v).to_owned()
    } else {
        panic!(
            "--{} has no sample value: add one to SAMPLES",
            arg.get_long().unwrap()
        );
    };
    let toml = if value.parse::<i64>().is_ok() {
        value.clone()
    } else {
        format!("{value:?}")
    };
    (toml, Some(value))
}

/// The parsed arguments of `replay` or `live`, without `--config` itself.
fn parsed(argv: Vec<OsString>) -> String {
    let cli: Cli = parse_args(argv).unwrap_or_else(|e| panic!("{e:?}"));
    match cli.command {
        SensorCommand::Replay(mut a) => {
            a.service.config = None;
            format!("{a:?}")
        }
        SensorCommand::Live(mut a) => {
            a.service.config = None;
            format!("{a:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_replay_and_live_flag_is_a_config_key_that_means_what_the_flag_means() {
    let cli = Cli::command();
    for name in COMMANDS {
        let cmd = cli.find_subcommand(name).expect("subcommand");
        let mut toml = format!("[{name}]\n");
        let mut flags: Vec<OsString> = vec!["sensor".into(), name.into()];
        let mut keys = Vec::new();
        for arg in cmd.get_arguments() {
            if arg.is_positional() {
                continue;
            }
            let long = arg.get_long().unwrap_or_else(|| {
                panic!(
                    "{name}: flag {} has no long name, so no config key",
                    arg.get_id()
                )
            });
            if NOT_KEYS.contains(&long) {
                assert_eq!(key_of(arg), None);
                continue;
            }
            let key = key_of(arg)
                .unwrap_or_else(|| panic!("sensor {name} --{long} has no configuration key"));
            assert_eq!(key, long.replace('-', "_"));
            let (value, flag_value) = sample(&key, arg);
            toml.push_str(&format!("{key} = {value}\n"));
            flags.push(match flag_value {
                Some(v) => format!("--{long}={v}").into(),
                None => format!("--{long}").into(),
            });
            keys.push(key);
        }
        assert!(keys.len() >= 12, "{name}: {keys:?}");
        let path = tmp(&format!("all-{name}.toml"));
        std::fs::write(&path, &toml).unwrap();
        // Every key is accepted and is the effective setting.
        let cfg = SensorConfig::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let effective = cfg.effective(name);
        for key in &keys {
            let (_, value, source) = effective.iter().find(|(k, _, _)| k == key).unwrap();
            assert!(value.is_some(), "{key}");
            assert!(matches!(source, Source::File(_)), "{key}: {source:?}");
        }
        // The file means what the flags mean.
        let positional: Vec<OsString> = if name == "replay" {
            vec!["x.pcap".into()]
        } else {
            Vec::new()
        };
        let mut from_flags = flags.clone();
        from_flags.extend(positional.iter().cloned());
        let mut from_file: Vec<OsString> = vec!["sensor".into(), name.into()];
        from_file.push("--config".into());
        from_file.push(path.clone().into());
        from_file.extend(positional.iter().cloned());
        assert_eq!(parsed(from_file), parsed(from_flags), "{name}:\n{toml}");
    }
}

#[test]
fn flags_on_the_command_line_override_the_file() {
    let path = tmp("override.toml");
    std::fs::write(&path, "format = \"zeek\"\n[replay]\nquiet = true\n").unwrap();
    let demo = repo().join("demo/msp-demo.pcap");
    let run = |extra: &[&str]| {
        sensor()
            .args(["replay", "--no-progress", "--config"])
            .arg(&path)
            .args(extra)
            .arg(&demo)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("#separator \\x09\n"), "zeek from the file");
    assert!(o.stderr.is_empty(), "quiet from the file");
    let o = run(&["-f", "json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("{\"ts\":"), "json from the flag");
    assert_eq!(out.lines().count(), 633);
}

#[test]
fn the_example_configuration_checks() {
    let example = repo().join("dist/sensor.toml");
    let o = sensor()
        .args(["config", "check"])
        .arg(&example)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The printout is itself TOML: the effective settings per command.
    let printed: toml::Table = out.parse().expect("the printout is TOML");
    let live = printed["live"].as_table().unwrap();
    assert_eq!(live["interface"].as_str(), Some("eth1"));
    assert_eq!(live["snaplen"].as_integer(), Some(65535), "a default");
    assert_eq!(
        live["metrics"].as_str(),
        Some("127.0.0.1:9911"),
        "top level"
    );
    let replay = printed["replay"].as_table().unwrap();
    assert_eq!(replay["no_progress"].as_bool(), Some(true));
    assert!(!replay.contains_key("interface"));
    assert!(out.contains("# dist/sensor.toml:") || out.contains("sensor.toml:"));
    // The unit runs that file.
    let unit = std::fs::read_to_string(repo().join("dist/sensor.service")).unwrap();
    assert!(unit.contains("sensor live --config /etc/flowmon/sensor.toml"));
    assert!(unit.contains("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"));
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_2() {
    let path = tmp("bad.toml");
    std::fs::write(
        &path,
        "workers = 2\ncolour = \"blue\"\n[live]\nsnaplen = \"big\"\nno_promisc = \"yes\"\n[replay]\ninterface = \"eth0\"\n",
    )
    .unwrap();
    let f = path.display().to_string();
    for args in [
        vec!["config".to_owned(), "check".to_owned(), f.clone()],
        vec![
            "replay".to_owned(),
            "--config".to_owned(),
            f.clone(),
            "x.pcap".to_owned(),
        ],
    ] {
        let o = sensor().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(o.stdout.is_empty());
        for expected in [
            format!("{f}:2: colour: unknown key `colour`"),
            format!("{f}:4: live.snaplen: invalid value 'big' for '--snaplen <BYTES>'"),
            format!("{f}:5: live.no_promisc: expected true or false, found a string"),
            format!("{f}:7: replay.interface: unknown key `interface`"),
        ] {
            assert!(err.contains(&expected), "{expected}\nin\n{err}");
        }
    }
    let o = sensor()
        .args(["config", "check", "/nonexistent/sensor.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the configuration file"));
}

/// Policy in the file, paths on the command line: a file that needs the
/// command line to be complete (`rotate_size` needs `-o FILE`,
/// `alerts_format` needs `--rules` and `--alerts`) runs when the flags
/// complete it, and without them fails like the flags alone would.
#[test]
fn a_file_completed_by_flags_runs() {
    let dir = tmp("completed");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "rotate_size = \"10K\"\nalerts_format = \"eve\"\n").unwrap();
    let demo = repo().join("demo/msp-demo.pcap");
    let rules = repo().join("rules/examples/demo.toml");
    let (records, alerts) = (dir.join("conn.json"), dir.join("alerts.json"));
    let o = sensor()
        .args(["replay", "-q", "--config"])
        .arg(&path)
        .arg("-o")
        .arg(&records)
        .arg("--rules")
        .arg(&rules)
        .arg("--alerts")
        .arg(&alerts)
        .arg(&demo)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().filter(|n| n.starts_with("conn.json.")).count() > 1,
        "rotated by the file's rotate_size: {names:?}"
    );
    let eve = names.iter().find(|n| n.starts_with("alerts.json")).unwrap();
    let first = std::fs::read_to_string(dir.join(eve)).unwrap();
    assert!(
        first.contains("\"event_type\":\"alert\""),
        "EVE from the file"
    );
    // Without -o the same file is the command line's rotation error.
    let o = sensor()
        .args(["replay", "-q", "--config"])
        .arg(&path)
        .arg(&demo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("required arguments were not provided"),
        "{err}"
    );
    assert!(err.contains("--rules <FILE>"), "{err}");
    assert!(o.stdout.is_empty());
}
