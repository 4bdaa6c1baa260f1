//! Bad config.xml files: each file in `tests/data/bad/` must fail with exactly the errors
//! `tests/data/bad/expected.txt` lists for it (line and a phrase of the message), nothing more.

use std::collections::BTreeMap;

use monitor_core::config;

use super::util::{data, load_copy};

/// file name → [(line, phrase)], from the manifest.
fn manifest() -> BTreeMap<String, Vec<(u32, String)>> {
    let text = std::fs::read_to_string(data("bad/expected.txt")).unwrap();
    let mut cases: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, " | ").collect();
        let [file, number, phrase] = parts[..] else {
            panic!("expected.txt:{}: expected FILE | LINE | PHRASE", i + 1)
        };
        let number = number
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("expected.txt:{}: {number:?} is not a line number", i + 1));
        cases
            .entry(file.trim().to_string())
            .or_default()
            .push((number, phrase.trim().to_string()));
    }
    cases
}

#[test]
fn every_bad_file_reports_exactly_its_expected_errors() {
    let cases = manifest();
    let on_disk: Vec<String> = std::fs::read_dir(data("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    for file in &on_disk {
        assert!(
            cases.contains_key(file),
            "{file} has no line in expected.txt"
        );
    }
    assert!(cases.len() >= 30, "only {} bad-config cases", cases.len());

    let mut failures = Vec::new();
    for (file, expected) in &cases {
        let (path, result) = load_copy(&format!("bad/{file}"));
        let errors = match result {
            Ok(_) => {
                failures.push(format!("{file}: loaded, expected errors"));
                continue;
            }
            Err(invalid) => invalid.errors,
        };
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let prefix = format!("{}:", path.display());
        for e in &shown {
            if !e.starts_with(&prefix) {
                failures.push(format!("{file}: message does not start with the path: {e}"));
            }
        }
        if errors.len() != expected.len() {
            failures.push(format!(
                "{file}: expected {} errors, got {}:\n  {}",
                expected.len(),
                errors.len(),
                shown.join("\n  ")
            ));
        }
        for (line, phrase) in expected {
            let found = errors
                .iter()
                .any(|e| e.line == *line && e.to_string().contains(phrase.as_str()));
            if !found {
                failures.push(format!(
                    "{file}: no error at line {line} containing {phrase:?}; got:\n  {}",
                    shown.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn several_problems_are_all_reported_in_line_order() {
    let (path, result) = load_copy("bad/many_problems.xml");
    let invalid = result.unwrap_err();
    let lines: Vec<u32> = invalid.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 8, 9, 10]);
    // Display is one problem per line: what check-config prints.
    let text = invalid.to_string();
    assert_eq!(text.lines().count(), 8);
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{}:2: server: `listen` \"8750\" is not an address and port: expected e.g. \
             \"127.0.0.1:8750\", \"0.0.0.0:8750\" or \"[::]:8750\" (a host name is not allowed)",
            path.display()
        )
    );
}

#[test]
fn messages_name_the_path_as_given() {
    // cargo runs integration tests in the package's directory, so this is relative to it,
    // as a person would type it.
    let path = std::path::Path::new("tests/data/bad/bad_port.xml");
    assert!(path.exists(), "run from {:?}", std::env::current_dir());
    let invalid = config::load(path).unwrap_err();
    assert!(
        invalid
            .to_string()
            .starts_with("tests/data/bad/bad_port.xml:2: client: `port` \"70000\""),
        "{invalid}"
    );
}

#[test]
fn a_missing_file_is_one_error() {
    let invalid = config::load(&data("bad/does-not-exist.xml")).unwrap_err();
    assert_eq!(invalid.errors.len(), 1);
    assert!(invalid.errors[0].message.contains("cannot read the file"));
    // About the file as a whole: no line to point at, so none is printed (not ":0:").
    let shown = invalid.errors[0].to_string();
    assert!(
        shown.contains("does-not-exist.xml: cannot read the file"),
        "{shown}"
    );
}

#[test]
fn entity_expansion_never_happens() {
    // A billion-laughs file is refused quickly, before any expansion.
    let started = std::time::Instant::now();
    let (_, result) = load_copy("bad/dtd_billion_laughs.xml");
    assert!(result.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn passwords_never_appear_in_messages() {
    let (_, result) = load_copy("bad/two_auth_methods.xml");
    let text = format!("{:?}", result.unwrap_err());
    assert!(!text.contains("password=\"x\""), "{text}");
}
