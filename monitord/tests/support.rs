//! Helpers shared by this crate's test modules (the scaffolding itself is in `testkit`).

use std::collections::BTreeMap;

use testkit::util::Response;

/// The monitord binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_monitord")
}

/// `(instance, seq)` of a sample as `monitord samples --json` prints it.
pub fn identity(sample: &serde_json::Value) -> (String, i64) {
    let instance = sample["instance"]
        .as_str()
        .unwrap_or_else(|| panic!("sample without `instance`: {sample}"));
    let seq = sample["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("sample without `seq`: {sample}"));
    (instance.to_owned(), seq)
}

/// How often each `(instance, seq)` is stored.
pub fn counts(samples: &[serde_json::Value]) -> BTreeMap<(String, i64), usize> {
    let mut counts = BTreeMap::new();
    for s in samples {
        *counts.entry(identity(s)).or_insert(0) += 1;
    }
    counts
}

/// Asserts the status, that the body is JSON (the contract), and that it leaks none of
/// `secrets` (key material, paths).
pub fn expect_status(response: &Response, status: u16, what: &str, secrets: &[String]) {
    assert_eq!(
        response.status,
        status,
        "{what}: expected {status}, got {} with body {:?}",
        response.status,
        response.text()
    );
    let _ = response.json();
    let body = response.text();
    for secret in secrets {
        assert!(
            !body.contains(secret.as_str()),
            "{what}: response body leaks {secret:?}: {body:?}"
        );
    }
}

/// Key material as it would appear in a leak: lower-case hex.
pub use hex::encode as hex;

/// What must never appear in a response of monitord `m`: key material and file paths.
pub fn secrets_of(m: &testkit::monitord::Monitord, clients: &[&str]) -> Vec<String> {
    let mut out = key_material_of(m, clients);
    out.push(m.dir().display().to_string());
    out
}

/// What must never appear anywhere, logs included: the master key and client keys, in hex.
pub fn key_material_of(m: &testkit::monitord::Monitord, clients: &[&str]) -> Vec<String> {
    let mut out = vec![hex(m.master_key().bytes())];
    for name in clients {
        let keys = m.keys(name);
        out.push(hex(keys.enc()));
        out.push(hex(keys.mac()));
    }
    out
}

/// Asserts that monitord's log so far holds no key material.
pub fn assert_log_has_no_keys(m: &testkit::monitord::Monitord, clients: &[&str]) {
    let log = m.stderr();
    for secret in key_material_of(m, clients) {
        assert!(
            !log.contains(&secret),
            "monitord's log holds key material:\n{log}"
        );
    }
}
