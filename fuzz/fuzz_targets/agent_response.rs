//! The agent's parser of monitord's HTTP answers (`monitor_agent::response`) on arbitrary bytes,
//! whole and as the prefixes the agent holds while it reads.
//!
//! Properties: it never panics; 2xx is stored; a refusal has a three-digit status below 500 that is not 2xx (and never 408/429,
//! which are retried); the reason the agent prints is one line (DESIGN.md: "one line on stderr
//! says why") and short; `Retry-After` is capped at 10 minutes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use monitor_agent::response::{Verdict, classify, header_end, is_complete};

fn one_short_line(reason: &str) {
    assert!(!reason.contains(['\n', '\r']), "reason is not one line: {reason:?}");
    // "HTTP 422: " and at most 200 characters of monitord's own words.
    assert!(reason.chars().count() <= 10 + 200, "reason too long: {reason:?}");
}

fuzz_target!(|data: &[u8]| {
    // The agent reads in chunks and asks after each whether it has it all.
    for end in (0..data.len()).step_by(97).chain([data.len()]) {
        let _ = is_complete(&data[..end]);
    }
    if let Some(end) = header_end(data) {
        assert!(end >= 4 && end <= data.len() && &data[end - 4..end] == b"\r\n\r\n");
    }
    match classify(data) {
        Verdict::Stored => {}
        Verdict::Rejected { status, reason } => {
            assert!((100..=499).contains(&status) && !(200..=299).contains(&status));
            assert!(status != 408 && status != 429);
            one_short_line(&reason);
        }
        Verdict::Unavailable { reason, retry_after } => {
            one_short_line(&reason);
            assert!(retry_after.is_none_or(|d| d <= Duration::from_secs(600)));
        }
    }
});
