//! Every response status of `PUT /v1/samples/{name}` (DESIGN.md, "Responses"), each produced
//! by a crafted request to a real monitord, including the order in which they are checked.
//! 503 has its own module (`busy`): it needs a real cause.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use monitor_core::envelope::{self, MAX_BODY};
use monitor_core::{ClientKeys, MasterKey};
use serde_json::json;
use testkit::monitord::{Monitord, now_ms, sample, sample_path};
use testkit::util;

use crate::support::{assert_log_has_no_keys, bin, counts, expect_status, secrets_of};

/// A sealed sample for `name` whose base64 body is exactly `len` bytes long
/// (`len` a multiple of 4, as padded base64 always is).
fn body_of_length(m: &Monitord, name: &str, seq: i64, len: usize) -> String {
    let mut s = sample("big", seq, now_ms());
    s["pad"] = json!("");
    let plain_len = len / 4 * 3 - (4 + 16 + 32);
    let fill = plain_len - s.to_string().len();
    s["pad"] = json!("x".repeat(fill));
    let body = m.seal(name, s.to_string().as_bytes());
    assert_eq!(body.len(), len, "test arithmetic");
    body
}

#[test]
fn oversized_bodies_are_413_before_being_read_whole() {
    let m = Monitord::start(bin(), &["web1"]);
    let secrets = secrets_of(&m, &["web1"]);
    let path = sample_path("web1");

    // Only the head is sent: the answer must come from Content-Length alone.
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        MAX_BODY + 1
    );
    let r = util::send_raw(m.addr(), head.as_bytes(), b"").expect("a response to the head");
    expect_status(&r, 413, "Content-Length over 64 KiB", &secrets);

    // Chunked: no length up front, the server must count.
    let big = vec![b'A'; MAX_BODY + 4096];
    let r = util::put_chunked(m.addr(), &path, &big, 8192).expect("a response");
    expect_status(&r, 413, "chunked body over 64 KiB", &secrets);

    // 413 is checked first: even for an unknown client.
    let r = util::put_chunked(m.addr(), &sample_path("ghost"), &big, 8192).expect("a response");
    expect_status(&r, 413, "oversized body for an unknown client", &secrets);

    // The limit is exact: 65,536 bytes are accepted (with Content-Length and chunked), more are not.
    let exact = body_of_length(&m, "web1", 1, MAX_BODY);
    expect_status(
        &m.put("web1", exact.as_bytes()).unwrap(),
        200,
        "65,536-byte body",
        &secrets,
    );
    let exact = body_of_length(&m, "web1", 2, MAX_BODY);
    let r = util::put_chunked(m.addr(), &path, exact.as_bytes(), 1000).unwrap();
    expect_status(&r, 200, "65,536-byte chunked body", &secrets);
    let over = body_of_length(&m, "web1", 3, MAX_BODY + 4);
    expect_status(
        &m.put("web1", over.as_bytes()).unwrap(),
        413,
        "65,540-byte body",
        &secrets,
    );

    let stored = counts(&m.samples("web1"));
    assert_eq!(
        stored.len(),
        2,
        "exactly the two accepted bodies are stored: {stored:?}"
    );
}

