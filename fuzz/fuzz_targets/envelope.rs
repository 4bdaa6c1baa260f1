//! `Envelope::decode` and `open` on arbitrary request bodies, with one client's fixed keys, and
//! seal → tamper → open round trips with the input as plaintext.
//!
//! Properties: decoding and opening never panic; a body that opens is exactly what `seal` makes
//! of the plaintext it opened to (so nothing but a sealed message opens); a sealed message opens
//! to its plaintext, also with trailing whitespace, and never once a bit of it is flipped or it
//! is opened as another client.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use monitor_core::envelope::{self, IV_LEN, MAGIC, TAG_LEN};
use monitor_core::{ClientKeys, Envelope, MasterKey};

const NAME: &str = "web1";

fn keys() -> ClientKeys {
    // The master key the seed envelopes were sealed with (fuzz/README.md).
    ClientKeys::derive(&MasterKey::from_bytes([7u8; 32]), NAME)
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();

    // The body as monitord receives it.
    if let Ok(env) = Envelope::decode(data) {
        if let Ok(plaintext) = env.open(&keys, NAME) {
            let raw = BASE64.decode(data.trim_ascii_end()).expect("decode accepted it");
            let iv: [u8; IV_LEN] = raw[MAGIC.len()..MAGIC.len() + IV_LEN].try_into().unwrap();
            assert_eq!(
                envelope::seal_with_iv(&keys, NAME, &iv, &plaintext),
                raw,
                "a body opened that seal would not have made"
            );
        }
    }

    // The input as a plaintext: the first 16 bytes (if any) as the IV, the first two as the
    // position of the bit to flip.
    let mut iv = [0u8; IV_LEN];
    let n = data.len().min(IV_LEN);
    iv[..n].copy_from_slice(&data[..n]);
    let sealed = envelope::seal_with_iv(&keys, NAME, &iv, data);
    assert_eq!(sealed.len(), MAGIC.len() + IV_LEN + data.len() + TAG_LEN);
    let body = BASE64.encode(&sealed) + "\r\n";
    let opened = Envelope::decode(body.as_bytes())
        .expect("a sealed body decodes")
        .open(&keys, NAME)
        .expect("a sealed body opens");
    assert_eq!(opened, data);

    let other = ClientKeys::derive(&MasterKey::from_bytes([7u8; 32]), "web2");
    let as_other = Envelope::decode(body.as_bytes()).unwrap().open(&other, "web2");
    assert!(as_other.is_err(), "opened as another client");

    let at = usize::from(u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
    ]));
    let mut tampered = sealed;
    let byte = at / 8 % tampered.len();
    tampered[byte] ^= 1 << (at % 8);
    let result = Envelope::decode(BASE64.encode(&tampered).as_bytes()).map(|e| e.open(&keys, NAME));
    assert!(
        !matches!(result, Ok(Ok(_))),
        "bit {} of byte {byte} flipped and the envelope still opened",
        at % 8
    );
});
