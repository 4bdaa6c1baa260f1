//! `config::parse_bytes` (XML parsing and the whole validation) on arbitrary bytes.
//!
//! Properties: it never panics and ends in bounded time (libFuzzer's -timeout); an invalid file
//! has at least one error; every error and warning is one line `file:line: …` whose line lies in
//! the file; a valid file's clients have unique, well-formed names and at most one rule per
//! kind, and an interval that monitord can take three times (its host-down limit).
//! Entities: a DTD is refused before anything in it is expanded (roxmltree with `allow_dtd`
//! off), so an entity bomb is an error, quickly.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use monitor_core::config::{self, Diagnostic, is_client_name};

/// A directory that does not exist, so relative paths in the input name no real file.
const PATH: &str = "/nonexistent/monitord-fuzz/config.xml";

fn check(d: &Diagnostic, lines: u32) {
    let text = d.to_string();
    assert!(
        text.starts_with(&format!("{PATH}:{}: ", d.line)),
        "not file:line: {text:?}"
    );
    assert!(!text.contains('\n') && !text.contains('\r'), "more than one line: {text:?}");
    assert!(d.line >= 1 && d.line <= lines, "line {} of a {lines}-line file: {text}", d.line);
}

fuzz_target!(|data: &[u8]| {
    let lines = 1 + data.iter().filter(|&&b| b == b'\n').count() as u32;
    match config::parse_bytes(data, Path::new(PATH)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                check(w, lines);
            }
            let mut names = HashSet::new();
            for client in &loaded.config.clients {
                assert!(is_client_name(&client.name), "{:?}", client.name);
                assert!(names.insert(client.name.as_str()), "{:?} twice", client.name);
                let mut kinds = HashSet::new();
                for rule in &client.alerts {
                    assert!(kinds.insert(rule.kind), "two {} rules", rule.kind);
                }
                assert!(!client.interval.is_zero());
                assert!(
                    client.interval.checked_mul(3).is_some(),
                    "interval {:?} overflows monitord's 3 x interval",
                    client.interval
                );
            }
        }
        Err(invalid) => {
            assert!(!invalid.errors.is_empty());
            for d in invalid.errors.iter().chain(&invalid.warnings) {
                check(d, lines);
            }
        }
    }
});
