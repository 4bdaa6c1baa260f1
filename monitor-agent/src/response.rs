//! What monitord answered: the raw HTTP response the agent read, turned into what becomes of
//! the sample ([`Verdict`]). Pure functions over bytes, apart from the socket that
//! `send.rs` owns, so they can be tested and fuzzed (`fuzz/fuzz_targets/agent_response.rs`)
//! without a server; this is the agent's only library module for that reason.
//!
//! Every function is `#[inline]` so that the binary generates their code itself: generated here,
//! the generic code they use (serde_json, `from_utf8_lossy`) would be a second copy beside the
//! binary's own, 1.3 KB more agent (`scripts/build-agent`: 1,451,320 bytes before the move,
//! 1,451,384 after).
//!
//! Not here: connecting, writing the request and reading it off the socket (`send.rs`).

use std::time::Duration;

/// The longest `Retry-After` honoured, so a wrong header cannot park the agent for a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What monitord's answer to one PUT means for the sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 200: monitord committed it.
    Stored,
    /// 4xx: monitord will never take this sample; resending cannot fix it.
    Rejected { status: u16, reason: String },
    /// No connection, a timeout, 5xx (503 above all): keep it and try again later.
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Where the head ends (just after its blank line), if it has.
#[inline]
pub fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Whether `buf` holds the whole response: its head and, by Content-Length or a chunked
/// body's last chunk, its body.
#[inline]
pub fn is_complete(buf: &[u8]) -> bool {
    let Some(end) = header_end(buf) else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    match header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        // Not `end + len`: a Content-Length near usize::MAX would overflow.
        Some(len) => buf.len() - end >= len,
        None => buf.ends_with(b"0\r\n\r\n") && header(&head, "transfer-encoding").is_some(),
    }
}

#[inline]
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Maps a raw response to what the agent does with the sample.
#[inline]
pub fn classify(response: &[u8]) -> Verdict {
    let end = header_end(response).unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        // Three digits, 1xx to 5xx (RFC 9110); anything else is no answer to act on.
        .filter(|code| (100..=599).contains(code));
    let Some(status) = status else {
        return Verdict::Unavailable {
            reason: "the answer is not HTTP".into(),
            retry_after: None,
        };
    };
    let reason = || reason(status, &response[end..]);
    match status {
        200..=299 => Verdict::Stored,
        // Timeouts and rate limits pass; every other refusal is about the sample or the keys.
        408 | 429 | 500..=599 => Verdict::Unavailable {
            reason: reason(),
            retry_after: header(&head, "retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
        },
        _ => Verdict::Rejected {
            status,
            reason: reason(),
        },
    }
}

/// `HTTP 422: memory used (…) is above total (…)`: the status and monitord's short reason
/// (its JSON `error` or `message`, else the body's first line), cut to one line.
#[inline]
fn reason(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|v| {
            ["error", "message", "reason"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
        });
    let detail = from_json.unwrap_or_else(|| text.lines().next().unwrap_or("").trim().to_owned());
    // One line whatever the body holds: a JSON string may hold `\n`, a broken body a bare `\r`.
    let detail: String = detail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    monitor_core::agent::http_reason(status, &detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decide_the_samples_fate() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(classify(ok), Verdict::Stored);
        let busy = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\ncontent-length: 26\r\n\r\n{\"error\":\"store is busy\"}";
        assert_eq!(
            classify(busy),
            Verdict::Unavailable {
                reason: "HTTP 503: store is busy".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        for status in [400, 401, 404, 413, 422] {
            let r = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            assert!(
                matches!(classify(r.as_bytes()), Verdict::Rejected { status: s, .. } if s == status),
                "{status}"
            );
        }
        assert!(matches!(classify(b"garbage"), Verdict::Unavailable { .. }));
        // fuzz/artifacts/agent_response: a four-digit status is not HTTP; keep the sample.
        for line in ["HTTP/1.1 2400 X", "HTTP/1.1 99 X", "HTTP/1.1 600 X"] {
            let r = format!("{line}\r\ncontent-length: 0\r\n\r\n");
            assert!(
                matches!(classify(r.as_bytes()), Verdict::Unavailable { .. }),
                "{line}"
            );
        }
    }

    #[test]
    fn the_reason_is_one_line() {
        // fuzz/artifacts/agent_response: a body that is not JSON, with a bare CR in its line.
        let cr = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 41\r\n\r\n{\"error\":\"mess\rnsfer-Encoding: chunked\"}";
        let json = b"HTTP/1.1 422 X\r\n\r\n{\"error\":\"two\\nlines\"}";
        for (response, status, reason) in [
            (
                &cr[..],
                401,
                r#"HTTP 401: {"error":"mess nsfer-Encoding: chunked"}"#,
            ),
            (&json[..], 422, "HTTP 422: two lines"),
        ] {
            assert_eq!(
                classify(response),
                Verdict::Rejected {
                    status,
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn responses_end_by_length_or_chunks() {
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        ));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"
        ));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n{}"
        ));
    }
}
