//! monitor-deploy's parser of what `probe.sh` prints on a host (`monitor_deploy::probe`), on
//! arbitrary output (a host's shell, profile scripts and `getent` may print anything), with the
//! questions a deploy then asks of it.
//!
//! Properties: nothing panics; the home, when set, is not empty; resolved addresses are
//! distinct; a running agent counts as unchanged only with the version, interval and settings
//! it was asked about.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_deploy::last_send::LastSend;
use monitor_deploy::probe::Probe;

const VERSION: &str = "0.1.0";
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    let probe = Probe::parse(&out);
    assert!(probe.home.as_deref() != Some(""));
    for (i, a) in probe.resolved.iter().enumerate() {
        assert!(!probe.resolved[..i].contains(a), "{a} twice");
    }
    let _ = probe.has_agent(VERSION, SHA);
    // The interval as config.xml may give it, and as the host says the last deploy used.
    let deployed_interval = probe.deployed.as_ref().map(|d| d.interval_secs);
    for interval in [60, u64::MAX].into_iter().chain(deployed_interval) {
        if probe.running_unchanged(VERSION, interval, SHA).is_some() {
            let d = probe.deployed.as_ref().unwrap();
            assert!(d.version == VERSION && d.interval_secs == interval && d.settings_sha256 == SHA);
        }
        // What --status prints from the same fields.
        let _ = LastSend::judge(probe.last_sent, probe.now, interval, 1).to_string();
    }
});