#[test]
fn bodies_that_are_not_envelopes_are_400() {
    let m = Monitord::start(bin(), &["web1"]);
    let secrets = secrets_of(&m, &["web1"]);
    let too_short = BASE64.encode(b"MON1 0123456789");
    let no_magic = BASE64.encode([b'X'; 80]);
    // The contract says padded base64: a sealed sample with its `=` stripped is refused.
    let unpadded = (0..3)
        .map(|n| {
            m.seal(
                "web1",
                sample(&"p".repeat(n + 1), 1, now_ms())
                    .to_string()
                    .as_bytes(),
            )
        })
        .find(|body| body.ends_with('='))
        .expect("one of three lengths needs padding")
        .trim_end_matches('=')
        .to_owned();
    let cases: [(&str, &[u8]); 5] = [
        ("not base64", b"this is not base64!"),
        ("empty body", b""),
        ("too short", too_short.as_bytes()),
        ("no MON1", no_magic.as_bytes()),
        ("authentic but unpadded base64", unpadded.as_bytes()),
    ];
    for (what, body) in cases {
        expect_status(&m.put("web1", body).unwrap(), 400, what, &secrets);
        // 400 is checked before the client is looked up.
        expect_status(&m.put("ghost", body).unwrap(), 400, what, &secrets);
    }
    // Trailing whitespace after the base64 is ignored; Content-Type is not enforced.
    let body = m.seal("web1", sample("ws", 1, now_ms()).to_string().as_bytes()) + "\r\n \n";
    let head = format!(
        "PUT /v1/samples/web1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let r = util::send_raw(m.addr(), head.as_bytes(), body.as_bytes()).unwrap();
    expect_status(&r, 200, "body with trailing whitespace", &secrets);
}

#[test]
fn unknown_clients_are_404_and_bad_tags_401() {
    let m = Monitord::start(bin(), &["web1", "web2"]);
    let secrets = secrets_of(&m, &["web1", "web2"]);
    let plain = sample("tags", 1, now_ms()).to_string();

    let r = m
        .put("ghost", m.seal("ghost", plain.as_bytes()).as_bytes())
        .unwrap();
    expect_status(&r, 404, "unknown client", &secrets);

    let other_master = MasterKey::from_bytes([0x5a; 32]);
    let wrong = envelope::seal(
        &ClientKeys::derive(&other_master, "web1"),
        "web1",
        plain.as_bytes(),
    );
    expect_status(
        &m.put("web1", wrong.as_bytes()).unwrap(),
        401,
        "wrong key",
        &secrets,
    );

    let for_web2 = m.seal("web2", plain.as_bytes());
    expect_status(
        &m.put("web1", for_web2.as_bytes()).unwrap(),
        401,
        "sealed for web2",
        &secrets,
    );

    let good = BASE64.decode(m.seal("web1", plain.as_bytes())).unwrap();
    // One byte in the IV, the ciphertext and the tag.
    for at in [4 + 3, 4 + 16 + 5, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let r = m.put("web1", BASE64.encode(&bad).as_bytes()).unwrap();
        expect_status(&r, 401, &format!("byte {at} flipped"), &secrets);
    }
    assert!(
        m.samples("web1").is_empty(),
        "nothing unauthentic is stored"
    );
    // The untampered message still goes through.
    let r = m.put("web1", BASE64.encode(&good).as_bytes()).unwrap();
    expect_status(&r, 200, "the untampered message", &secrets);
    // Every refusal is logged for the operator, never with a key.
    assert_log_has_no_keys(&m, &["web1", "web2"]);
}

#[test]
fn authentic_non_samples_are_400_and_impossible_values_422() {
    let m = Monitord::start(bin(), &["web1"]);
    let secrets = secrets_of(&m, &["web1"]);
    let now = now_ms();
    let seal_put = |plain: String| {
        m.put("web1", m.seal("web1", plain.as_bytes()).as_bytes())
            .unwrap()
    };

    let mut v2 = sample("bad", 1, now);
    v2["v"] = json!(2);
    let mut seq_text = sample("bad", 2, now);
    seq_text["seq"] = json!("2");
    let mut no_memory = sample("bad", 3, now);
    no_memory.as_object_mut().unwrap().remove("memory");
    for (what, plain) in [
        ("not JSON", "this is not json".to_owned()),
        ("only v", r#"{"v":1}"#.to_owned()),
        ("v = 2", v2.to_string()),
        ("seq as a string", seq_text.to_string()),
        ("no memory", no_memory.to_string()),
    ] {
        expect_status(&seal_put(plain), 400, what, &secrets);
    }

    let mut cpu = sample("range", 1, now);
    cpu["cpu_percent"] = json!(150.0);
    let mut used = sample("range", 2, now);
    used["memory"]["used"] = json!(9_000_000_000_i64);
    let mut negative = sample("range", 3, now);
    negative["disks"][0]["used"] = json!(-1);
    let ahead = sample("range", 4, now + 11 * 60 * 1000);
    let old = sample("range", 5, now - 8 * 24 * 3600 * 1000);
    for (what, s) in [
        ("cpu 150%", cpu),
        ("memory used > total", used),
        ("negative disk size", negative),
        ("ts 11 minutes ahead", ahead),
        ("ts 8 days old", old),
    ] {
        expect_status(&seal_put(s.to_string()), 422, what, &secrets);
    }
    assert!(m.samples("web1").is_empty(), "nothing refused is stored");

    // Inside the window is fine: a skew of 9 minutes, a spool drained after 6 days.
    let ahead = sample("range", 6, now + 9 * 60 * 1000);
    expect_status(
        &seal_put(ahead.to_string()),
        200,
        "ts 9 minutes ahead",
        &secrets,
    );
    let drained = sample("range", 7, now - 6 * 24 * 3600 * 1000);
    expect_status(
        &seal_put(drained.to_string()),
        200,
        "ts 6 days old",
        &secrets,
    );
}

#[test]
fn a_sample_is_stored_once_however_often_it_is_sent() {
    let m = Monitord::start(bin(), &["web1"]);
    let secrets = secrets_of(&m, &["web1"]);
    let s = sample("dup", 7, now_ms());
    let body = m.seal("web1", s.to_string().as_bytes());
    expect_status(
        &m.put("web1", body.as_bytes()).unwrap(),
        200,
        "first",
        &secrets,
    );
    expect_status(
        &m.put("web1", body.as_bytes()).unwrap(),
        200,
        "the same body again",
        &secrets,
    );
    // A retry sealed afresh (new IV) is the same sample.
    let r = m.put_sample("web1", &s).unwrap();
    expect_status(&r, 200, "the same sample, sealed again", &secrets);

    let stored = m.samples("web1");
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    let got = &stored[0];
    assert_eq!(got["seq"], 7);
    assert_eq!(got["ts"], s["ts"]);
    assert_eq!(got["cpu_percent"].as_f64(), Some(12.5));
    assert_eq!(got["memory"]["total"], s["memory"]["total"]);
    let stats = m.stats();
    assert_eq!(stats["samples"], 1, "stats: {stats}");
    assert_eq!(stats["clients"], 1, "stats: {stats}");
}
