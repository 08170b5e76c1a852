//! `sensor report` rendered in a real browser: headless Chromium (Debian's
//! `chromium` package, installed by `.ci/run`). The page of the bundled demo
//! capture must load with no console message but its own "ready" line,
//! its scripts must have run (search box, alert anchors), it must show the
//! enclave names and the alert counts `sensor replay --alerts` gives for
//! the same input, fetch nothing from the network, escape what it is given,
//! and a screenshot is saved under the test's output directory.
//!
//! Without a runnable Chromium the test is skipped with a loud message on
//! standard error (set `FLOWMON_CHROMIUM` to a browser binary to use another).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sensor(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(args)
        .output()
        .expect("sensor runs");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sensor {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The Chromium binary, if one runs here.
fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("FLOWMON_CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => ["chromium", "chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success())
    })
}

/// Output of one headless Chromium run.
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium on `url` with `extra` arguments, the flags that
/// keep it from reaching for the network, and console logging on stderr.
fn headless(browser: &Path, profile: &Path, url: &str, extra: &[String]) -> Run {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("chromium starts");
    // Read both pipes on threads so a chatty browser cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait().unwrap() {
            Some(status) => {
                let run = Run {
                    stdout: t_out.join().unwrap(),
                    stderr: t_err.join().unwrap(),
                };
                assert!(status.success(), "chromium failed:\n{}", run.stderr);
                return run;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 120 s on {url}");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The page's console messages (Chromium logs them as `CONSOLE` lines).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// Text of the element with `id` in a DOM dump (its first text run).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!(
            "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED: the_report_renders_in_headless_chromium                 !!!\n\
             !!! no runnable Chromium (install Debian's `chromium` package, as    !!!\n\
             !!! .ci/run does, or set FLOWMON_CHROMIUM to a browser binary)       !!!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    };
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let demo = root().join("demo/msp-demo.pcap");
    let rules = root().join("rules/examples/demo.toml");

    // What the page must agree with: the detector's alerts and the inventory
    // of the same input, from the other commands.
    let alerts_path = out.join("alerts.json");
    sensor(&[
        "replay",
        s(&demo),
        "--rules",
        s(&rules),
        "--alerts",
        s(&alerts_path),
        "-o",
        s(&out.join("records.json")),
        "-q",
    ]);
    let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
    let mut alert_ids = Vec::new();
    let mut alert_uids = BTreeSet::new();
    for line in std::fs::read_to_string(&alerts_path).unwrap().lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        if a["event"] == "alert" {
            *by_severity
                .entry(a["severity"].as_str().unwrap().to_owned())
                .or_default() += 1;
            alert_ids.push(a["alert_id"].as_str().unwrap().to_owned());
            alert_uids.insert(a["uid"].as_str().unwrap().to_owned());
        }
    }
    let total: usize = by_severity.values().sum();
    assert!(total > 10, "the demo raises alerts: {by_severity:?}");
    let inventory: Value = serde_json::from_str(&sensor(&[
        "inventory",
        s(&demo),
        "--rules",
        s(&rules),
        "-f",
        "json",
        "--no-progress",
    ]))
    .unwrap();
    let rows = inventory["rows"].as_array().unwrap();
    let with_b = rows
        .iter()
        .filter(|r| r["orig"]["enclave"] == "customer-b" || r["resp"]["enclave"] == "customer-b")
        .count();

    // The report, with a title that tries to inject markup.
    let html_path = out.join("report.html");
    sensor(&[
        "report",
        s(&demo),
        "--rules",
        s(&rules),
        "-o",
        s(&html_path),
        "--title",
        "<img src=x onerror=alert(1)> demo & co",
        "--no-progress",
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Self-contained: no external resource of any kind.
    for needle in [
        "https://", "<link", "@import", "url(", "src=\"", "src='", "<iframe", "<object",
    ] {
        assert!(!html.contains(needle), "the page references {needle:?}");
    }
    let http: Vec<&str> = html.matches("http://").collect();
    assert_eq!(
        http.len(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "the only http:// are SVG namespaces"
    );

    let url = format!("file://{}", html_path.display());
    let profile = out.join("profile");
    let run = headless(&browser, &profile, &url, &["--dump-dom".into()]);
    let dom = &run.stdout;

    // The scripts ran, and the only console message is the page's own.
    let console = console_lines(&run.stderr);
    assert_eq!(console.len(), 1, "console messages: {console:#?}");
    assert!(console[0].contains("flowmon-report-ready"), "{console:?}");
    assert!(dom.contains("data-ready=\"yes\""), "scripts did not run");
    assert_eq!(
        text_of(dom, "inv-shown"),
        format!("{} of {} relationships shown", rows.len(), rows.len())
    );
    // Alert counts as the detector gives them.
    assert_eq!(text_of(dom, "alert-count"), total.to_string());
    for sev in ["critical", "high", "medium", "low"] {
        assert_eq!(
            text_of(dom, &format!("alerts-{sev}")),
            by_severity.get(sev).copied().unwrap_or(0).to_string(),
            "{sev}"
        );
    }
    assert_eq!(dom.matches("<details class=\"alert ").count(), total);
    for id in &alert_ids {
        assert!(dom.contains(&format!("id=\"alert-{id}\"")), "alert {id}");
    }
    assert_eq!(text_of(dom, "relationship-count"), rows.len().to_string());
    // Each alert's details hold the record of the connection that raised
    // it (highlighted) when that connection has a finished record.
    let finished: BTreeSet<String> = std::fs::read_to_string(out.join("records.json"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["uid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let raised: BTreeSet<String> = dom
        .split("<tr class=\"raised\">")
        .skip(1)
        .map(|rest| {
            let start = rest.find("<code>").unwrap() + "<code>".len();
            rest[start..start + rest[start..].find('<').unwrap()].to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = alert_uids.intersection(&finished).cloned().collect();
    assert!(!expected.is_empty());
    assert_eq!(raised, expected, "highlighted records behind the alerts");
    // The enclave names label the heat map.
    for name in [
        "provider-mgmt",
        "customer-a",
        "customer-b",
        "shared-services",
        "internet",
    ] {
        assert!(
            dom.contains(&format!("rotate(-35)\">{name}</text>")),
            "column {name}"
        );
        assert!(
            dom.contains(&format!("text-anchor=\"end\">{name}</text>")),
            "row {name}"
        );
    }
    // The title is text, not markup.
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt; demo &amp; co"));
    assert!(!dom.contains("<img"));

    // The search box filters (prefilled from ?q=), and an alert's anchor
    // opens its details.
    let first = &alert_ids[0];
    let run = headless(
        &browser,
        &profile,
        &format!("{url}?q=customer-b#alert-{first}"),
        &["--dump-dom".into()],
    );
    assert_eq!(console_lines(&run.stderr).len(), 1);
    assert_eq!(
        text_of(&run.stdout, "inv-shown"),
        format!("{with_b} of {} relationships shown", rows.len())
    );
    assert!(with_b > 0 && with_b < rows.len());
    assert!(
        run.stdout
            .contains(&format!("id=\"alert-{first}\" open=\"\"")),
        "the anchored alert is open"
    );

    // A screenshot for people.
    let png = out.join("report.png");
    headless(
        &browser,
        &profile,
        &url,
        &[
            "--hide-scrollbars".into(),
            "--window-size=1400,2200".into(),
            format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a real picture: {} bytes",
        bytes.len()
    );
    eprintln!("report screenshot: {}", png.display());
}
