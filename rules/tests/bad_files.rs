//! Every broken rule file under `tests/bad/` is refused with exactly the
//! errors in the `.errors` file beside it (file, line, field, message, in
//! line order, every error in the file rather than the first).

use std::fs;
use std::path::Path;

use rules::Rules;

fn bad_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

fn check(stem: &str) {
    let dir = bad_dir();
    let name = format!("{stem}.toml");
    let text = fs::read_to_string(dir.join(&name)).unwrap();
    let expected = fs::read_to_string(dir.join(format!("{stem}.errors"))).unwrap();
    let errors = Rules::from_str(&text, &name).expect_err("a bad file must be refused");
    assert_eq!(
        errors.to_string(),
        expected.trim_end(),
        "\n--- got ---\n{errors}\n--- expected ---\n{expected}"
    );
    for e in errors.iter() {
        assert_eq!(e.file(), name);
        assert!(e.line().is_some(), "every error has a line: {e}");
    }
}

#[test]
fn every_bad_file_has_its_expected_errors() {
    let mut stems: Vec<String> = fs::read_dir(bad_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "toml")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    stems.sort();
    assert!(stems.len() >= 8, "{stems:?}");
    for stem in stems {
        check(&stem);
    }
}

#[test]
fn bad_networks_name_the_exact_problem() {
    check("bad_networks");
}

#[test]
fn unknown_keys_are_refused_at_every_level() {
    check("unknown_keys");
}

#[test]
fn overlapping_enclaves_need_vlans_to_tell_them_apart() {
    check("overlap");
}

#[test]
fn undefined_names_are_reported_where_they_are_used() {
    check("undefined");
}

#[test]
fn host_group_members_outside_their_enclave_are_refused() {
    check("members");
}

#[test]
fn windows_that_cannot_match_are_refused() {
    check("windows");
}

#[test]
fn duplicate_names_point_at_the_first_use() {
    check("duplicates");
}

#[test]
fn bad_services_say_why() {
    check("services");
}

#[test]
fn a_toml_syntax_error_has_a_line() {
    check("syntax");
}

#[test]
fn wrong_types_and_ranges_are_refused() {
    check("types");
}

#[test]
fn an_unreadable_file_is_one_error_without_a_line() {
    let errors = Rules::load("/nonexistent/rules.toml").unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = &errors.errors()[0];
    assert_eq!(e.line(), None);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rules.toml: cannot read the rule file: "),
        "{e}"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("flowmon-rules-utf8-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latin1.toml");
    // Line 3 holds "Müller" in Latin-1 (0xFC), as an old editor saves it,
    // after a UTF-8 "é" (two bytes, one column).
    let mut bytes = "[[enclaves]]\nname = \"provider\"\n# é owner: M"
        .as_bytes()
        .to_vec();
    bytes.push(0xfc);
    bytes.extend_from_slice(b"ller\nkind = \"provider\"\n");
    fs::write(&path, &bytes).unwrap();
    let errors = Rules::load(&path).expect_err("not UTF-8");
    let e = errors.iter().next().unwrap();
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(
        e.to_string()
            .contains("not valid UTF-8 at byte 44 (column 13)"),
        "{e}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_beacon_window_longer_than_a_pairs_history_can_hold_is_refused() {
    check("beacon_window");
    // 49 days fit in 2^32 ms (about 49.7 days).
    let text = "[[enclaves]]\nname = \"p\"\nkind = \"provider\"\nnetworks = [\"10.0.0.0/8\"]\n\n[detector.beacon]\nwindow = \"49d\"\n";
    let rules = Rules::from_str(text, "ok.toml").expect("49 days fit");
    assert_eq!(rules.detector().beacon.window.as_secs(), 49 * 86_400);
}
